"""The op registry: every primitive is declared once, here-through.

An :class:`Op` carries the four faces every part of the system reads:

1. ``infer(*args, **attrs) -> Spec`` -- the shape and dtype rule, called
   with anything that has ``shape`` and ``dtype`` (arrays, symbols, Specs)
   or Python scalars, mirroring ``impl``'s signature (tracing,
   deferred initialization, validation, clear error messages);
2. ``impl(*arrays, **attrs)`` -- the NumPy reference (eager mode, constant
   folding, and the reference interpreter that checks the compiler);
3. ``grad(ctx, g) -> tuple`` -- the gradient rule written with other
   registered ops, so the same rule drives eager autograd and, later, the
   symbolic backward graph;
4. ``kind`` -- the lowering class the code generator dispatches on.

Calling an op (``ops.add(a, b)``) goes through the one dispatcher in
:mod:`tracer.dispatch`.
"""
import enum
from typing import Callable, NamedTuple, Optional

import numpy as _onp

from ..errors import ShapeError


class Kind(enum.Enum):
    """How the compiler lowers an op."""
    ELEMENTWISE = 'elementwise'   # pointwise with numpy broadcasting
    REDUCTION = 'reduction'       # reduces (or normalizes along) axes
    MATMUL = 'matmul'             # batched matrix product
    MOVEMENT = 'movement'         # reshape, transpose, slicing, concat...
    OPAQUE = 'opaque'             # random numbers and other calls


class Spec(NamedTuple):
    """Abstract value: what the shape rule knows about an array."""
    shape: tuple
    dtype: _onp.dtype


class Op:
    """One primitive.  Call it like a function on arrays or scalars."""
    __slots__ = ('name', 'kind', 'impl', 'infer', 'grad', 'nondiff', 'nondeterministic', 'doc')

    def __init__(self, name, kind, impl, infer, grad=None, nondiff=(), nondeterministic=False,
                 doc=''):
        self.name = name
        self.kind = kind
        self.impl = impl
        self.infer = infer
        self.grad = grad
        self.nondiff = tuple(sorted(nondiff))   # input positions that never get a gradient
        self.nondeterministic = nondeterministic  # random: never folded, always traced
        self.doc = doc

    @property
    def differentiable(self):
        return self.grad is not None

    def __call__(self, *args, **attrs):
        return _apply(self, args, attrs)

    def spec(self, *args, **attrs):
        """Output shape and dtype for these inputs; ShapeError names the op."""
        try:
            return self.infer(*args, **attrs)
        except ShapeError as e:
            raise type(e)(f'{self.name}: {e}') from None

    def __repr__(self):
        return f'<Op {self.name} ({self.kind.value})>'


OPS: dict = {}
_apply: Optional[Callable] = None   # set by tracer.dispatch (avoids an import cycle)


def register(name, kind, impl, infer, grad=None, nondiff=(), nondeterministic=False, doc=''):
    """Declare a primitive.  Adding an op means one call to this function."""
    if name in OPS:
        raise ValueError(f'op {name!r} is already registered')
    op = Op(name, kind, impl, infer, grad, nondiff, nondeterministic, doc)
    OPS[name] = op
    return op


def get(name):
    """Look an op up by name, with a clear error for unknown names."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f'unknown op {name!r}; registered ops: {", ".join(sorted(OPS))}') from None


class GradCtx(NamedTuple):
    """What a gradient rule sees: inputs and output as arrays (or symbols)."""
    inputs: tuple
    out: object
    attrs: dict
    needs: tuple     # which inputs need a gradient


# ----------------------------------------------------------------- shape rules

def spec_of(x):
    """Spec of an array-like argument, or None for a Python scalar."""
    if isinstance(x, (bool, int, float, complex)):
        return None
    shape = getattr(x, 'shape', None)
    dtype = getattr(x, 'dtype', None)
    if shape is None or dtype is None:
        a = _onp.asarray(x)
        return Spec(a.shape, a.dtype)
    return Spec(tuple(shape), _onp.dtype(dtype))


def broadcast_shapes(*shapes):
    try:
        return tuple(_onp.broadcast_shapes(*shapes))
    except ValueError:
        shown = ' and '.join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"shapes {shown} do not broadcast together "
                         f"(trailing dimensions must be equal or 1)") from None


def normalize_axis(axis, ndim):
    """Axis argument -> sorted tuple of non-negative axes (None = all)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, _onp.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ShapeError(f'axis {a} is out of range for an array of {ndim} dimensions')
        out.append(a % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f'repeated axis in {axis}')
    return tuple(sorted(out))


def _elementwise_dtype(impl, args, attrs):
    """Exactly numpy's result dtype: apply the op to empty arrays."""
    probes = [a if s is None else _onp.empty((0,), s.dtype)
              for a, s in zip(args, map(spec_of, args))]
    with _onp.errstate(all='ignore'):
        return _onp.asarray(impl(*probes, **attrs)).dtype


def elementwise_infer(impl):
    def infer(*args, **attrs):
        specs = [s for s in map(spec_of, args) if s is not None]
        shape = broadcast_shapes(*[s.shape for s in specs])
        return Spec(shape, _elementwise_dtype(impl, args, attrs))
    return infer


def describe_args(args):
    parts = []
    for a in args:
        s = spec_of(a)
        parts.append(repr(a) if s is None else f'{s.dtype}{list(s.shape)}')
    return ', '.join(parts)
