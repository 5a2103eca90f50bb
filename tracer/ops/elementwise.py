"""Elementwise primitives (numpy broadcasting, Python scalars allowed)."""
import math

import numpy as _onp

from .registry import Kind, Spec, elementwise_infer, register, spec_of
from .special import erf as _erf
from .util import unbroadcast


def _ew(name, impl, grad=None, nondiff=(), doc=''):
    return register(name, Kind.ELEMENTWISE, impl, elementwise_infer(impl), grad, nondiff, doc)


def _x(c):
    return c.inputs[0]


# ---------------------------------------------------------------- unary
negative = _ew('negative', _onp.negative, lambda c, g: (negative(g),))
exp = _ew('exp', _onp.exp, lambda c, g: (multiply(g, c.out),))
log = _ew('log', _onp.log, lambda c, g: (divide(g, _x(c)),))
sqrt = _ew('sqrt', _onp.sqrt, lambda c, g: (divide(g, multiply(c.out, 2.0)),))
tanh = _ew('tanh', _onp.tanh,
           lambda c, g: (multiply(g, subtract(1.0, multiply(c.out, c.out))),))
abs = _ew('abs', _onp.abs, lambda c, g: (multiply(g, sign(_x(c))),))
sign = _ew('sign', _onp.sign, doc='piecewise constant: no gradient')
relu = _ew('relu', lambda x: _onp.maximum(x, 0).astype(x.dtype, copy=False),
           lambda c, g: (multiply(g, greater(_x(c), 0)),))


def _sigmoid(x):
    x = _onp.asarray(x)
    # exp of -|x| never overflows; the two branches agree at 0
    e = _onp.exp(-_onp.abs(x))
    return _onp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


sigmoid = _ew('sigmoid', _sigmoid,
              lambda c, g: (multiply(g, multiply(c.out, subtract(1.0, c.out))),))
def _softrelu(x):
    x = _onp.asarray(x)
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
    return (_onp.maximum(x, 0) + _onp.log1p(_onp.exp(-_onp.abs(x)))).astype(x.dtype, copy=False)


softrelu = _ew('softrelu', _softrelu, lambda c, g: (multiply(g, sigmoid(_x(c))),),
               doc='log(1 + exp(x)), the smooth ReLU; its own rule keeps d/dx = 0.5 at 0')
erf = _ew('erf', _erf, lambda c, g: (
    multiply(g, multiply(exp(negative(multiply(_x(c), _x(c)))), 2.0 / math.sqrt(math.pi))),))
logical_not = _ew('logical_not', _onp.logical_not)
invert = _ew('invert', _onp.invert, doc='bitwise not (logical not on booleans)')
stop_gradient = _ew('stop_gradient', lambda x: x, doc='identity whose gradient is zero (detach)')


def _astype(x, dtype):
    return _onp.asarray(x).astype(dtype)


def _astype_grad(c, g):
    x = _x(c)
    # casting to int or bool is piecewise constant: no gradient flows back
    if x.dtype.kind != 'f' or _onp.dtype(c.attrs['dtype']).kind != 'f':
        return (None,)
    return (astype(g, dtype=str(x.dtype)),)


astype = register('astype', Kind.ELEMENTWISE, _astype,
                  lambda x, dtype: Spec(spec_of(x).shape, _onp.dtype(dtype)), _astype_grad,
                  doc='cast to dtype (always a copy); the identity for gradients')


# ---------------------------------------------------------------- binary
def _binary_grads(fa, fb):
    """Gradient rule from per-input formulas, unbroadcast to each input."""
    def grad(c, g):
        a, b = c.inputs
        return (unbroadcast(fa(c, g, a, b), a) if c.needs[0] else None,
                unbroadcast(fb(c, g, a, b), b) if c.needs[1] else None)
    return grad


add = _ew('add', _onp.add, _binary_grads(lambda c, g, a, b: g, lambda c, g, a, b: g))
subtract = _ew('subtract', _onp.subtract,
               _binary_grads(lambda c, g, a, b: g, lambda c, g, a, b: negative(g)))
multiply = _ew('multiply', _onp.multiply, _binary_grads(
    lambda c, g, a, b: multiply(g, b), lambda c, g, a, b: multiply(g, a)))
divide = _ew('divide', _onp.true_divide, _binary_grads(
    lambda c, g, a, b: divide(g, b),
    lambda c, g, a, b: negative(divide(multiply(g, c.out), b))))
power = _ew('power', _onp.power, _binary_grads(
    lambda c, g, a, b: multiply(g, multiply(b, power(a, subtract(b, 1)))),
    lambda c, g, a, b: multiply(g, multiply(c.out, log(a)))))
maximum = _ew('maximum', _onp.maximum, _binary_grads(
    lambda c, g, a, b: multiply(g, greater_equal(a, b)),
    lambda c, g, a, b: multiply(g, less(a, b))))
minimum = _ew('minimum', _onp.minimum, _binary_grads(
    lambda c, g, a, b: multiply(g, less_equal(a, b)),
    lambda c, g, a, b: multiply(g, greater(a, b))))
mod = _ew('mod', _onp.mod, _binary_grads(
    lambda c, g, a, b: g,
    lambda c, g, a, b: negative(multiply(g, floor_divide(a, b)))))
floor_divide = _ew('floor_divide', _onp.floor_divide, doc='piecewise constant: no gradient')

equal = _ew('equal', _onp.equal)
not_equal = _ew('not_equal', _onp.not_equal)
less = _ew('less', _onp.less)
less_equal = _ew('less_equal', _onp.less_equal)
greater = _ew('greater', _onp.greater)
greater_equal = _ew('greater_equal', _onp.greater_equal)
logical_and = _ew('logical_and', _onp.logical_and)
logical_or = _ew('logical_or', _onp.logical_or)


# ---------------------------------------------------------------- ternary
def _where_grad(c, g):
    cond, a, b = c.inputs
    return (None,
            unbroadcast(where(cond, g, 0.0), a) if c.needs[1] else None,
            unbroadcast(where(cond, 0.0, g), b) if c.needs[2] else None)


where = _ew('where', _onp.where, _where_grad, nondiff=(0,))


def _clip(x, a_min=None, a_max=None):
    return _onp.clip(x, a_min, a_max)


def _clip_grad(c, g):
    x = _x(c)
    lo, hi = c.attrs.get('a_min'), c.attrs.get('a_max')
    inside = None
    if lo is not None:
        inside = greater_equal(x, lo)
    if hi is not None:
        upper = less_equal(x, hi)
        inside = upper if inside is None else logical_and(inside, upper)
    return (g if inside is None else where(inside, g, 0.0),)


clip = _ew('clip', _clip, _clip_grad)
