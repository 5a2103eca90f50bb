"""Every differentiable primitive's gradient rule vs central finite differences.

For each case the scalar function is ``L(inputs) = sum(op(*inputs, **attrs) * W)``
with a fixed random ``W`` of the output's shape, so every output element
contributes.  Autograd's gradient (eager tape, the op's registered rule) is
compared with central differences of ``L`` computed with the op's NumPy
reference ``op.impl`` -- never with the library's own gradient machinery.

Everything runs in float64.  Tolerances: step ``EPS = 1e-6``; central
differences have truncation error O(EPS**2) ~ 1e-12 and round-off about
|L| * 1e-16 / EPS ~ 1e-9 for the O(10) losses used here, so
``rtol = 1e-5, atol = 1e-7`` leaves a wide margin while still catching any
wrong factor, sign, transpose or missing broadcast reduction.

Inputs are chosen away from kinks, ties and zeros where an op is not smooth
(abs/relu/clip/maximum/minimum/max/min/mod), positive where an op needs it
(log, sqrt, power's base), and index arrays / ``where``'s condition are
non-differentiable inputs.
"""
import math
import zlib
from typing import NamedTuple

import numpy as onp
import pytest

import tracer
from tracer import autograd, npx
from tracer import np as tnp
from tracer.ops import OPS, GradCtx, IndexArg

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-7

_rng = onp.random.default_rng(20240601)


def rnd(*shape, lo=-1.0, hi=1.0):
    return _rng.uniform(lo, hi, size=shape).astype(onp.float64)


def pos(*shape, lo=0.5, hi=2.0):
    return rnd(*shape, lo=lo, hi=hi)


def away(*shape, margin=0.15, scale=1.0):
    """Random values with |x| >= margin (away from the kink at 0)."""
    mag = _rng.uniform(margin, scale, size=shape)
    sgn = _rng.choice([-1.0, 1.0], size=shape)
    return (mag * sgn).astype(onp.float64)


def distinct(*shape, spacing=0.1):
    """A random permutation of well-separated values: no ties for max/min."""
    n = int(onp.prod(shape)) if shape else 1
    vals = (onp.arange(n) - n / 2) * spacing + _rng.uniform(0, spacing / 4, n)
    return _rng.permutation(vals).reshape(shape).astype(onp.float64)


def clip_input(shape, lo, hi, margin=0.05):
    """Values spread below, inside and above [lo, hi], never within margin of a bound."""
    x = rnd(*shape, lo=lo - 1.0, hi=hi + 1.0)
    for b in (lo, hi):
        near = onp.abs(x - b) < margin
        x[near] = b + onp.where(x[near] >= b, margin, -margin) * 2
    return x


def mod_pair(a_shape, b_shape, negative_divisor=False):
    """(a, b) with a / b = k + frac, frac in [0.2, 0.8]: far from mod's jumps."""
    b = pos(*b_shape, lo=0.7, hi=1.5)
    if negative_divisor:
        b = -b
    out_shape = onp.broadcast_shapes(a_shape, b_shape)
    q = _rng.integers(-2, 3, size=out_shape) + _rng.uniform(0.2, 0.8, size=out_shape)
    a = q * b
    assert a.shape == tuple(a_shape)
    return a.astype(onp.float64), b


class Case(NamedTuple):
    inputs: tuple        # numpy arrays (float64, or int/bool index arrays) or Python scalars
    attrs: dict
    diff: tuple          # positions of the differentiable inputs
    id: str


def case(id, inputs, diff=None, **attrs):
    inputs = tuple(inputs)
    if diff is None:
        diff = tuple(i for i, x in enumerate(inputs)
                     if isinstance(x, onp.ndarray) and x.dtype == onp.float64)
    return Case(inputs, attrs, tuple(diff), id)



def _binary_cases(make):
    """Same-shape, broadcasting (3,1,4) with (2,4), Python scalar either side,
    and one-side-only differentiable."""
    a, b = make((2, 3), (2, 3))
    a3, b2 = make((3, 1, 4), (2, 4))
    a4, b4 = make((4,), (2, 3, 1))
    s, _ = make((2, 3), (2, 3))
    _, t = make((2, 3), (2, 3))
    sa, sb = make((), ())
    return [
        case('same', [a, b]),
        case('bcast_3x1x4_2x4', [a3, b2]),
        case('bcast_4_2x3x1', [a4, b4]),
        case('scalar_right', [s, float(sb)]),
        case('scalar_left', [float(sa), t]),
        case('only_left_diff', [a, b], diff=(0,)),
        case('only_right_diff', [a, b], diff=(1,)),
    ]


