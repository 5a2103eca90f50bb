"""Basic layers: Dense, Activation, Dropout, LayerNorm, BatchNorm,
Embedding, Identity, Lambda/HybridLambda, and PyTorch's Linear."""
from ... import npx, ops, scope
from ...errors import ShapeError
from ...numpy import _api as np
from ..block import HybridBlock
from ..parameter import Parameter


def _where(block):
    return scope.describe() or type(block).__name__


def _per_channel(block, x, params):
    """Finish the deferred init of per-channel parameters from ``x`` and check
    that ``x`` has as many channels on ``block._axis`` as they do."""
    n = x.shape[block._axis]
    for p in params:
        if p._data is None and p._deferred is not None:
            p.shape = (n,)
            p._finish_deferred_init()
    if params[0].shape[0] != n:
        raise ShapeError(f'{_where(block)}: input of shape {tuple(x.shape)} has {n} channels '
                         f'on axis {block._axis} but the layer expects {params[0].shape[0]}')


class Dense(HybridBlock):
    """Fully connected layer: ``activation(x @ weight.T + bias)``.

    ``weight`` has shape ``(units, in_units)``; with ``in_units=0`` it is
    inferred from the first input.  With ``flatten=True`` inputs of more
    than two dimensions are flattened to ``(batch, -1)`` first; otherwise
    the layer applies to the last axis.
    """

    def __init__(self, units, activation=None, use_bias=True, flatten=True, dtype='float32',
                 weight_initializer=None, bias_initializer='zeros', in_units=0, **kwargs):
        super().__init__()
        self._units, self._in_units, self._flatten = units, in_units, flatten
        self.act = None
        self._act_type = activation
        self.weight = Parameter('weight', shape=(units, in_units), dtype=dtype,
                                init=weight_initializer, allow_deferred_init=True)
        self.bias = Parameter('bias', shape=(units,), dtype=dtype, init=bias_initializer,
                              allow_deferred_init=True) if use_bias else None

    def _features(self, x):
        if self._flatten:
            n = 1
            for d in x.shape[1:]:
                n *= d
            return n
        return x.shape[-1] if x.ndim else 1

    def forward(self, x):
        w = self.weight
        if x.ndim < 1:
            raise ShapeError(f'{_where(self)}: expected an input with a batch axis, got a scalar')
        n = self._features(x)
        if w._data is None and w._deferred is not None:
            w.shape = (self._units, n)
            w._finish_deferred_init()
            if self.bias is not None:
                self.bias._finish_deferred_init()
        weight = w.data()
        if weight.shape[1] != n:
            expected = ('(batch, ' + str(weight.shape[1]) + ')') if self._flatten else \
                f'(..., {weight.shape[1]})'
            raise ShapeError(f'{_where(self)}: input of shape {tuple(x.shape)} has {n} features '
                             f'but the layer was initialized for {weight.shape[1]}: expected '
                             f'input shape {expected}')
        if self._flatten and x.ndim != 2:
            x = ops.reshape(x, shape=(x.shape[0], n))
        out = ops.matmul(x, ops.transpose(weight, axes=(1, 0))) if x.ndim >= 2 else \
            np.matmul(x, ops.transpose(weight, axes=(1, 0)))
        if self.bias is not None:
            out = ops.add(out, self.bias.data())
        if self._act_type is not None:
            out = npx.activation(out, self._act_type)
        return out

    def __repr__(self):
        shape = self.weight.shape
        act = f'Activation({self._act_type})' if self._act_type else 'linear'
        n_in = shape[1] if shape[1] != -1 else None
        return f'{type(self).__name__}({n_in} -> {shape[0]}, {act})'


class Linear(Dense):
    """PyTorch's ``nn.Linear(in_features, out_features, bias=True)``."""

    def __init__(self, in_features, out_features, bias=True, dtype='float32'):
        super().__init__(out_features, use_bias=bias, in_units=in_features, dtype=dtype,
                         flatten=False)


class Activation(HybridBlock):
    """Apply an activation by name: relu, sigmoid, tanh, softrelu, softsign, gelu."""

    def __init__(self, activation, **kwargs):
        super().__init__()
        if activation not in npx._ACTIVATIONS:
            raise ValueError(f'unknown activation {activation!r}; known: '
                             f'{", ".join(sorted(npx._ACTIVATIONS))}')
        self._act_type = activation

    def forward(self, x):
        return npx.activation(x, self._act_type)

    def __repr__(self):
        return f'Activation({self._act_type})'


class Dropout(HybridBlock):
    """Zero inputs with probability ``rate`` while training (scaling the rest)."""

    def __init__(self, rate, axes=(), **kwargs):
        super().__init__()
        if not 0 <= rate <= 1:
            raise ValueError(f'Dropout rate must be in [0, 1], got {rate}')
        self._rate, self._axes = rate, tuple(axes)

    def forward(self, x):
        if not self.training or self._rate == 0:
            return x
        return npx.dropout(x, p=self._rate, axes=self._axes, mode='always')

    def __repr__(self):
        return f'Dropout(p = {self._rate}, axes={self._axes})'


