"""Data movement: reshape, transpose, broadcast, indexing, concatenation.

Indexing keys are static templates: ints, slices, None, Ellipsis, and
``IndexArg(i)`` placeholders for index arrays, which are passed as extra
(non-differentiable) inputs.  One ``getitem`` primitive therefore covers
numpy's basic and integer-array indexing; its gradient is ``index_add``.
"""
from typing import NamedTuple

import numpy as _onp

from ..errors import ShapeError
from .registry import Kind, Spec, normalize_axis, register, spec_of
from .util import unbroadcast


class IndexShapeError(ShapeError, IndexError):
    """An index outside the array (an IndexError, as in NumPy)."""


class IndexArg(NamedTuple):
    """Placeholder in an indexing key for the ``pos``-th index array input."""
    pos: int


def fill_key(key, idx):
    if not idx:
        return key
    return tuple(idx[k.pos] if isinstance(k, IndexArg) else k for k in key)


def resolve_shape(old_shape, shape):
    """Reshape target with at most one -1 filled in; ShapeError if sizes differ."""
    shape = tuple(int(d) for d in shape)
    size = 1
    for d in old_shape:
        size *= d
    if shape.count(-1) > 1:
        raise ShapeError(f'can only infer one dimension (-1) in {shape}')
    known = 1
    for d in shape:
        if d != -1:
            if d < 0:
                raise ShapeError(f'negative dimension {d} in {shape}')
            known *= d
    if -1 in shape:
        if known == 0 or size % known:
            raise ShapeError(f'cannot reshape an array of shape {old_shape} (size {size}) '
                             f'into {shape}')
        shape = tuple(size // known if d == -1 else d for d in shape)
    elif known != size:
        raise ShapeError(f'cannot reshape an array of shape {old_shape} (size {size}) '
                         f'into {shape} (size {known})')
    return shape


# ------------------------------------------------------------------ reshape
def _reshape_infer(x, shape):
    s = spec_of(x)
    return Spec(resolve_shape(s.shape, shape), s.dtype)


reshape = register('reshape', Kind.MOVEMENT, lambda x, shape: _onp.reshape(x, shape),
                   _reshape_infer, lambda c, g: (reshape(g, shape=tuple(c.inputs[0].shape)),))


# ------------------------------------------------------------------ transpose
def _transpose_infer(x, axes=None):
    s = spec_of(x)
    n = len(s.shape)
    axes = tuple(reversed(range(n))) if axes is None else tuple(axes)
    if sorted(a % max(n, 1) for a in axes) != list(range(n)) or len(axes) != n:
        raise ShapeError(f'axes {axes} are not a permutation of the {n} dimensions of {s.shape}')
    return Spec(tuple(s.shape[a] for a in axes), s.dtype)


def _transpose_grad(c, g):
    n = len(c.inputs[0].shape)
    axes = c.attrs.get('axes')
    axes = tuple(reversed(range(n))) if axes is None else tuple(a % n for a in axes)
    return (transpose(g, axes=tuple(int(i) for i in _onp.argsort(axes))),)


transpose = register('transpose', Kind.MOVEMENT, lambda x, axes=None: _onp.transpose(x, axes),
                     _transpose_infer, _transpose_grad)


# ------------------------------------------------------------------ broadcast_to
def _broadcast_to_infer(x, shape):
    s = spec_of(x)
    shape = tuple(shape)
    ok = len(shape) >= len(s.shape) and all(
        d == t or d == 1 for d, t in zip(reversed(s.shape), reversed(shape)))
    if not ok:
        raise ShapeError(f'cannot broadcast an array of shape {s.shape} to {shape}')
    return Spec(shape, s.dtype)


broadcast_to = register(
    'broadcast_to', Kind.MOVEMENT,
    lambda x, shape: _onp.array(_onp.broadcast_to(x, shape)),   # writable copy, like MXNet
    _broadcast_to_infer, lambda c, g: (unbroadcast(g, c.inputs[0]),))


# ------------------------------------------------------------------ indexing
def _abstract(spec):
    """A zero-strided array of this shape: shape rules index it for free."""
    return _onp.broadcast_to(_onp.empty((), spec.dtype), spec.shape)


def _index_probe(idx):
    """Index arrays for shape inference: real values when known (a boolean
    mask's result shape depends on them), zeros for symbols."""
    out = []
    for i in idx:
        data = getattr(i, '_data', i)
        if isinstance(data, _onp.ndarray):
            out.append(data)
        else:
            out.append(_onp.zeros(spec_of(i).shape, spec_of(i).dtype))
    return tuple(out)


def _getitem(x, *idx, key):
    return x[fill_key(key, idx)]


def _getitem_infer(x, *idx, key):
    s = spec_of(x)
    try:
        return Spec(_abstract(s)[fill_key(key, _index_probe(idx))].shape, s.dtype)
    except IndexError as e:
        raise IndexShapeError(f'index {key} does not fit an array of shape {s.shape}: {e}') from None


def _getitem_grad(c, g):
    x, *idx = c.inputs
    return (index_add(g, *idx, key=c.attrs['key'], shape=tuple(x.shape)),) + (None,) * len(idx)


getitem = register('getitem', Kind.MOVEMENT, _getitem, _getitem_infer, _getitem_grad,
                   nondiff=range(1, 64))


def _index_add(value, *idx, key, shape):
    value = _onp.asarray(value)
    out = _onp.zeros(shape, value.dtype)
    if idx:
        _onp.add.at(out, fill_key(key, idx), value)
    else:
        out[key] = value        # basic indexing touches each element at most once
    return out


def _index_add_infer(value, *idx, key, shape):
    return Spec(tuple(shape), spec_of(value).dtype)


index_add = register(
    'index_add', Kind.MOVEMENT, _index_add, _index_add_infer,
    lambda c, g: (getitem(g, *c.inputs[1:], key=c.attrs['key']),) + (None,) * (len(c.inputs) - 1),
    nondiff=range(1, 64), doc='zeros(shape) with value added at key (gradient of getitem)')


def _setitem(x, value, *idx, key):
    out = _onp.array(x, copy=True)
    out[fill_key(key, idx)] = value
    return out


def _setitem_infer(x, value, *idx, key):
    s = spec_of(x)
    target = _getitem_infer(x, *idx, key=key)
    v = spec_of(value)
    if v is not None:
        try:
            _onp.broadcast_shapes(v.shape, target.shape)
        except ValueError:
            raise ShapeError(f'cannot assign a value of shape {v.shape} to a selection of '
                             f'shape {target.shape}') from None
    return Spec(s.shape, s.dtype)


def _last_writer_mask(x, idx, key):
    """Where index arrays repeat a position, only the last write survives:
    True at the selected elements that are the last writer of their target."""
    from . import equal, reshape
    sel = _getitem_infer(x, *idx, key=key).shape
    n = 1
    for d in sel:
        n *= d
    ids = _onp.arange(n, dtype=_onp.int64).reshape(sel)
    owners = setitem(_onp.full(tuple(x.shape), -1, _onp.int64), ids, *idx, key=key)
    return equal(getitem(owners, *idx, key=key), reshape(ids, shape=sel))


def _setitem_grad(c, g):
    from . import multiply
    x, value, *idx = c.inputs
    key = c.attrs['key']
    gx = setitem(g, 0.0, *idx, key=key) if c.needs[0] else None
    gv = None
    if c.needs[1]:
        picked = getitem(g, *idx, key=key)
        if idx:
            picked = multiply(picked, _last_writer_mask(x, idx, key))
        gv = unbroadcast(picked, value)
    return (gx, gv) + (None,) * len(idx)


setitem = register('setitem', Kind.MOVEMENT, _setitem, _setitem_infer, _setitem_grad,
                   nondiff=range(2, 64), doc='functional x[key] = value (a copy of x)')


# ------------------------------------------------------------------ concatenate
def _concat_infer(*xs, axis=0):
    specs = [spec_of(x) for x in xs]
    if not specs:
        raise ShapeError('needs at least one array')
    first = specs[0].shape
    (ax,) = normalize_axis(axis, len(first))
    for s in specs[1:]:
        if len(s.shape) != len(first) or any(
                a != b for i, (a, b) in enumerate(zip(s.shape, first)) if i != ax):
            raise ShapeError(f'all arrays must match except along axis {axis}: '
                             f'{[tuple(s.shape) for s in specs]}')
    shape = first[:ax] + (sum(s.shape[ax] for s in specs),) + first[ax + 1:]
    return Spec(shape, _onp.result_type(*[s.dtype for s in specs]))


def _concat_grad(c, g):
    ax = c.attrs.get('axis', 0) % len(g.shape)
    grads, start = [], 0
    for x, need in zip(c.inputs, c.needs):
        n = x.shape[ax]
        key = (slice(None),) * ax + (slice(start, start + n),)
        grads.append(getitem(g, key=key) if need else None)
        start += n
    return tuple(grads)


concatenate = register('concatenate', Kind.MOVEMENT,
                       lambda *xs, axis=0: _onp.concatenate(xs, axis=axis),
                       _concat_infer, _concat_grad)