def _apart_maker(shape_a, shape_b):
    """Values on two interleaved grids (a near k*0.4, b near k*0.4 + 0.2, noise
    < 0.05): |a - b| >= 0.1 for every broadcast pair, and both orders occur."""
    a = _rng.integers(-3, 3, size=shape_a) * 0.4 + _rng.uniform(0, 0.05, size=shape_a)
    b = _rng.integers(-3, 3, size=shape_b) * 0.4 + 0.2 + _rng.uniform(0, 0.05, size=shape_b)
    return onp.asarray(a, onp.float64), onp.asarray(b, onp.float64)


def _power_maker(shape_a, shape_b):
    return pos(*shape_a), rnd(*shape_b, lo=-1.5, hi=2.5)


def _divide_maker(shape_a, shape_b):
    return rnd(*shape_a), away(*shape_b, margin=0.5, scale=2.0)


def _plain_maker(shape_a, shape_b):
    return rnd(*shape_a), rnd(*shape_b)


def _mod_cases():
    a, b = mod_pair((2, 3), (2, 3))
    a3, b3 = mod_pair((3, 2, 4), (2, 4))
    an, bn = mod_pair((2, 3), (3,), negative_divisor=True)
    sa, sb = mod_pair((2, 3), ())
    return [
        case('same', [a, b]),
        case('bcast_3x2x4_2x4', [a3, b3]),
        case('negative_divisor_bcast', [an, bn]),
        case('scalar_divisor', [sa, float(sb)]),
        case('only_divisor_diff', [a, b], diff=(1,)),
    ]


def _where_cases():
    cond = _rng.random((3, 4)) < 0.5
    cond3 = _rng.random((2, 1, 4)) < 0.5
    return [
        case('same', [cond, rnd(3, 4), rnd(3, 4)], diff=(1, 2)),
        case('bcast', [cond3, rnd(3, 1), rnd(4)], diff=(1, 2)),
        case('scalar_else', [cond, rnd(3, 4), 0.0], diff=(1,)),
        case('scalar_then', [cond, 1.5, rnd(4)], diff=(2,)),
    ]


def _idx(*vals):
    return onp.array(vals, dtype=onp.int64)


