"""Reductions over axes, and the row-wise normalizations (softmax,
log_softmax, layer_norm) that the compiler lowers as one fused group each.

``axis`` attributes are normalized tuples of non-negative ints or None.
"""
import numpy as _onp

from .registry import Kind, Spec, normalize_axis, register, spec_of
from .util import count, keepdims_shape, restore_reduced


def _reduce_infer(dtype_rule):
    def infer(x, axis=None, keepdims=False):
        s = spec_of(x)
        axes = normalize_axis(axis, len(s.shape))
        if keepdims:
            shape = keepdims_shape(s.shape, axes)
        else:
            shape = tuple(d for i, d in enumerate(s.shape) if i not in axes)
        return Spec(shape, dtype_rule(s.dtype))
    return infer


def _sum_dtype(d):
    # numpy: sums of small ints and bools accumulate in the platform int
    if d.kind == 'b' or (d.kind in 'iu' and d.itemsize < 8):
        return _onp.dtype('int64') if d.kind in 'bi' else _onp.dtype('uint64')
    return d


def _reducer(name, fn, dtype_rule, grad=None, doc=''):
    def impl(x, axis=None, keepdims=False):
        return fn(x, axis=axis, keepdims=keepdims)
    return register(name, Kind.REDUCTION, impl, _reduce_infer(dtype_rule), grad, doc=doc)


def _sum_grad(c, g):
    x = c.inputs[0]
    return (restore_reduced(g, x.shape, c.attrs.get('axis'), c.attrs.get('keepdims', False)),)


def _extremum_grad(c, g):
    # ties share the gradient equally
    from . import divide, equal, multiply, sum as sum_
    x = c.inputs[0]
    axis, keep = c.attrs.get('axis'), c.attrs.get('keepdims', False)
    y = restore_reduced(c.out, x.shape, axis, keep)
    mask = equal(x, y)
    ties = restore_reduced(sum_(mask, axis=axis, keepdims=keep), x.shape, axis, keep)
    return (divide(multiply(restore_reduced(g, x.shape, axis, keep), mask), ties),)


def _prod_grad(c, g):
    # d prod / d x_i = prod / x_i  (infinite at exact zeros; documented)
    from . import divide, multiply
    x = c.inputs[0]
    axis, keep = c.attrs.get('axis'), c.attrs.get('keepdims', False)
    return (divide(multiply(restore_reduced(g, x.shape, axis, keep),
                            restore_reduced(c.out, x.shape, axis, keep)), x),)


sum = _reducer('sum', _onp.sum, _sum_dtype, _sum_grad)
max = _reducer('max', _onp.max, lambda d: d, _extremum_grad)
min = _reducer('min', _onp.min, lambda d: d, _extremum_grad)
prod = _reducer('prod', _onp.prod, _sum_dtype, _prod_grad,
                doc='gradient is prod/x: not finite where an input is exactly 0')


def _arg_impl(fn):
    def impl(x, axis=None, keepdims=False):
        if axis is None:
            return fn(x.reshape(-1), axis=0, keepdims=False).reshape((1,) * x.ndim if keepdims else ())
        return fn(x, axis=axis[0], keepdims=keepdims)
    return impl


def _arg_infer(x, axis=None, keepdims=False):
    if axis is not None and len(normalize_axis(axis, len(spec_of(x).shape))) != 1:
        from ..errors import ShapeError
        raise ShapeError(f'expects a single axis, got {axis}')
    return _reduce_infer(lambda d: _onp.dtype('int64'))(x, axis, keepdims)


argmax = register('argmax', Kind.REDUCTION, _arg_impl(_onp.argmax), _arg_infer)
argmin = register('argmin', Kind.REDUCTION, _arg_impl(_onp.argmin), _arg_infer)


# ------------------------------------------------------------ normalizations
def _same_infer(x, **attrs):
    s = spec_of(x)
    normalize_axis(attrs.get('axis', -1), len(s.shape))
    return Spec(s.shape, s.dtype)


