"""``np.random``: sampling through the registry's random ops (float32 default)."""
from .. import ops
from ..dtypes import as_dtype
from ..ops import random as _random


def _size(size):
    if size is None:
        return ()
    return (int(size),) if isinstance(size, int) else tuple(int(d) for d in size)


def seed(seed=None):
    """Reseed the generator used by sampling, initializers and dropout."""
    _random.seed(seed)


def uniform(low=0.0, high=1.0, size=None, dtype=None, device=None, ctx=None):
    return ops.random.uniform(low=float(low), high=float(high), shape=_size(size),
                              dtype=as_dtype(dtype).name)


def normal(loc=0.0, scale=1.0, size=None, dtype=None, device=None, ctx=None):
    return ops.random.normal(loc=float(loc), scale=float(scale), shape=_size(size),
                             dtype=as_dtype(dtype).name)


def randint(low, high=None, size=None, dtype='int64', device=None, ctx=None):
    if high is None:
        low, high = 0, low
    return ops.random.randint(low=int(low), high=int(high), shape=_size(size),
                              dtype=as_dtype(dtype).name)


def rand(*shape):
    return uniform(size=shape)


def randn(*shape):
    return normal(size=shape)


def shuffle(x):
    """Shuffle an array in place along its first axis."""
    _random.rng.shuffle(x._data)
