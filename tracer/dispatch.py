"""The one dispatcher every op call goes through.

``apply(op, args, attrs)`` computes eagerly with the op's NumPy reference
and, while ``autograd.record()`` is active, attaches a tape node to the
result.  When tracing is active (``hybridize``), a tracer hook takes over so
the same call adds a node to the graph instead.  Failures are re-raised
with the op's shape rule and the block path, so users see *what* was
expected and *where*.
"""
import numpy as _onp

from . import autograd as _ag
from . import scope as _scope
from .errors import ShapeError, TracerError
from .ndarray import NDArray, wrap
from .ops import registry as _registry

_state = _ag.state
_ndarray = _onp.ndarray
_asarray = _onp.asarray
_new = object.__new__

# Set while tracing: a callable (op, args, attrs) -> result or NotImplemented.
trace_hook = None


def apply(op, args, attrs):
    if trace_hook is not None:
        res = trace_hook(op, args, attrs)
        if res is not NotImplemented:
            return res
    # Unrolled for the common arities: this is the eager hot path.
    n = len(args)
    if n == 2:
        a, b = args
        vals = (a._data if isinstance(a, NDArray) else a, b._data if isinstance(b, NDArray) else b)
    elif n == 1:
        a = args[0]
        vals = (a._data if isinstance(a, NDArray) else a,)
    else:
        vals = tuple([a._data if isinstance(a, NDArray) else a for a in args])
    try:
        out = op.impl(*vals, **attrs) if attrs else op.impl(*vals)
    except Exception as e:
        raise _explain(op, args, attrs, e) from None
    if type(out) is not _ndarray:
        out = _asarray(out)
    res = _new(NDArray)
    res._data = out
    res._node = None
    if _state.recording:
        _ag.record_op(op, args, vals, attrs, res)
    return res


def _explain(op, args, attrs, err):
    """Turn a NumPy failure into an error that names the op, shapes and block."""
    if isinstance(err, TracerError):
        if _scope.where() and 'block' not in str(err):
            err.args = (f'{err}{_scope.where()}',) + err.args[1:]
        return err
    try:
        op.spec(*args, **attrs)
    except ShapeError as shape_err:
        return type(shape_err)(f'{shape_err}{_scope.where()}')
    except Exception:
        pass
    note = (f'while computing {op.name}({_registry.describe_args(args)})'
            f'{_scope.where()}')
    try:
        err.add_note(note)
    except AttributeError:
        pass
    return err


def apply_inplace(op, ufunc, self, other):
    """``x op= y``.

    Outside recording this writes into ``x``'s buffer like NumPy (views see
    the change).  While recording, when ``x`` or ``y`` takes part in
    autograd, the update is functional: ``x`` is rebound to the new value
    and its history, so values the tape saved stay intact and gradients
    flow through the update (``while ...: X /= 2``).
    """
    tracked = _state.recording and (
        self._node is not None or (isinstance(other, NDArray) and other._node is not None))
    if tracked or trace_hook is not None:
        if isinstance(self._node, _ag.Leaf):
            raise RuntimeError(
                f'in-place {op.name} on an array with an attached gradient while '
                f'recording{_scope.where()}: it would overwrite the leaf whose gradient '
                f'is being computed; use `x = x ...` instead of an in-place operator')
        res = apply(op, (self, other), {})
        if res.dtype != self.dtype:
            from . import ops
            res = apply(ops.astype, (res,), {'dtype': self.dtype})
        self._rebind(res)
        return self
    val = other._data if isinstance(other, NDArray) else other
    try:
        ufunc(self._data, val, out=self._data)
    except Exception as e:
        raise _explain(op, (self, other), {}, e) from None
    return self


_registry._apply = apply