def _softmax(x, axis=-1):
    m = _onp.max(x, axis=axis, keepdims=True)
    e = _onp.exp(x - m)
    return e / _onp.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
    m = _onp.max(x, axis=axis, keepdims=True)
    s = x - m
    return s - _onp.log(_onp.sum(_onp.exp(s), axis=axis, keepdims=True))


def _softmax_grad(c, g):
    from . import multiply, subtract, sum as sum_
    y = c.out
    gy = multiply(g, y)
    ax = (c.attrs.get('axis', -1) % len(y.shape),)
    return (subtract(gy, multiply(y, sum_(gy, axis=ax, keepdims=True))),)


def _log_softmax_grad(c, g):
    from . import exp, multiply, subtract, sum as sum_
    s = sum_(g, axis=(c.attrs.get('axis', -1) % len(g.shape),), keepdims=True)
    return (subtract(g, multiply(exp(c.out), s)),)


softmax = register('softmax', Kind.REDUCTION, _softmax, _same_infer, _softmax_grad,
                   doc='exp(x - max) / sum(...) along one axis')
log_softmax = register('log_softmax', Kind.REDUCTION, _log_softmax, _same_infer,
                       _log_softmax_grad)


def _param_shape(ndim, axis):
    return tuple(-1 if i == axis else 1 for i in range(ndim))


def _layer_norm(x, gamma, beta, axis=-1, eps=1e-5):
    mean = _onp.mean(x, axis=axis, keepdims=True)
    var = _onp.mean(_onp.square(x - mean), axis=axis, keepdims=True)
    xhat = (x - mean) / _onp.sqrt(var + eps)
    shp = _param_shape(x.ndim, axis % x.ndim)
    return (xhat * gamma.reshape(shp) + beta.reshape(shp)).astype(x.dtype, copy=False)


def _layer_norm_infer(x, gamma, beta, axis=-1, eps=1e-5):
    from ..errors import ShapeError
    s = spec_of(x)
    (ax,) = normalize_axis(axis, len(s.shape))
    for nm, p in (('gamma', gamma), ('beta', beta)):
        if tuple(spec_of(p).shape) != (s.shape[ax],):
            raise ShapeError(f'{nm} has shape {tuple(spec_of(p).shape)}, expected '
                             f'({s.shape[ax]},) (the size of axis {axis} of the input {s.shape})')
    return Spec(s.shape, s.dtype)


def _layer_norm_grad(c, g):
    from . import (add, divide, multiply, reshape, sqrt, subtract, sum as sum_)
    x, gamma, beta = c.inputs
    axis, eps = c.attrs.get('axis', -1), c.attrs.get('eps', 1e-5)
    ax = (axis % len(x.shape),)
    n = count(x.shape, ax)
    shp = _param_shape(len(x.shape), ax[0])
    mean = divide(sum_(x, axis=ax, keepdims=True), n)
    xc = subtract(x, mean)
    var = divide(sum_(multiply(xc, xc), axis=ax, keepdims=True), n)
    rstd = divide(1.0, sqrt(add(var, eps)))
    xhat = multiply(xc, rstd)
    others = tuple(i for i in range(len(x.shape)) if i != ax[0])
    dx = dgamma = dbeta = None
    if c.needs[0]:
        dxhat = multiply(g, reshape(gamma, shape=shp))
        m1 = divide(sum_(dxhat, axis=ax, keepdims=True), n)
        m2 = divide(sum_(multiply(dxhat, xhat), axis=ax, keepdims=True), n)
        dx = multiply(rstd, subtract(subtract(dxhat, m1), multiply(xhat, m2)))
    if c.needs[1]:
        dgamma = sum_(multiply(g, xhat), axis=others, keepdims=False)
    if c.needs[2]:
        dbeta = sum_(g, axis=others, keepdims=False)
    return dx, dgamma, dbeta


layer_norm = register('layer_norm', Kind.REDUCTION, _layer_norm, _layer_norm_infer,
                      _layer_norm_grad, doc='normalize along one axis, then scale and shift')