class LayerNorm(HybridBlock):
    """Normalize along ``axis`` and apply a learned scale and shift."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True,
                 beta_initializer='zeros', gamma_initializer='ones', in_channels=0, **kwargs):
        super().__init__()
        self._axis, self._epsilon, self._in = axis, epsilon, in_channels
        self.gamma = Parameter('gamma', shape=(in_channels,), init=gamma_initializer,
                               allow_deferred_init=True,
                               grad_req='write' if scale else 'null')
        self.beta = Parameter('beta', shape=(in_channels,), init=beta_initializer,
                              allow_deferred_init=True,
                              grad_req='write' if center else 'null')

    def forward(self, x):
        _per_channel(self, x, (self.gamma, self.beta))
        return npx.layer_norm(x, self.gamma.data(), self.beta.data(), axis=self._axis,
                              eps=self._epsilon)

    def __repr__(self):
        n = self.gamma.shape[0] if self.gamma.shape[0] != -1 else None
        return f'LayerNorm(axis={self._axis}, eps={self._epsilon}, in_channels={n})'


class BatchNorm(HybridBlock):
    """Batch normalization over every axis but ``axis`` (channels).

    ``running_mean`` and ``running_var`` are parameters with
    ``grad_req='null'``, updated in training mode with ``momentum``.
    """

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer='zeros', gamma_initializer='ones',
                 running_mean_initializer='zeros', running_variance_initializer='ones',
                 in_channels=0, **kwargs):
        super().__init__()
        self._axis, self._momentum, self._epsilon = axis, momentum, epsilon
        self._use_global_stats = use_global_stats
        shape = (in_channels,)
        self.gamma = Parameter('gamma', shape=shape, init=gamma_initializer,
                               allow_deferred_init=True, grad_req='write' if scale else 'null')
        self.beta = Parameter('beta', shape=shape, init=beta_initializer,
                              allow_deferred_init=True, grad_req='write' if center else 'null')
        self.running_mean = Parameter('running_mean', shape=shape, grad_req='null',
                                      init=running_mean_initializer, allow_deferred_init=True,
                                      differentiable=False)
        self.running_var = Parameter('running_var', shape=shape, grad_req='null',
                                     init=running_variance_initializer, allow_deferred_init=True,
                                     differentiable=False)

    def forward(self, x):
        if x.ndim < 2:
            raise ShapeError(f'{_where(self)}: BatchNorm expects at least 2 dimensions, got '
                             f'{tuple(x.shape)}')
        params = (self.gamma, self.beta, self.running_mean, self.running_var)
        _per_channel(self, x, params)
        return npx.batch_norm(x, *(p.data() for p in params), eps=self._epsilon,
                              momentum=self._momentum, axis=self._axis,
                              use_global_stats=self._use_global_stats, training=self.training)

    def __repr__(self):
        n = self.gamma.shape[0] if self.gamma.shape[0] != -1 else None
        return (f'BatchNorm(axis={self._axis}, eps={self._epsilon}, momentum={self._momentum}, '
                f'in_channels={n})')


class Embedding(HybridBlock):
    """Look up rows of a ``(input_dim, output_dim)`` weight by integer index."""

    def __init__(self, input_dim, output_dim, dtype='float32', weight_initializer=None, **kwargs):
        super().__init__()
        self._input_dim, self._output_dim = input_dim, output_dim
        self.weight = Parameter('weight', shape=(input_dim, output_dim), dtype=dtype,
                                init=weight_initializer)

    def forward(self, x):
        idx = np.astype(x, 'int64', copy=False)
        lo, hi = int(idx._data.min(initial=0)), int(idx._data.max(initial=0))
        if lo < 0 or hi >= self._input_dim:
            raise IndexError(f'{_where(self)}: index {hi if hi >= self._input_dim else lo} is out '
                             f'of range for an Embedding with input_dim={self._input_dim}')
        return np.getitem(self.weight.data(), idx)

    def __repr__(self):
        return f'Embedding({self._input_dim} -> {self._output_dim}, {self.weight.dtype.name})'


class Identity(HybridBlock):
    """Returns its input."""

    def forward(self, x):
        return x


def _resolve_function(function, kind):
    if isinstance(function, str):
        for ns in (npx, np):
            if hasattr(ns, function):
                return getattr(ns, function)
        raise ValueError(f'{kind}: no function named {function!r} in np or npx')
    if not callable(function):
        raise TypeError(f'{kind} expects a function or its name, got {function!r}')
    return function


class Lambda(HybridBlock):
    """Wrap ``function(*inputs)`` (or the name of an np/npx function) as a Block."""

    def __init__(self, function, prefix=None):
        super().__init__()
        self._func = _resolve_function(function, 'Lambda')

    def forward(self, *args):
        return self._func(*args)

    def __repr__(self):
        return f'{type(self).__name__}({getattr(self._func, "__name__", self._func)})'


class HybridLambda(Lambda):
    """Wrap ``function(F, *inputs)`` (Gluon 1 style) or an np/npx function name."""

    def __init__(self, function, prefix=None):
        named = isinstance(function, str)
        super().__init__(function)
        self._takes_F = not named

    def forward(self, *args):
        if self._takes_F:
            from .. import F
            return self._func(F, *args)
        return self._func(*args)