CASES = {
    # ------------------------------------------------------------ unary
    'negative': [case('2d', [rnd(3, 4)])],
    'exp': [case('2d', [rnd(3, 4, lo=-2, hi=2)])],
    'log': [case('positive', [pos(3, 4, lo=0.3, hi=3.0)])],
    'sqrt': [case('positive', [pos(3, 4, lo=0.3, hi=3.0)])],
    'tanh': [case('2d', [rnd(3, 4, lo=-2, hi=2)])],
    'abs': [case('away_from_0', [away(3, 4)])],
    'relu': [case('away_from_0', [away(3, 4)])],
    'sigmoid': [case('2d', [rnd(3, 4, lo=-4, hi=4)]),
                case('large_magnitude', [onp.array([-30.0, -8.0, -0.5, 0.0, 0.5, 8.0, 30.0])])],
    'softrelu': [case('2d', [rnd(3, 4, lo=-4, hi=4)]),
                 case('zero_and_large', [onp.array([-40.0, -5.0, 0.0, 5.0, 40.0])])],
    'erf': [case('2d', [rnd(3, 4, lo=-2.5, hi=2.5)]),
            case('both_branches',
                 [onp.array([-3.1, -2.6, -2.4, -0.3, 0.0, 0.7, 2.45, 2.55, 3.2])])],
    'astype': [case('f64_to_f64', [rnd(3, 4)], dtype='float64')],
    'clip': [case('both_bounds', [clip_input((4, 5), -0.4, 0.5)], a_min=-0.4, a_max=0.5),
             case('min_only', [clip_input((4, 5), 0.1, 0.1)], a_min=0.1, a_max=None),
             case('max_only', [clip_input((4, 5), -0.2, -0.2)], a_min=None, a_max=-0.2)],
    # ------------------------------------------------------------ binary
    'add': _binary_cases(_plain_maker),
    'subtract': _binary_cases(_plain_maker),
    'multiply': _binary_cases(_plain_maker),
    'divide': _binary_cases(_divide_maker),
    'power': _binary_cases(_power_maker),
    'maximum': _binary_cases(_apart_maker),
    'minimum': _binary_cases(_apart_maker),
    'mod': _mod_cases(),
    'where': _where_cases(),
    # ------------------------------------------------------------ reductions
    'sum': [case('all', [rnd(2, 3, 4)], axis=None, keepdims=False),
            case('all_keepdims', [rnd(2, 3, 4)], axis=None, keepdims=True),
            case('axes_0_2', [rnd(2, 3, 4)], axis=(0, 2), keepdims=False),
            case('axes_0_2_keepdims', [rnd(2, 3, 4)], axis=(0, 2), keepdims=True),
            case('axis_1', [rnd(2, 3, 4)], axis=(1,), keepdims=False)],
    'prod': [case('all', [away(2, 3, margin=0.5)], axis=None, keepdims=False),
             case('all_keepdims', [away(2, 3, margin=0.5)], axis=None, keepdims=True),
             case('axes_0_2', [away(2, 3, 2, margin=0.5)], axis=(0, 2), keepdims=False),
             case('axis_1_keepdims', [away(2, 3, 2, margin=0.5)], axis=(1,), keepdims=True)],
    'max': [case('all', [distinct(2, 3, 4)], axis=None, keepdims=False),
            case('all_keepdims', [distinct(2, 3, 4)], axis=None, keepdims=True),
            case('axes_0_2', [distinct(2, 3, 4)], axis=(0, 2), keepdims=False),
            case('axis_1_keepdims', [distinct(2, 3, 4)], axis=(1,), keepdims=True)],
    'min': [case('all', [distinct(2, 3, 4)], axis=None, keepdims=False),
            case('all_keepdims', [distinct(2, 3, 4)], axis=None, keepdims=True),
            case('axes_0_2', [distinct(2, 3, 4)], axis=(0, 2), keepdims=False),
            case('axis_1_keepdims', [distinct(2, 3, 4)], axis=(1,), keepdims=True)],
    'softmax': [case('2d_axis1', [rnd(3, 5, lo=-2, hi=2)], axis=1),
                case('2d_axis0', [rnd(3, 5, lo=-2, hi=2)], axis=0),
                case('3d_axis1', [rnd(2, 3, 4, lo=-2, hi=2)], axis=1),
                case('axis_minus1', [rnd(3, 5, lo=-2, hi=2)], axis=-1),
                case('default_axis', [rnd(3, 5, lo=-2, hi=2)])],
    'log_softmax': [case('2d_axis1', [rnd(3, 5, lo=-2, hi=2)], axis=1),
                    case('2d_axis0', [rnd(3, 5, lo=-2, hi=2)], axis=0),
                    case('3d_axis2', [rnd(2, 3, 4, lo=-2, hi=2)], axis=2),
                    case('default_axis', [rnd(3, 5, lo=-2, hi=2)])],
    'layer_norm': [case('2d_last', [rnd(3, 5), pos(5), rnd(5)], axis=1, eps=1e-5),
                   case('3d_middle', [rnd(2, 3, 4), pos(3), rnd(3)], axis=1, eps=1e-3),
                   case('only_x', [rnd(3, 5), pos(5), rnd(5)], diff=(0,), axis=1, eps=1e-5),
                   case('axis_minus1', [rnd(2, 3, 4), pos(4), rnd(4)], axis=-1, eps=1e-5),
                   case('default_attrs', [rnd(3, 5), pos(5), rnd(5)])],
    # ------------------------------------------------------------ linalg
    'matmul': [case('2d', [rnd(3, 4), rnd(4, 2)]),
               case('batch_bcast', [rnd(2, 1, 3, 4), rnd(3, 4, 2)]),
               case('batch_left_only', [rnd(5, 3, 4), rnd(4, 2)]),
               case('only_right_diff', [rnd(2, 3, 4), rnd(2, 4, 2)], diff=(1,))],
    # ------------------------------------------------------------ movement
    'reshape': [case('2x3x4_to_4x6', [rnd(2, 3, 4)], shape=(4, 6)),
                case('with_minus_1', [rnd(2, 3, 4)], shape=(-1, 2))],
    'transpose': [case('axes_1_2_0', [rnd(2, 3, 4)], axes=(1, 2, 0)),
                  case('axes_none', [rnd(2, 3, 4)], axes=None),
                  case('axes_0_2_1', [rnd(2, 3, 4)], axes=(0, 2, 1))],
    'broadcast_to': [case('3x1_to_2x3x4', [rnd(3, 1)], shape=(2, 3, 4)),
                     case('4_to_3x4', [rnd(4)], shape=(3, 4))],
    'concatenate': [case('three_axis1', [rnd(2, 1), rnd(2, 3), rnd(2, 2)], axis=1),
                    case('two_axis0', [rnd(1, 3), rnd(2, 3)], axis=0),
                    case('middle_not_diff', [rnd(2, 2), rnd(2, 2), rnd(2, 2)], diff=(0, 2),
                         axis=1)],
    'getitem': [
        case('basic_slices', [rnd(4, 5)], key=(slice(1, 3), slice(None, None, 2))),
        case('int_and_slice', [rnd(4, 5)], key=(-1, slice(1, None))),
        case('none_ellipsis', [rnd(2, 3, 4)], key=(Ellipsis, None, 1)),
        case('index_array_dups', [rnd(3, 4), _idx(0, 2, 0, 1, 2, 2)], key=(IndexArg(0),)),
        case('slice_then_index_array', [rnd(3, 4), _idx(3, 1, 3)],
             key=(slice(None), IndexArg(0))),
        case('two_index_arrays_dups', [rnd(3, 4), _idx(0, 2, 0), _idx(1, 3, 1)],
             key=(IndexArg(0), IndexArg(1))),
        case('index_array_2d', [rnd(4, 3), onp.array([[0, 3], [3, 2]])], key=(IndexArg(0),)),
        case('bool_mask', [rnd(3, 4), _rng.random((3, 4)) < 0.5], key=(IndexArg(0),)),
    ],
    'index_add': [
        case('dups', [rnd(6, 4), _idx(0, 2, 0, 1, 2, 2)], key=(IndexArg(0),), shape=(3, 4)),
        case('basic', [rnd(2, 4)], key=(slice(1, 3),), shape=(4, 4)),
        case('slice_then_array', [rnd(3, 3), _idx(1, 1, 0)], key=(slice(None), IndexArg(0)),
             shape=(3, 2)),
    ],
    'setitem': [
        case('basic_bcast_value', [rnd(4, 5), rnd(5)], key=(slice(1, 3),)),
        case('basic_value_dim1', [rnd(4, 5), rnd(1, 5)], key=(slice(0, 4, 2),)),
        case('index_array', [rnd(4, 5), rnd(3, 5), _idx(0, 3, 1)], key=(IndexArg(0),)),
        case('scalar_value', [rnd(4, 5), 0.5], key=(slice(None), 2)),
        case('only_value_diff', [rnd(4, 5), rnd(2, 2)], diff=(1,),
             key=(slice(1, 3), slice(2, 4))),
        # duplicates: only the last write to a row reaches the output
        case('index_array_dups', [rnd(4, 5), rnd(3, 5), _idx(0, 2, 0)], key=(IndexArg(0),)),
    ],
}


