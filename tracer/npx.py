"""``npx``: neural-network operators beyond NumPy (MXNet's ``npx``).

Primitives with their own gradient: ``relu``, ``sigmoid``, ``softrelu``,
``softmax``, ``log_softmax``, ``layer_norm``, ``erf``.  Compositions of primitives:
``gelu``, ``batch_norm``, ``dropout``, ``one_hot``, ``pick``, ``activation``,
``fully_connected``.
"""
import math

from . import autograd, ops
from .numpy import _api as np
from .ops.registry import normalize_axis

relu, sigmoid, erf, softrelu = ops.relu, ops.sigmoid, ops.erf, ops.softrelu

_np_mode = [False]


def set_np(shape=True, array=True, dtype=False):
    """Accepted for MXNet compatibility: this library is always in numpy mode."""
    _np_mode[0] = True


def reset_np():
    _np_mode[0] = False


def is_np_array():
    return True


def softmax(data, axis=-1, temperature=None):
    if temperature is not None and temperature != 1.0:
        data = ops.divide(data, float(temperature))
    (ax,) = normalize_axis(axis, data.ndim)
    return ops.softmax(data, axis=ax)


def log_softmax(data, axis=-1, temperature=None):
    if temperature is not None and temperature != 1.0:
        data = ops.divide(data, float(temperature))
    (ax,) = normalize_axis(axis, data.ndim)
    return ops.log_softmax(data, axis=ax)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_TANH_C = math.sqrt(2.0 / math.pi)


def gelu(x, approximation='erf'):
    """GELU: ``x * Phi(x)`` with the exact erf form or the tanh approximation."""
    if approximation == 'erf':
        return ops.multiply(ops.multiply(x, 0.5),
                            ops.add(ops.erf(ops.multiply(x, _SQRT_HALF)), 1.0))
    if approximation == 'tanh':
        inner = ops.multiply(ops.add(x, ops.multiply(ops.power(x, 3.0), 0.044715)), _TANH_C)
        return ops.multiply(ops.multiply(x, 0.5), ops.add(ops.tanh(inner), 1.0))
    raise ValueError(f"gelu: approximation must be 'erf' or 'tanh', got {approximation!r}")


def leaky_relu(x, slope=0.25):
    return ops.where(ops.greater(x, 0), x, ops.multiply(x, slope))


def softsign(x):
    return ops.divide(x, ops.add(ops.abs(x), 1.0))


_ACTIVATIONS = {'relu': relu, 'sigmoid': sigmoid, 'tanh': ops.tanh, 'softrelu': softrelu,
                'softsign': softsign, 'gelu': gelu, 'leaky': leaky_relu,
                'gelu_tanh': lambda x: gelu(x, 'tanh')}


def activation(data, act_type='relu'):
    try:
        fn = _ACTIVATIONS[act_type]
    except KeyError:
        raise ValueError(f'unknown activation {act_type!r}; known: '
                         f'{", ".join(sorted(_ACTIVATIONS))}') from None
    return fn(data)


def layer_norm(data, gamma, beta, axis=-1, eps=1e-5):
    (ax,) = normalize_axis(axis, data.ndim)
    return ops.layer_norm(data, gamma, beta, axis=ax, eps=float(eps))


def batch_norm(x, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.9,
               fix_gamma=False, use_global_stats=False, axis=1, training=None):
    """Batch normalization over every axis but ``axis``.

    In training mode (``training``, by default ``autograd.is_training()``) it normalizes with the
    batch statistics and updates ``running_mean``/``running_var`` in place
    (``momentum`` weights the old value); otherwise it uses the running
    statistics.
    """
    (ax,) = normalize_axis(axis, x.ndim)
    red = tuple(i for i in range(x.ndim) if i != ax)
    shp = tuple(-1 if i == ax else 1 for i in range(x.ndim))
    if training is None:
        training = autograd.is_training()
    if training and not use_global_stats:
        mean = np.mean(x, axis=red, keepdims=True)
        centered = ops.subtract(x, mean)
        var = np.mean(ops.multiply(centered, centered), axis=red, keepdims=True)
        with autograd.pause():
            n = x.size // x.shape[ax]
            unbiased = ops.multiply(np.reshape(var.detach(), (-1,)), n / max(n - 1, 1))
            running_mean[:] = ops.add(ops.multiply(running_mean, momentum),
                                      ops.multiply(np.reshape(mean.detach(), (-1,)), 1 - momentum))
            running_var[:] = ops.add(ops.multiply(running_var, momentum),
                                     ops.multiply(unbiased, 1 - momentum))
    else:
        mean = np.reshape(running_mean, shp)
        var = np.reshape(running_var, shp)
        centered = ops.subtract(x, mean)
    xhat = ops.divide(centered, ops.sqrt(ops.add(var, eps)))
    g = np.ones_like(gamma) if fix_gamma else gamma
    return ops.add(ops.multiply(xhat, np.reshape(g, shp)), np.reshape(beta, shp))


def dropout(data, p=0.5, axes=(), mode='training'):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p),
    in training mode (or always with ``mode='always'``)."""
    if p <= 0 or (mode == 'training' and not autograd.is_training()):
        return data
    if p >= 1:
        return ops.multiply(data, 0.0)
    shape = tuple(1 if i in axes else d for i, d in enumerate(data.shape))
    keep = ops.greater_equal(ops.random.uniform(shape=shape, dtype='float32'), p)
    scale = ops.multiply(ops.astype(keep, dtype=data.dtype.name), 1.0 / (1.0 - p))
    return ops.multiply(data, scale)


def one_hot(data, depth, on_value=1.0, off_value=0.0, dtype='float32'):
    hot = ops.equal(np.expand_dims(data, -1), np.arange(depth, dtype=data.dtype))
    if on_value == 1.0 and off_value == 0.0:
        return np.astype(hot, dtype)
    return np.astype(ops.where(hot, on_value, off_value), dtype)


def pick(data, index, axis=-1, keepdims=False, mode='clip'):
    """``data[..., index[...], ...]`` along ``axis`` (labels -> their scores)."""
    (ax,) = normalize_axis(axis, data.ndim)
    n = data.shape[ax]
    idx = np.astype(index, 'int64')
    idx = ops.clip(idx, a_min=0, a_max=n - 1) if mode == 'clip' else ops.mod(idx, n)
    hot = ops.equal(np.expand_dims(idx, ax), np.reshape(
        np.arange(n, dtype='int64'), tuple(-1 if i == ax else 1 for i in range(data.ndim))))
    return ops.sum(ops.multiply(data, hot), axis=(ax,), keepdims=keepdims)


def fully_connected(x, weight, bias=None, num_hidden=None, no_bias=False, flatten=True):
    """``x @ weight.T + bias`` (weight is ``(units, in_units)``, as in Gluon)."""
    if flatten and x.ndim != 2:
        x = np.reshape(x, (x.shape[0], -1))
    out = np.matmul(x, ops.transpose(weight, axes=(1, 0)))
    if bias is not None and not no_bias:
        out = ops.add(out, bias)
    return out
