"""Parameter initializers (``tracer.init``), named as in MXNet.

An initializer is called with a parameter's name, shape and dtype and
returns a numpy array; all draw from the generator ``np.random.seed`` sets.
"""
import math

import numpy as _onp

from .ops import random as _random


class Initializer:
    """Base class: subclasses implement ``_init(shape, dtype) -> numpy array``."""

    def __call__(self, name, shape, dtype):
        return _onp.asarray(self._init(tuple(shape), _onp.dtype(dtype)), dtype=dtype)

    def _init(self, shape, dtype):
        raise NotImplementedError(f'{type(self).__name__} does not implement _init')

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'


class Uniform(Initializer):
    """Uniform on ``[-scale, scale]`` (the default, scale 0.07, as in Gluon)."""

    def __init__(self, scale=0.07):
        self.scale = scale

    def _init(self, shape, dtype):
        return _random.rng.uniform(-self.scale, self.scale, shape)


class Normal(Initializer):
    def __init__(self, sigma=0.01):
        self.sigma = sigma

    def _init(self, shape, dtype):
        return _random.rng.normal(0.0, self.sigma, shape)


class Zero(Initializer):
    def _init(self, shape, dtype):
        return _onp.zeros(shape)


class One(Initializer):
    def _init(self, shape, dtype):
        return _onp.ones(shape)


class Constant(Initializer):
    def __init__(self, value):
        self.value = value

    def _init(self, shape, dtype):
        return _onp.broadcast_to(_onp.asarray(self.value), shape).copy()


class Xavier(Initializer):
    """Glorot initialization: variance ``magnitude / fan`` with ``fan`` the
    average (``factor_type='avg'``), fan in or fan out."""

    def __init__(self, rnd_type='uniform', factor_type='avg', magnitude=3):
        self.rnd_type, self.factor_type, self.magnitude = rnd_type, factor_type, magnitude

    def _init(self, shape, dtype):
        if len(shape) < 2:
            raise ValueError(f'Xavier needs a parameter of 2 or more dimensions, got {shape}; '
                             f'give biases their own initializer')
        field = int(_onp.prod(shape[2:])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * field, shape[0] * field
        factor = {'avg': (fan_in + fan_out) / 2.0, 'in': fan_in, 'out': fan_out}.get(self.factor_type)
        if factor is None:
            raise ValueError(f"factor_type must be 'avg', 'in' or 'out', got {self.factor_type!r}")
        scale = math.sqrt(self.magnitude / factor)
        if self.rnd_type == 'uniform':
            return _random.rng.uniform(-scale, scale, shape)
        if self.rnd_type == 'gaussian':
            return _random.rng.normal(0.0, scale, shape)
        raise ValueError(f"rnd_type must be 'uniform' or 'gaussian', got {self.rnd_type!r}")


_NAMES = {'zeros': Zero, 'zero': Zero, 'ones': One, 'one': One, 'uniform': Uniform,
          'normal': Normal, 'xavier': Xavier}


def create(init):
    """An Initializer from an instance, a name ('zeros', 'xavier', ...) or None."""
    if init is None or isinstance(init, Initializer):
        return init
    if isinstance(init, str):
        try:
            return _NAMES[init.lower()]()
        except KeyError:
            raise ValueError(f'unknown initializer {init!r}; known: {", ".join(sorted(_NAMES))}') from None
    if callable(init):
        return init
    raise TypeError(f'expected an Initializer or its name, got {init!r}')