# ---------------------------------------------------------------- helpers

def _flat_cases():
    for name in sorted(CASES):
        for c in CASES[name]:
            yield pytest.param(name, c, id=f'{name}-{c.id}')


def _to_nd(x, differentiable):
    if not isinstance(x, onp.ndarray):
        return x
    if x.dtype == onp.float64:
        nd = tnp.array(x, dtype='float64')
        if differentiable:
            nd.attach_grad()
        return nd
    return tnp.array(x, dtype=x.dtype)       # index arrays / conditions keep their dtype


def _weights(shape, seed):
    return onp.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(onp.float64)


def _loss_np(op, inputs, attrs, W):
    return float(onp.sum(onp.asarray(op.impl(*inputs, **attrs), dtype=onp.float64) * W))


def numeric_grad(f, inputs, i):
    """Central differences of the scalar function f(list_of_inputs) w.r.t. inputs[i]."""
    x = onp.array(inputs[i], dtype=onp.float64)
    g = onp.zeros_like(x)
    args = list(inputs)
    for j in range(x.size):
        xp = x.copy()
        xp.flat[j] += EPS
        args[i] = xp
        fp = f(args)
        xm = x.copy()
        xm.flat[j] -= EPS
        args[i] = xm
        fm = f(args)
        g.flat[j] = (fp - fm) / (2 * EPS)
    return g


