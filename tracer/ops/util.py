"""Helpers shared by gradient rules; written with registered ops only, so
they work on eager arrays and (later) on symbols alike."""


def shape_of(x):
    return tuple(x.shape) if hasattr(x, 'shape') else None


def unbroadcast(g, like):
    """Sum ``g`` back down to the shape of ``like`` (None for scalars)."""
    from . import reshape, sum as sum_
    shape = shape_of(like)
    if shape is None:
        return None
    if tuple(g.shape) == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and g.shape[i + lead] != 1)
    r = sum_(g, axis=axes, keepdims=False) if axes else g
    return reshape(r, shape=shape) if tuple(r.shape) != shape else r


def keepdims_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def restore_reduced(g, x_shape, axis, keepdims):
    """Broadcast a reduction's output gradient back to the input's shape."""
    from . import broadcast_to, reshape
    axes = tuple(range(len(x_shape))) if axis is None else axis
    if not keepdims:
        g = reshape(g, shape=keepdims_shape(x_shape, axes))
    return broadcast_to(g, shape=tuple(x_shape))


def count(x_shape, axis):
    n = 1
    for i in (range(len(x_shape)) if axis is None else axis):
        n *= x_shape[i]
    return n
