"""The ``np`` namespace: NumPy-compatible functions, thin over the ops.

Primitives are called straight through; everything else here (``mean``,
``dot``, ``stack``, ``split``, ...) is a composition of primitives, so it
gets gradients and compiles without code of its own.  Creation functions
default to float32, as in MXNet.
"""
import builtins

import numpy as _onp

from .. import ops
from ..dtypes import DEFAULT, as_dtype
from ..errors import ShapeError
from ..ndarray import NDArray, wrap
from ..ops.movement import IndexArg, resolve_shape
from ..ops.registry import normalize_axis

ndarray = NDArray
float16, float32, float64 = _onp.float16, _onp.float32, _onp.float64
int8, int16, int32, int64, uint8 = _onp.int8, _onp.int16, _onp.int32, _onp.int64, _onp.uint8
bool_ = _onp.bool_
pi, e, inf, nan, newaxis = _onp.pi, _onp.e, _onp.inf, _onp.nan, None


# ---------------------------------------------------------------- creation
def _default_dtype(data, dtype):
    if dtype is not None:
        return as_dtype(dtype)
    if isinstance(data, (NDArray, _onp.ndarray, _onp.generic)):
        return data.dtype
    probe = _onp.asarray(data)
    return probe.dtype if probe.dtype.kind == 'b' else DEFAULT


def array(obj, dtype=None, copy=True, device=None, ctx=None):
    """Array from a list, scalar, numpy array or NDArray (float32 for Python data)."""
    _check_device(device, ctx)
    dtype = _default_dtype(obj, dtype)
    data = obj._data if isinstance(obj, NDArray) else obj
    return wrap(_onp.array(data, dtype=dtype, copy=True if copy else None))


def asarray(obj, dtype=None, device=None):
    if isinstance(obj, NDArray) and (dtype is None or as_dtype(dtype) == obj.dtype):
        return obj
    return array(obj, dtype, copy=False, device=device)


def _check_device(device, ctx=None):
    if device is not None or ctx is not None:
        from ..device import as_device
        as_device(device if device is not None else ctx)


def _shape(shape):
    return (int(shape),) if isinstance(shape, (int, _onp.integer)) else tuple(int(d) for d in shape)