# ---------------------------------------------------------------- the checks

@pytest.mark.parametrize('name,c', list(_flat_cases()))
def test_op_gradient_matches_finite_differences(name, c):
    op = OPS[name]
    y_ref = onp.asarray(op.impl(*c.inputs, **c.attrs))
    W = _weights(y_ref.shape, seed=zlib.crc32(f'{name}/{c.id}'.encode()))
    nds = [_to_nd(x, i in c.diff) for i, x in enumerate(c.inputs)]
    with autograd.record():
        y = op(*nds, **c.attrs)
        loss = (y * tnp.array(W, dtype='float64')).sum()
    # the forward value itself must agree with the reference
    onp.testing.assert_allclose(y.asnumpy(), y_ref, rtol=1e-12, atol=0)
    loss.backward()
    f = lambda args: _loss_np(op, args, c.attrs, W)   # noqa: E731
    for i in c.diff:
        expected = numeric_grad(f, c.inputs, i)
        got = nds[i].grad
        assert got is not None, f'input {i} has no gradient buffer'
        assert got.shape == c.inputs[i].shape
        onp.testing.assert_allclose(got.asnumpy(), expected, rtol=RTOL, atol=ATOL,
                                    err_msg=f'{name}[{c.id}] d/d input {i}')


@pytest.mark.parametrize('name,c', list(_flat_cases()))
def test_grad_rule_returns_input_shapes(name, c):
    """Call the rule directly: one entry per input; every needed entry has the
    input's exact shape and dtype (the tape writes leaf buffers with
    broadcasting assignment, so a wrong shape could otherwise slip through)."""
    op = OPS[name]
    inputs = tuple(tnp.array(x, dtype=x.dtype) if isinstance(x, onp.ndarray) else x
                   for x in c.inputs)
    out = op(*inputs, **c.attrs)
    g = tnp.array(_weights(out.shape, 7), dtype='float64')
    needs = tuple(i in c.diff for i in range(len(inputs)))
    grads = op.grad(GradCtx(inputs, out, c.attrs, needs), g)
    assert len(grads) == len(inputs)
    for i in c.diff:
        gi = grads[i]
        assert gi is not None, f'{name}: no gradient for needed input {i}'
        assert tuple(gi.shape) == c.inputs[i].shape, (name, i, gi.shape, c.inputs[i].shape)
        assert gi.dtype == onp.float64, (name, i, gi.dtype)


def test_every_differentiable_op_has_a_gradient_case():
    missing = sorted(n for n, op in OPS.items() if op.grad is not None and not CASES.get(n))
    assert not missing, f'differentiable ops without a gradient check in CASES: {missing}'


def test_cases_only_name_registered_ops():
    unknown = sorted(set(CASES) - set(OPS))
    assert not unknown, f'CASES names unregistered ops: {unknown}'
    nondiff = sorted(n for n in CASES if OPS[n].grad is None)
    assert not nondiff, f'CASES has entries for ops without a gradient: {nondiff}'


def test_case_ids_unique():
    for name, entries in CASES.items():
        ids = [c.id for c in entries]
        assert len(ids) == len(set(ids)), name


# ---------------------------------------------------------------- no gradient path

def _x():
    x = tnp.array(away(3, 4, margin=0.2, scale=2.0), dtype='float64')
    x.attach_grad()
    return x


NONDIFF_CALLS = {
    'equal': lambda x: OPS['equal'](x, x),
    'not_equal': lambda x: OPS['not_equal'](x, 0.5),
    'less': lambda x: OPS['less'](x, 0.0),
    'less_equal': lambda x: OPS['less_equal'](x, 0.0),
    'greater': lambda x: OPS['greater'](x, 0.0),
    'greater_equal': lambda x: OPS['greater_equal'](x, 0.0),
    'logical_and': lambda x: OPS['logical_and'](x, x),
    'logical_or': lambda x: OPS['logical_or'](x, x),
    'logical_not': lambda x: OPS['logical_not'](x),
    'invert': lambda x: OPS['invert'](OPS['greater'](x, 0.0)),
    'sign': lambda x: OPS['sign'](x),
    'floor_divide': lambda x: OPS['floor_divide'](x, 0.7),
    'argmax': lambda x: OPS['argmax'](x, axis=(1,), keepdims=False),
    'argmin': lambda x: OPS['argmin'](x, axis=None, keepdims=False),
    'stop_gradient': lambda x: OPS['stop_gradient'](x),
    'random_uniform': lambda x: OPS['random_uniform'](shape=x.shape, dtype='float64'),
    'random_normal': lambda x: OPS['random_normal'](shape=x.shape, dtype='float64'),
    'random_randint': lambda x: OPS['random_randint'](low=0, high=5, shape=x.shape),
}


