"""Matrix products.  The primitive is numpy's ``matmul`` on arrays of two or
more dimensions with broadcast batch dimensions; ``np.dot``, ``np.matmul``
on vectors and Dense layers are compositions in the user-facing API."""
import numpy as _onp

from ..errors import ShapeError
from .registry import Kind, Spec, broadcast_shapes, register, spec_of
from .util import unbroadcast


def _matmul_infer(a, b):
    sa, sb = spec_of(a), spec_of(b)
    if len(sa.shape) < 2 or len(sb.shape) < 2:
        raise ShapeError(f'the primitive needs arrays of 2 or more dimensions, got '
                         f'{sa.shape} and {sb.shape}')
    if sa.shape[-1] != sb.shape[-2]:
        raise ShapeError(f'contraction size mismatch: {sa.shape} @ {sb.shape} '
                         f'({sa.shape[-1]} != {sb.shape[-2]})')
    batch = broadcast_shapes(sa.shape[:-2], sb.shape[:-2])
    return Spec(batch + (sa.shape[-2], sb.shape[-1]), _onp.result_type(sa.dtype, sb.dtype))


def _swap_last(x):
    from . import transpose
    n = len(x.shape)
    return transpose(x, axes=tuple(range(n - 2)) + (n - 1, n - 2))


def _matmul_grad(c, g):
    a, b = c.inputs
    return (unbroadcast(matmul(g, _swap_last(b)), a) if c.needs[0] else None,
            unbroadcast(matmul(_swap_last(a), g), b) if c.needs[1] else None)


matmul = register('matmul', Kind.MATMUL, _onp.matmul, _matmul_infer, _matmul_grad)
