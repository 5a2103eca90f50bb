"""``Parameter`` and ``Constant``: named, possibly shape-deferred arrays
owned by blocks, with a gradient buffer while ``grad_req != 'null'``."""
import warnings

import numpy as _onp

from .. import init as _init
from ..device import as_device
from ..dtypes import as_dtype
from ..errors import ShapeError, TracerError
from ..graph import trace as _trace
from ..ndarray import NDArray, wrap


# Bumped whenever any parameter's storage array is replaced (not when values are
# written in place): compiled call paths cache the arrays until it changes.
data_epoch = [0]


class DeferredInitializationError(TracerError, RuntimeError):
    """A parameter's shape is not known yet: it is set on the first forward."""


class Parameter:
    """A model parameter.

    ``shape`` may contain unknown dimensions (``0`` or ``-1``) when
    ``allow_deferred_init`` is true; they are filled in from the first
    batch that flows through the owning layer.

    >>> w = Parameter('weight', shape=(3, -1), allow_deferred_init=True)
    """

    def __init__(self, name='weight', grad_req='write', shape=None, dtype='float32',
                 lr_mult=1.0, wd_mult=1.0, init=None, allow_deferred_init=False,
                 differentiable=True, stype='default', grad_stype='default'):
        self.name = name
        self._shape = None if shape is None else self._norm_shape(shape)
        self.dtype = as_dtype(dtype, f'for parameter {name!r}')
        self.lr_mult, self.wd_mult = lr_mult, wd_mult
        self.init = _init.create(init)
        self.allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._grad_req = 'null'
        self.grad_req = grad_req if differentiable else 'null'
        self._data = None
        self._deferred = None      # (init, default_init) waiting for the shape
        self._version = 0          # bumped on every value change compiled graphs may have folded

    # ---------------------------------------------------------------- shape
    @staticmethod
    def _norm_shape(shape):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return tuple(-1 if d in (0, -1, None) else int(d) for d in shape)

    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, new):
        new = self._norm_shape(new)
        old = self._shape
        if old is not None and (len(old) != len(new) or any(
                o != -1 and n != -1 and o != n for o, n in zip(old, new))):
            raise ShapeError(f"parameter {self.name!r} has shape {old}; cannot set it to {new}")
        self._shape = new if old is None else tuple(n if o == -1 else o for o, n in zip(old, new))

    def _shape_known(self):
        return self._shape is not None and -1 not in self._shape

    @property
    def size(self):
        return int(_onp.prod(self._shape)) if self._shape_known() else 0

    # ---------------------------------------------------------------- grad_req
    @property
    def grad_req(self):
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req):
        if req not in ('write', 'add', 'null'):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {req!r}")
        if not self._differentiable:
            req = 'null'
        self._grad_req = req
        if getattr(self, '_data', None) is not None:
            self._attach()

    def _attach(self):
        if self._grad_req == 'null':
            self._data._node = None
        else:
            self._data.attach_grad(self._grad_req)

    # ---------------------------------------------------------------- init
    def initialize(self, init=None, device=None, default_init=None, force_reinit=False):
        """Create the data (now, or on the first forward if the shape is unknown)."""
        if device is not None:
            if isinstance(device, (list, tuple)):
                for d in device:
                    as_device(d)
            else:
                as_device(device)
        if self._data is not None and not force_reinit:
            warnings.warn(f'Parameter {self.name!r} is already initialized, ignoring. '
                          f'Set force_reinit=True to re-initialize.', stacklevel=3)
            return
        chosen = _init.create(init) or self.init or _init.create(default_init) or _init.Uniform()
        if not self._shape_known():
            if not self.allow_deferred_init:
                raise ShapeError(f'cannot initialize parameter {self.name!r}: its shape '
                                 f'{self._shape} has unknown dimensions and deferred '
                                 f'initialization is not allowed')
            self._data = None
            self._deferred = chosen
            return
        self._set(chosen(self.name, self._shape, self.dtype))

    def _finish_deferred_init(self):
        """Called by the owning layer once it knows the full shape."""
        if self._deferred is None:
            return
        if not self._shape_known():
            raise DeferredInitializationError(
                f'parameter {self.name!r} still has unknown dimensions {self._shape}')
        chosen, self._deferred = self._deferred, None
        self._set(chosen(self.name, self._shape, self.dtype))

    def _set(self, array):
        self._version += 1
        data_epoch[0] += 1
        self._data = wrap(_onp.array(array, dtype=self.dtype, copy=True))
        self._attach()

    def _check_initialized(self):
        if self._data is not None:
            return
        if self._deferred is not None:
            raise DeferredInitializationError(
                f"Parameter {self.name!r} has not been initialized yet because initialization "
                f"was deferred. Actual initialization happens during the first forward pass. "
                f"Please pass one batch of data through the network before accessing Parameters.")
        raise RuntimeError(
            f"Parameter {self.name!r} has not been initialized. Note that you should initialize "
            f"parameters with block.initialize() (it reaches every nested child block) before "
            f"the first forward pass or before creating a Trainer.")

    # ---------------------------------------------------------------- access
    def data(self, device=None):
        """The parameter's array (the one autograd tracks); a symbol while tracing."""
        if _trace.current is not None and self._data is not None:
            return _trace.current.param(self)
        if self._data is None:
            self._check_initialized()
        if device is not None:
            as_device(device)
        return self._data

    def list_data(self):
        return [self.data()]

    def grad(self, device=None):
        self._check_initialized()
        if self._grad_req == 'null':
            raise RuntimeError(f"cannot get the gradient of parameter {self.name!r}: its "
                               f"grad_req is 'null' (it is a constant or frozen)")
        return self._data.grad

    def list_grad(self):
        return [self.grad()]

    def set_data(self, data):
        """Replace the values (shape must match once known; fills deferred shapes)."""
        arr = data._data if isinstance(data, NDArray) else _onp.asarray(data)
        self.shape = arr.shape
        if tuple(arr.shape) != self._shape:
            raise ShapeError(f'parameter {self.name!r} has shape {self._shape}, '
                             f'cannot set data of shape {tuple(arr.shape)}')
        if self._data is None:
            self._deferred = None
            self._set(arr)
        else:
            self._data._data[...] = arr
            self._version += 1

    def zero_grad(self):
        if self._data is not None and self._grad_req != 'null':
            self._data.grad._data[...] = 0

    def cast(self, dtype):
        self.dtype = as_dtype(dtype)
        if self._data is not None:
            self._set(self._data._data.astype(self.dtype))

    def reset_device(self, device):
        as_device(device)

    reset_ctx = reset_device

    def list_device(self):
        from ..device import cpu
        return [cpu()]

    def __repr__(self):
        return f'Parameter {self.name} (shape={self._shape}, dtype={self.dtype.name})'


class Constant(Parameter):
    """A parameter that autograd and Trainers never update (``grad_req='null'``).

    >>> c = Constant(np.ones((2, 2)))
    """

    def __init__(self, value, name='const'):
        arr = value._data if isinstance(value, NDArray) else _onp.asarray(value, dtype='float32')
        self.value = arr.copy()
        super().__init__(name=name, grad_req='null', shape=arr.shape, dtype=arr.dtype,
                         init=_init.Constant(self.value), differentiable=False)
        self._set(self.value)

    def initialize(self, init=None, device=None, default_init=None, force_reinit=False):
        if self._data is None or force_reinit:
            self._set(self.value)

    def __repr__(self):
        return f'Constant {self.name} (shape={self._shape}, dtype={self.dtype.name})'