def test_every_nondifferentiable_op_is_checked():
    nondiff = sorted(n for n, op in OPS.items() if op.grad is None)
    assert sorted(NONDIFF_CALLS) == nondiff


@pytest.mark.parametrize('name', sorted(NONDIFF_CALLS))
def test_nondifferentiable_op_cuts_the_graph(name):
    """autograd.record_op attaches no Node when op.grad is None, so an output
    depending on x only through such an op has no history: backward raises."""
    x = _x()
    with autograd.record():
        y = NONDIFF_CALLS[name](x) * 1.0
        loss = (y * 2.0).sum()
    with pytest.raises(RuntimeError, match='cannot differentiate'):
        loss.backward()
    onp.testing.assert_array_equal(x.grad.asnumpy(), onp.zeros((3, 4)))


@pytest.mark.parametrize('name', ['greater', 'sign', 'floor_divide', 'less_equal'])
def test_nondifferentiable_op_is_a_constant_inside_a_larger_graph(name):
    """x * op(x) (+ x): the piecewise-constant factor has zero derivative away
    from its jumps, so the finite-difference gradient is op(x) (+1) and autograd
    must treat op(x) as a constant."""
    xv = away(3, 4, margin=0.2, scale=2.0)
    ref = {'greater': lambda v: (v > 0.0) * 1.0, 'sign': onp.sign,
           'floor_divide': lambda v: onp.floor_divide(v, 0.7),
           'less_equal': lambda v: (v <= 0.0) * 1.0}[name]
    # keep x/0.7 away from integers so floor_divide is locally constant
    q = xv / 0.7
    xv = onp.where(onp.abs(q - onp.round(q)) < 0.1, xv + 0.2 * 0.7, xv)
    x = tnp.array(xv, dtype='float64')
    x.attach_grad()
    with autograd.record():
        c = NONDIFF_CALLS[name](x)
        loss = (x * c + x).sum()
    loss.backward()
    expected = numeric_grad(lambda a: float(onp.sum(a[0] * ref(a[0]) + a[0])), [xv], 0)
    onp.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('dtype', ['int32', 'bool'])
def test_astype_to_integer_has_no_gradient(dtype):
    xv = onp.array([0.3, 1.6, -2.2, 2.7])         # away from integers (and from 0 for bool)
    w = onp.array([1.0, -2.0, 3.0, 0.5])
    x = tnp.array(xv, dtype='float64')
    x.attach_grad()
    with autograd.record():
        loss = (x.astype(dtype) * tnp.array(w, dtype='float64')).sum()
    expected = numeric_grad(lambda a: float(onp.sum(a[0].astype(dtype) * w)), [xv], 0)
    assert onp.all(expected == 0)
    try:
        loss.backward()
    except RuntimeError:
        return                  # no gradient path at all is also correct
    onp.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- composites

def _check_composite(fn_tracer, fn_numpy, inputs, diff=None, train_mode=True, seed=0):
    """Autograd through a user-level function vs finite differences of a plain
    numpy reference.  Functions may return one array or a list of arrays."""
    if diff is None:
        diff = tuple(i for i, x in enumerate(inputs)
                     if isinstance(x, onp.ndarray) and x.dtype == onp.float64)
    ys_ref = fn_numpy(*inputs)
    single = not isinstance(ys_ref, (list, tuple))
    ys_ref = [ys_ref] if single else list(ys_ref)
    ws = [_weights(onp.shape(r), seed + k) for k, r in enumerate(ys_ref)]
    nds = [_to_nd(x, i in diff) for i, x in enumerate(inputs)]
    with autograd.record(train_mode=train_mode):
        ys = fn_tracer(*nds)
        ys = [ys] if single else list(ys)
        assert len(ys) == len(ys_ref)
        loss = None
        for y, w in zip(ys, ws):
            term = (y * tnp.array(w, dtype='float64')).sum()
            loss = term if loss is None else loss + term
    for y, r in zip(ys, ys_ref):
        onp.testing.assert_allclose(y.asnumpy(), r, rtol=1e-10, atol=1e-12)
    loss.backward()

    def f(args):
        outs = fn_numpy(*args)
        outs = [outs] if single else outs
        return float(sum(onp.sum(onp.asarray(o) * w) for o, w in zip(outs, ws)))

    for i in diff:
        expected = numeric_grad(f, inputs, i)
        onp.testing.assert_allclose(nds[i].grad.asnumpy(), expected, rtol=RTOL, atol=ATOL,
                                    err_msg=f'input {i}')


