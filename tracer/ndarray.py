"""``NDArray``: a NumPy-compatible array on NumPy storage, with autograd.

The class holds data and autograd identity only.  Every computation on it
(operators, methods) goes through the op registry's single dispatcher, so
the same expression works eagerly, under ``autograd.record()`` and, when the
inputs are symbols, while tracing.
"""
import numpy as _onp

_new = object.__new__


class NDArray:
    """An n-dimensional array.  Create with ``np.array``, ``np.zeros``, ..."""
    __slots__ = ('_data', '_node', '__weakref__')
    __array_ufunc__ = None       # numpy defers `ndarray + NDArray` to us
    __array_priority__ = 1000

    def __init__(self, data, dtype=None):
        from .dtypes import as_dtype
        if isinstance(data, NDArray):
            data = data._data
        self._data = _onp.array(data, dtype=None if dtype is None else as_dtype(dtype))
        self._node = None

    # ------------------------------------------------------------ metadata
    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        return self._data.size

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def device(self):
        from .device import cpu
        return cpu()

    ctx = context = device

    def __len__(self):
        if not self._data.ndim:
            raise TypeError('len() of a 0-d array')
        return self._data.shape[0]

    # ------------------------------------------------------------ conversion
    def asnumpy(self):
        """A NumPy copy of the data."""
        return self._data.copy()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and _onp.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __bool__(self):
        return bool(self._data)

    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def __index__(self):
        return self._data.__index__()

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        text = repr(self._data)
        if self._data.dtype == _onp.float32:
            text = text.replace(', dtype=float32', '')
        return text

    def __str__(self):
        return str(self._data)

    __hash__ = None

    # ------------------------------------------------------------ autograd
    def attach_grad(self, grad_req='write', stype=None):
        """Allocate a gradient buffer; ``backward`` fills ``self.grad``."""
        from .autograd import Leaf
        if grad_req not in ('write', 'add', 'null'):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        self._node = Leaf(wrap(_onp.zeros(self._data.shape, self._data.dtype)), grad_req)

    @property
    def grad(self):
        from .autograd import Leaf
        node = self._node
        return node.grad if isinstance(node, Leaf) else None

    @property
    def grad_req(self):
        from .autograd import Leaf
        node = self._node
        return node.grad_req if isinstance(node, Leaf) else 'null'

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        """Gradients of this array w.r.t. every attached leaf it depends on."""
        from .autograd import backward
        backward([self], None if out_grad is None else [out_grad], retain_graph, train_mode)

    def _rebind(self, other):
        """Become ``other`` (value and history): functional in-place updates."""
        self._data, self._node = other._data, other._node
        if type(self) is not type(other):
            self.__class__ = type(other)     # NDArray <-> Symbol share one layout

    def detach(self):
        """The same data, cut off from the autograd graph."""
        return wrap(self._data)

    # ------------------------------------------------------------ devices
    def to_device(self, device):
        from .device import as_device
        as_device(device)
        return self

    as_in_context = as_in_ctx = to_device

    def copyto(self, other):
        from .device import Device
        if isinstance(other, NDArray):
            other[...] = self
            return other
        if isinstance(other, (Device, str)):
            return self.to_device(other).copy()
        raise TypeError(f'copyto expects an NDArray or a device, got {type(other).__name__}')


def wrap(data):
    """Fast internal constructor around an existing numpy array (no copy)."""
    r = _new(NDArray)
    r._data = data
    r._node = None
    return r


def _install_methods():
    """Operators and methods, all thin calls into the registry's ops."""
    from . import dispatch
    from . import ops
    from .numpy import _api as api

    apply = dispatch.apply
    empty = {}

    def binary(op):
        def method(self, other):
            return apply(op, (self, other), empty)
        method.__name__ = op.name
        return method

    def reflected(op):
        def method(self, other):
            return apply(op, (other, self), empty)
        return method

    def unary(op):
        def method(self):
            return apply(op, (self,), empty)
        return method

    def inplace(op, ufunc):
        def method(self, other):
            return dispatch.apply_inplace(op, ufunc, self, other)
        return method

    table = [('add', ops.add, _onp.add), ('sub', ops.subtract, _onp.subtract),
             ('mul', ops.multiply, _onp.multiply), ('truediv', ops.divide, _onp.true_divide),
             ('floordiv', ops.floor_divide, _onp.floor_divide), ('mod', ops.mod, _onp.mod),
             ('pow', ops.power, _onp.power)]
    for name, op, ufunc in table:
        setattr(NDArray, f'__{name}__', binary(op))
        setattr(NDArray, f'__r{name}__', reflected(op))
        setattr(NDArray, f'__i{name}__', inplace(op, ufunc))
    NDArray.__matmul__ = lambda self, other: api.matmul(self, other)
    NDArray.__rmatmul__ = lambda self, other: api.matmul(other, self)
    for name, op in [('eq', ops.equal), ('ne', ops.not_equal), ('lt', ops.less),
                     ('le', ops.less_equal), ('gt', ops.greater), ('ge', ops.greater_equal)]:
        setattr(NDArray, f'__{name}__', binary(op))
    NDArray.__neg__ = unary(ops.negative)
    NDArray.__abs__ = unary(ops.abs)
    NDArray.__pos__ = lambda self: api.copy(self)
    NDArray.__invert__ = unary(ops.invert)
    NDArray.__getitem__ = api.getitem
    NDArray.__setitem__ = api.setitem

    def reshape(self, *shape, **kwargs):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return api.reshape(self, shape, **kwargs)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return api.transpose(self, axes or None)

    NDArray.reshape = reshape
    NDArray.transpose = transpose
    NDArray.T = property(lambda self: api.transpose(self))
    NDArray.astype = lambda self, dtype, copy=True: api.astype(self, dtype, copy=copy)
    NDArray.copy = lambda self: api.copy(self)
    NDArray.flatten = lambda self: api.reshape(self, (-1,))
    for name in ('sum', 'mean', 'max', 'min', 'prod', 'argmax', 'argmin', 'squeeze',
                 'expand_dims', 'swapaxes', 'clip', 'exp', 'log', 'sqrt', 'tanh', 'abs',
                 'sign', 'dot', 'broadcast_to', 'split', 'var', 'std'):
        setattr(NDArray, name, getattr(api, name))