def zeros(shape, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    return wrap(_onp.zeros(_shape(shape), as_dtype(dtype)))


def ones(shape, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    return wrap(_onp.ones(_shape(shape), as_dtype(dtype)))


def empty(shape, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    return wrap(_onp.empty(_shape(shape), as_dtype(dtype)))


def full(shape, fill_value, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    if dtype is None and isinstance(fill_value, (bool, _onp.bool_)):
        dtype = 'bool'
    return wrap(_onp.full(_shape(shape), fill_value, as_dtype(dtype)))


def zeros_like(a, dtype=None):
    return wrap(_onp.zeros(a.shape, a.dtype if dtype is None else as_dtype(dtype)))


def ones_like(a, dtype=None):
    return wrap(_onp.ones(a.shape, a.dtype if dtype is None else as_dtype(dtype)))


def full_like(a, fill_value, dtype=None):
    return wrap(_onp.full(a.shape, fill_value, a.dtype if dtype is None else as_dtype(dtype)))


def arange(start, stop=None, step=1, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    return wrap(_onp.arange(start, stop, step).astype(as_dtype(dtype)))


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    return wrap(_onp.linspace(start, stop, num, endpoint=endpoint).astype(as_dtype(dtype)))


def eye(N, M=None, k=0, dtype=None, device=None, ctx=None):
    _check_device(device, ctx)
    return wrap(_onp.eye(N, M, k, dtype=as_dtype(dtype)))


def _as(x):
    """Arrays pass through; Python data becomes an array (float32 default)."""
    return x if isinstance(x, NDArray) else array(x)


# ---------------------------------------------------------------- elementwise
add, subtract, multiply, divide = ops.add, ops.subtract, ops.multiply, ops.divide
true_divide = divide
power, maximum, minimum, mod = ops.power, ops.maximum, ops.minimum, ops.mod
floor_divide, remainder = ops.floor_divide, ops.mod
negative, exp, log, sqrt, tanh = ops.negative, ops.exp, ops.log, ops.sqrt, ops.tanh
abs = absolute = ops.abs
sign = ops.sign
equal, not_equal, less, less_equal = ops.equal, ops.not_equal, ops.less, ops.less_equal
greater, greater_equal = ops.greater, ops.greater_equal
logical_and, logical_or, logical_not = ops.logical_and, ops.logical_or, ops.logical_not
invert = bitwise_not = ops.invert


def square(x):
    return ops.multiply(x, x)


def reciprocal(x):
    return ops.divide(1.0, x)


def clip(a, a_min=None, a_max=None):
    if a_min is None and a_max is None:
        raise ValueError('clip: one of a_min and a_max must be given')
    if isinstance(a_min, (int, float, type(None))) and isinstance(a_max, (int, float, type(None))):
        return ops.clip(a, a_min=a_min, a_max=a_max)
    # array bounds are operands, not static attributes
    if a_min is not None:
        a = ops.maximum(a, a_min)
    return a if a_max is None else ops.minimum(a, a_max)


def nonzero(a):
    """Indices of the non-zero elements (data-dependent shape: eager only)."""
    return tuple(wrap(i) for i in _onp.nonzero(_onp.asarray(a)))


def where(condition, x=None, y=None):
    """``where(c, x, y)`` picks elementwise; ``where(c)`` is ``nonzero(c)``."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError('where: give both x and y, or neither')
    return ops.where(condition, x, y)


def astype(x, dtype, copy=True):
    dtype = as_dtype(dtype)
    if not copy and x.dtype == dtype:
        return x
    return ops.astype(x, dtype=dtype.name)


def copy(x):
    return ops.astype(x, dtype=x.dtype.name)


# ---------------------------------------------------------------- reductions
def _axis(x, axis):
    return None if axis is None else normalize_axis(axis, x.ndim)


def sum(a, axis=None, dtype=None, keepdims=False):
    a = _as(a)
    r = ops.sum(a, axis=_axis(a, axis), keepdims=keepdims)
    return r if dtype is None else astype(r, dtype)


def max(a, axis=None, keepdims=False):
    a = _as(a)
    return ops.max(a, axis=_axis(a, axis), keepdims=keepdims)


def min(a, axis=None, keepdims=False):
    a = _as(a)
    return ops.min(a, axis=_axis(a, axis), keepdims=keepdims)


amax, amin = max, min


def prod(a, axis=None, keepdims=False):
    a = _as(a)
    return ops.prod(a, axis=_axis(a, axis), keepdims=keepdims)


def argmax(a, axis=None, keepdims=False):
    a = _as(a)
    return ops.argmax(a, axis=_axis(a, axis), keepdims=keepdims)


def argmin(a, axis=None, keepdims=False):
    a = _as(a)
    return ops.argmin(a, axis=_axis(a, axis), keepdims=keepdims)


def _count(a, axes):
    n = 1
    for i in (range(a.ndim) if axes is None else axes):
        n *= a.shape[i]
    return n


def mean(a, axis=None, dtype=None, keepdims=False):
    a = _as(a)
    axes = _axis(a, axis)
    r = ops.divide(ops.sum(a, axis=axes, keepdims=keepdims), _count(a, axes))
    return r if dtype is None else astype(r, dtype)


def var(a, axis=None, ddof=0, keepdims=False):
    a = _as(a)
    axes = _axis(a, axis)
    centered = ops.subtract(a, mean(a, axes, keepdims=True))
    total = ops.sum(ops.multiply(centered, centered), axis=axes, keepdims=keepdims)
    return ops.divide(total, _count(a, axes) - ddof)


def std(a, axis=None, ddof=0, keepdims=False):
    return ops.sqrt(var(a, axis, ddof, keepdims))


# ---------------------------------------------------------------- products
def matmul(a, b):
    """numpy.matmul, including 1-D operands (promoted, then squeezed)."""
    a, b = _as(a), _as(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError('matmul: scalar operands are not allowed, use * instead')
    va, vb = a.ndim == 1, b.ndim == 1
    if (va or vb) and a.shape[-1] != b.shape[0 if vb else -2]:
        raise ShapeError(f'matmul: contraction size mismatch: {a.shape} @ {b.shape} '
                         f'({a.shape[-1]} != {b.shape[0 if vb else -2]})')
    if va:
        a = ops.reshape(a, shape=(1, a.shape[0]))
    if vb:
        b = ops.reshape(b, shape=(b.shape[0], 1))
    r = ops.matmul(a, b)
    if va and vb:
        return ops.reshape(r, shape=r.shape[:-2])
    if va:
        return ops.reshape(r, shape=r.shape[:-2] + r.shape[-1:])
    if vb:
        return ops.reshape(r, shape=r.shape[:-1])
    return r


def dot(a, b):
    """numpy.dot: sum over the last axis of ``a`` and the second-to-last of ``b``."""
    a, b = _as(a), _as(b)
    if a.ndim == 2 and b.ndim == 2:
        return ops.matmul(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return ops.multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    k = b.shape[-2]
    if a.shape[-1] != k:
        raise ShapeError(f'dot: shapes {a.shape} and {b.shape} not aligned: '
                         f'{a.shape[-1]} (last axis of a) != {k} (second-to-last of b)')
    perm = (b.ndim - 2,) + tuple(i for i in range(b.ndim) if i != b.ndim - 2)
    b2 = ops.reshape(ops.transpose(b, axes=perm), shape=(k, -1 if b.size else 0))
    r = matmul(a, b2)
    return ops.reshape(r, shape=a.shape[:-1] + b.shape[:-2] + b.shape[-1:])


def inner(a, b):
    return ops.sum(ops.multiply(a, b), axis=(_as(a).ndim - 1,), keepdims=False)


# ---------------------------------------------------------------- movement
def reshape(a, newshape, order='C'):
    if order != 'C':
        raise NotImplementedError("reshape(order='F') is not supported")
    a = _as(a)
    return ops.reshape(a, shape=resolve_shape(a.shape, _shape(newshape)))


def ravel(a):
    return reshape(a, (-1,))


def transpose(a, axes=None):
    a = _as(a)
    if axes is not None:
        axes = tuple(int(x) % builtins.max(a.ndim, 1) for x in axes)
    return ops.transpose(a, axes=axes)


def swapaxes(a, axis1, axis2):
    a = _as(a)
    axes = list(range(a.ndim))
    (i,), (j,) = normalize_axis(axis1, a.ndim), normalize_axis(axis2, a.ndim)
    axes[i], axes[j] = axes[j], axes[i]
    return ops.transpose(a, axes=tuple(axes))


def moveaxis(a, source, destination):
    a = _as(a)
    (s,), (d,) = normalize_axis(source, a.ndim), normalize_axis(destination, a.ndim)
    order = [i for i in range(a.ndim) if i != s]
    order.insert(d, s)
    return ops.transpose(a, axes=tuple(order))


def expand_dims(a, axis):
    a = _as(a)
    axes = normalize_axis(axis, a.ndim + (1 if isinstance(axis, int) else len(axis)))
    shape = list(a.shape)
    for ax in axes:
        shape.insert(ax, 1)
    return ops.reshape(a, shape=tuple(shape))


def squeeze(a, axis=None):
    a = _as(a)
    if axis is None:
        axes = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = normalize_axis(axis, a.ndim)
        for ax in axes:
            if a.shape[ax] != 1:
                raise ShapeError(f'squeeze: cannot select axis {ax} of shape {a.shape}: '
                                 f'its size is {a.shape[ax]}, not 1')
    return ops.reshape(a, shape=tuple(d for i, d in enumerate(a.shape) if i not in axes))


def broadcast_to(a, shape):
    return ops.broadcast_to(_as(a), shape=_shape(shape))


def concatenate(seq, axis=0):
    seq = [_as(x) for x in seq]
    if axis is None:
        seq, axis = [ravel(x) for x in seq], 0
    (ax,) = normalize_axis(axis, seq[0].ndim) if seq else (0,)
    return ops.concatenate(*seq, axis=ax)


def stack(arrays, axis=0):
    arrays = [_as(x) for x in arrays]
    if not arrays:
        raise ValueError('stack: need at least one array')
    (ax,) = normalize_axis(axis, arrays[0].ndim + 1)
    return ops.concatenate(*[expand_dims(x, ax) for x in arrays], axis=ax)


def split(ary, indices_or_sections, axis=0):
    """numpy.split: equal sections (an int) or split points (a list)."""
    ary = _as(ary)
    (ax,) = normalize_axis(axis, ary.ndim)
    n = ary.shape[ax]
    if isinstance(indices_or_sections, (int, _onp.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f'split: array split does not result in an equal division: '
                             f'axis {ax} of size {n} into {k} sections')
        points = [n // k * i for i in range(1, k)]
    else:
        points = [int(p) for p in indices_or_sections]
    bounds = [0] + points + [n]
    pre = (slice(None),) * ax
    return [ops.getitem(ary, key=pre + (slice(lo, builtins.max(lo, hi)),))
            for lo, hi in zip(bounds[:-1], bounds[1:])]


# ---------------------------------------------------------------- indexing
def _index_key(key):
    """Split an indexing key into a static template and index-array inputs."""
    if not isinstance(key, tuple):
        key = (key,)
    template, arrays = [], []
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, (slice, bool, int, _onp.integer)):
            template.append(int(k) if isinstance(k, _onp.integer) else k)
        elif isinstance(k, (NDArray, _onp.ndarray, list, tuple, range)):
            if isinstance(k, NDArray) and k.dtype.kind == 'f':
                k = ops.astype(k, dtype='int64')      # MXNet: float index arrays (np.array
            if not isinstance(k, NDArray):            # of a list is float32) index too
                k = _onp.asarray(k)
                if k.dtype.kind not in 'biu':
                    raise IndexError(f'index arrays must be integers or booleans, got {k.dtype}')
            from ..graph.trace import Symbol
            if k.dtype == _onp.bool_ and not isinstance(k, Symbol):
                # a known mask is its nonzero() positions: the same selection with a
                # static shape (a traced mask's shape depends on data: a graph break)
                for ix in _onp.nonzero(_onp.asarray(k._data if isinstance(k, NDArray) else k)):
                    template.append(IndexArg(len(arrays)))
                    arrays.append(ix)
                continue
            template.append(IndexArg(len(arrays)))
            arrays.append(k)
        else:
            raise IndexError(f'unsupported index {k!r} of type {type(k).__name__}: use ints, '
                             f'slices, None, ..., or integer/boolean arrays')
    return tuple(template), arrays


def getitem(a, key):
    template, arrays = _index_key(key)
    return ops.getitem(a, *arrays, key=template)


def setitem(a, key, value):
    """``a[key] = value``: in place outside recording, functional inside."""
    from .. import autograd, dispatch
    template, arrays = _index_key(key)
    st = autograd.state
    tracked = st.recording and (a._node is not None or
                                (isinstance(value, NDArray) and value._node is not None))
    if tracked or dispatch.trace_hook is not None:
        if isinstance(a._node, autograd.Leaf):
            raise RuntimeError('x[...] = value on an array with an attached gradient while '
                               'recording would overwrite the leaf being differentiated')
        res = ops.setitem(a, value, *arrays, key=template)
        a._rebind(res)
        return
    from ..ops.movement import fill_key
    vals = [x._data if isinstance(x, NDArray) else x for x in arrays]
    v = value._data if isinstance(value, NDArray) else value
    try:
        a._data[fill_key(template, vals)] = v
    except (ValueError, IndexError) as err:
        ops.setitem.spec(a, value, *arrays, key=template)   # raises a ShapeError if shapes
        raise                                                 # explain it; else numpy's error


def take(a, indices, axis=None):
    a = _as(a)
    if axis is None:
        return getitem(ravel(a), indices)
    (ax,) = normalize_axis(axis, a.ndim)
    return getitem(a, (slice(None),) * ax + (indices,))


__all__ = [n for n in dir() if not n.startswith('_') and n not in (
    'builtins', 'ops', 'wrap', 'IndexArg', 'resolve_shape', 'normalize_axis', 'as_dtype',
    'DEFAULT', 'ShapeError', 'NDArray', 'getitem', 'setitem')]