_verf = onp.vectorize(math.erf)


def test_grad_mean_var_std():
    x = rnd(3, 4)
    _check_composite(lambda a: [tnp.mean(a), tnp.mean(a, axis=1), tnp.mean(a, axis=(0, 1),
                                                                           keepdims=True)],
                     lambda a: [a.mean(), a.mean(axis=1), a.mean(axis=(0, 1), keepdims=True)],
                     [x])
    _check_composite(lambda a: [tnp.var(a), tnp.var(a, axis=0, ddof=1),
                                tnp.var(a, axis=-1, keepdims=True)],
                     lambda a: [a.var(), a.var(axis=0, ddof=1), a.var(axis=-1, keepdims=True)],
                     [x])
    _check_composite(lambda a: [tnp.std(a), tnp.std(a, axis=1)],
                     lambda a: [a.std(), a.std(axis=1)], [x])


def test_grad_dot_with_3d_second_operand():
    _check_composite(tnp.dot, onp.dot, [rnd(2, 3), rnd(4, 3, 5)])
    _check_composite(tnp.dot, onp.dot, [rnd(3), rnd(2, 3, 4)])
    _check_composite(tnp.dot, onp.dot, [rnd(2, 2, 3), rnd(3, 4)])


def test_grad_matmul_vectors():
    _check_composite(tnp.matmul, onp.matmul, [rnd(3), rnd(3)])
    _check_composite(tnp.matmul, onp.matmul, [rnd(3), rnd(2, 3, 4)])
    _check_composite(tnp.matmul, onp.matmul, [rnd(2, 3, 4), rnd(4)])


def test_grad_stack_split():
    _check_composite(lambda a, b, c: tnp.stack([a, b, c], axis=1),
                     lambda a, b, c: onp.stack([a, b, c], axis=1),
                     [rnd(2, 3), rnd(2, 3), rnd(2, 3)])
    _check_composite(lambda a: tnp.split(a, 3, axis=1),
                     lambda a: onp.split(a, 3, axis=1), [rnd(2, 6)])
    _check_composite(lambda a: tnp.split(a, [1, 4], axis=0),
                     lambda a: onp.split(a, [1, 4], axis=0), [rnd(5, 2)])


def test_grad_expand_dims_squeeze_take():
    _check_composite(lambda a: tnp.expand_dims(a, 1) * tnp.expand_dims(a, -1),
                     lambda a: onp.expand_dims(a, 1) * onp.expand_dims(a, -1), [rnd(2, 3)])
    _check_composite(lambda a: [tnp.squeeze(a), tnp.squeeze(a, axis=2)],
                     lambda a: [onp.squeeze(a), onp.squeeze(a, axis=2)], [rnd(1, 3, 1, 2)])
    _check_composite(lambda a: tnp.take(a, [0, 2, 2, 1], axis=1),
                     lambda a: onp.take(a, [0, 2, 2, 1], axis=1), [rnd(2, 3)])
    _check_composite(lambda a: tnp.take(a, onp.array([5, 0, 5])),
                     lambda a: onp.take(a, onp.array([5, 0, 5])), [rnd(2, 3)])


def _gelu_erf_np(x):
    return 0.5 * x * (1.0 + _verf(x / math.sqrt(2.0)))


