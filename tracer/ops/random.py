"""Random number generation as ops (opaque to the compiler), so that a
traced Dropout draws a fresh mask on every call.  One global generator,
reseeded by ``np.random.seed``."""
import numpy as _onp

from .registry import Kind, Spec, register

rng = _onp.random.default_rng()


def seed(s=None):
    global rng
    rng = _onp.random.default_rng(s)


def _infer(shape=(), dtype='float32', **_):
    return Spec(tuple(shape), _onp.dtype(dtype))


uniform = register('random_uniform', Kind.OPAQUE,
                   lambda low=0.0, high=1.0, shape=(), dtype='float32':
                   rng.uniform(low, high, shape).astype(dtype), _infer,
                   nondeterministic=True)
normal = register('random_normal', Kind.OPAQUE,
                  lambda loc=0.0, scale=1.0, shape=(), dtype='float32':
                  rng.normal(loc, scale, shape).astype(dtype), _infer,
                  nondeterministic=True)
randint = register('random_randint', Kind.OPAQUE,
                   lambda low=0, high=None, shape=(), dtype='int64':
                   rng.integers(low, high, shape).astype(dtype),
                   lambda shape=(), dtype='int64', **_: Spec(tuple(shape), _onp.dtype(dtype)),
                   nondeterministic=True)