def _gelu_tanh_np(x):
    return 0.5 * x * (1.0 + onp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def test_grad_gelu():
    # gelu's tanh form uses power(x, 3.0): its base need not be positive here
    # because the exponent is a constant (no log(a) term is needed)
    x = rnd(3, 4, lo=-3, hi=3)
    _check_composite(lambda a: npx.gelu(a, approximation='erf'), _gelu_erf_np, [x])
    _check_composite(lambda a: npx.gelu(a, approximation='tanh'), _gelu_tanh_np, [x])


def test_grad_softrelu():
    _check_composite(npx.softrelu, lambda a: onp.log1p(onp.exp(a)), [rnd(3, 4, lo=-5, hi=5)])
    _check_composite(lambda a: npx.activation(a, 'softrelu'), lambda a: onp.log1p(onp.exp(a)),
                     [onp.array([-30.0, -1.0, 0.0, 2.0, 30.0])])


def _bn_np(x, gamma, beta, eps=1e-5):
    red = (0, 2, 3)
    m = x.mean(axis=red, keepdims=True)
    v = ((x - m) ** 2).mean(axis=red, keepdims=True)
    shp = (1, -1, 1, 1)
    return (x - m) / onp.sqrt(v + eps) * gamma.reshape(shp) + beta.reshape(shp)


def test_grad_batch_norm_training():
    x = rnd(4, 3, 2, 2)
    gamma, beta = pos(3), rnd(3)
    rm = tnp.zeros((3,), dtype='float64')
    rv = tnp.ones((3,), dtype='float64')
    _check_composite(
        lambda a, g, b: npx.batch_norm(a, g, b, rm, rv, eps=1e-5, axis=1),
        lambda a, g, b: _bn_np(a, g, b), [x, gamma, beta], train_mode=True)


def test_grad_pick():
    data = rnd(4, 5)
    idx = onp.array([0, 4, 2, 2], dtype=onp.int64)
    _check_composite(lambda d, i: npx.pick(d, i, axis=-1),
                     lambda d, i: d[onp.arange(4), i], [data, idx], diff=(0,))
    _check_composite(lambda d, i: npx.pick(d, i, axis=0, keepdims=True),
                     lambda d, i: d[i, onp.arange(5)][None, :],
                     [data, onp.array([3, 0, 1, 3, 2])], diff=(0,))


def test_grad_one_hot_cross_entropy():
    logits = rnd(4, 5, lo=-2, hi=2)
    labels = onp.array([1, 0, 4, 1], dtype=onp.int64)

    def ce_np(z, lab):
        z = z - z.max(axis=1, keepdims=True)
        logp = z - onp.log(onp.exp(z).sum(axis=1, keepdims=True))
        return -(logp * onp.eye(5)[lab]).sum(axis=1)

    _check_composite(
        lambda z, lab: -(npx.log_softmax(z) * npx.one_hot(lab, 5, dtype='float64')).sum(axis=1),
        ce_np, [logits, labels], diff=(0,))


def test_grad_npx_wrappers_softmax_layer_norm():
    x = rnd(3, 4, lo=-2, hi=2)
    _check_composite(lambda a: npx.softmax(a, axis=0, temperature=2.0),
                     lambda a: onp.exp(a / 2) / onp.exp(a / 2).sum(axis=0, keepdims=True), [x])

    def ln_np(a, g, b):
        m = a.mean(axis=0, keepdims=True)
        v = ((a - m) ** 2).mean(axis=0, keepdims=True)
        return (a - m) / onp.sqrt(v + 1e-5) * g[:, None] + b[:, None]

    _check_composite(lambda a, g, b: npx.layer_norm(a, g, b, axis=0),
                     ln_np, [rnd(3, 4), pos(3), rnd(3)])


def test_grad_accumulates_over_reuse_and_grad_req_add():
    """x used twice accumulates; grad_req='add' adds across backward calls."""
    xv = rnd(3)
    x = tnp.array(xv, dtype='float64')
    x.attach_grad(grad_req='add')
    for _ in range(2):
        with autograd.record():
            loss = (x * x * x + tnp.exp(x)).sum()
        loss.backward()
    expected = 2 * numeric_grad(lambda a: float(onp.sum(a[0] ** 3 + onp.exp(a[0]))), [xv], 0)
    onp.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=RTOL, atol=ATOL)


def test_tracer_float64_is_used():
    # sanity: the checks really run in float64
    assert tnp.array(rnd(2), dtype='float64').dtype == onp.float64
    assert isinstance(tnp.array(rnd(2), dtype='float64'), tracer.NDArray)
