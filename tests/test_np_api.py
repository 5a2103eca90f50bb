"""Forward results of the user-facing ``tracer.np`` / ``tracer.npx`` API vs real NumPy.

Data is float32 and results are compared with ``rtol=1e-6`` unless a test says
otherwise (compositions of several float32 operations, such as gelu or
layer_norm, get a documented looser tolerance against float64 references).
"""
import math
import warnings

import numpy as onp
import pytest

import tracer
from tracer import autograd, npx
from tracer import np
from tracer.errors import DTypeError, ShapeError
from tracer.ops.special import erf as special_erf

RTOL = 1e-6

_rng = onp.random.default_rng(1234)


def f32(*shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, size=shape).astype(onp.float32)


def check(got, expected, rtol=RTOL, atol=0.0, dtype=True):
    """``got`` is an NDArray whose values (and dtype) match numpy's ``expected``."""
    assert isinstance(got, tracer.NDArray), type(got)
    expected = onp.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if dtype:
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    onp.testing.assert_allclose(got.asnumpy(), expected, rtol=rtol, atol=atol)


# ====================================================================== creation

def test_array_from_lists_defaults_to_float32():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    assert a.dtype == onp.float32
    onp.testing.assert_array_equal(a.asnumpy(), onp.array([[1, 2, 3], [4, 5, 6]], onp.float32))
    assert np.array([1.5, 2.5]).dtype == onp.float32
    assert np.array(3.0).shape == ()
    assert np.array([True, False]).dtype == onp.bool_
    assert np.array([1, 2], dtype='int32').dtype == onp.int32


@pytest.mark.parametrize('dtype', ['float64', 'float16', 'int32', 'int64', 'uint8', 'bool'])
def test_array_preserves_numpy_dtype(dtype):
    src = onp.arange(6).reshape(2, 3).astype(dtype)
    a = np.array(src)
    assert a.dtype == src.dtype
    onp.testing.assert_array_equal(a.asnumpy(), src)


def test_array_copies_its_input():
    src = onp.ones(3, onp.float32)
    a = np.array(src)
    src[0] = 5
    assert a.asnumpy()[0] == 1


def test_zeros_ones_full():
    check(np.zeros((2, 3)), onp.zeros((2, 3), onp.float32))
    check(np.zeros(4), onp.zeros(4, onp.float32))
    check(np.ones((3,), dtype='int32'), onp.ones(3, onp.int32))
    check(np.ones((2, 2), dtype=onp.float64), onp.ones((2, 2)))
    check(np.full((2, 3), 7.5), onp.full((2, 3), 7.5, onp.float32))
    check(np.full((2,), 3, dtype='int64'), onp.full((2,), 3, onp.int64))


def test_arange_eye():
    check(np.arange(5), onp.arange(5).astype(onp.float32))
    check(np.arange(2, 11, 3), onp.arange(2, 11, 3).astype(onp.float32))
    check(np.arange(0.0, 1.0, 0.25), onp.arange(0.0, 1.0, 0.25).astype(onp.float32))
    check(np.arange(4, dtype='int64'), onp.arange(4, dtype=onp.int64))
    check(np.eye(3), onp.eye(3, dtype=onp.float32))
    check(np.eye(2, 4, k=1), onp.eye(2, 4, k=1, dtype=onp.float32))


def test_zeros_like_ones_like():
    x = np.array(onp.arange(6, dtype=onp.int32).reshape(2, 3))
    check(np.zeros_like(x), onp.zeros((2, 3), onp.int32))
    check(np.ones_like(x), onp.ones((2, 3), onp.int32))
    check(np.ones_like(x, dtype='float32'), onp.ones((2, 3), onp.float32))


def test_random_uniform_normal_randint():
    u = np.random.uniform(-1, 3, size=(200, 50))
    assert u.shape == (200, 50) and u.dtype == onp.float32
    uv = u.asnumpy()
    assert uv.min() >= -1 and uv.max() < 3
    assert abs(uv.mean() - 1.0) < 0.05           # 10000 draws: sd of mean ~ 0.012
    n = np.random.normal(2.0, 0.5, size=(100, 100))
    assert n.shape == (100, 100) and n.dtype == onp.float32
    assert abs(n.asnumpy().mean() - 2.0) < 0.02 and abs(n.asnumpy().std() - 0.5) < 0.02
    r = np.random.randint(3, 7, size=(1000,))
    assert r.shape == (1000,) and r.dtype == onp.int64
    assert set(onp.unique(r.asnumpy())) == {3, 4, 5, 6}
    r1 = np.random.randint(4, size=10)
    assert r1.asnumpy().min() >= 0 and r1.asnumpy().max() < 4
    assert np.random.uniform(size=(3,), dtype='float64').dtype == onp.float64
    assert np.random.uniform().shape == ()


def test_random_seed_reproducible():
    np.random.seed(42)
    a = np.random.uniform(size=(5,)).asnumpy()
    b = np.random.normal(size=(3,)).asnumpy()
    np.random.seed(42)
    onp.testing.assert_array_equal(np.random.uniform(size=(5,)).asnumpy(), a)
    onp.testing.assert_array_equal(np.random.normal(size=(3,)).asnumpy(), b)
    np.random.seed(43)
    assert not onp.array_equal(np.random.uniform(size=(5,)).asnumpy(), a)


# ====================================================================== operators

A = f32(3, 1, 4)
B = f32(2, 4)
POS = f32(2, 4, lo=0.5, hi=2.0)


@pytest.mark.parametrize('opname', ['add', 'sub', 'mul', 'truediv', 'pow', 'floordiv', 'mod'])
def test_binary_operators_broadcast_and_scalars(opname):
    import operator
    op = getattr(operator, opname)
    a, b = A, POS                  # positive right operand: no division by 0, real powers
    if opname == 'pow':
        a = onp.abs(A) + 0.5
    ta, tb = np.array(a), np.array(b)
    check(op(ta, tb), op(a, b))
    check(op(tb, ta), op(b, a))
    # Python scalars on either side keep float32
    check(op(ta, 1.5), op(a, 1.5))
    check(op(2.5, tb), op(2.5, b))
    check(op(tb, 2), op(b, 2))


def test_numpy_array_on_the_left_returns_ndarray():
    a, b = f32(2, 3), f32(3)
    for res, exp in [(a + np.array(b), a + b), (a - np.array(b), a - b),
                     (a * np.array(b), a * b), (a / np.array(b + 3), a / (b + 3)),
                     (a < np.array(b), a < b), (a >= np.array(b), a >= b)]:
        check(res, exp)
    # float64 numpy + float32 NDArray follows numpy's promotion
    check(a.astype(onp.float64) + np.array(b), a.astype(onp.float64) + b)


@pytest.mark.parametrize('opname', ['lt', 'le', 'gt', 'ge', 'eq', 'ne'])
def test_comparisons(opname):
    import operator
    op = getattr(operator, opname)
    a = onp.round(A)                      # some equal values
    b = onp.round(B)
    ta, tb = np.array(a), np.array(b)
    check(op(ta, tb), op(a, b))
    check(op(ta, 0.0), op(a, 0.0))
    check(op(1.0, tb), op(1.0, b))


def test_unary_operators():
    a = f32(3, 4)
    check(-np.array(a), -a)
    check(abs(np.array(a)), onp.abs(a))
    check(+np.array(a), a)


def test_invert_operator_bool():
    m = onp.array([True, False, True])
    check(~np.array(m), ~m)


def test_invert_operator_int():
    a = onp.array([1, 0, -3], onp.int32)
    check(~np.array(a), ~a)


def test_unary_plus_is_a_new_array():
    a = f32(3)
    x = np.array(a)
    y = +x
    y += 1
    onp.testing.assert_array_equal(x.asnumpy(), a)
    check(y, +a + 1)


def test_inplace_operators():
    a, b = f32(3, 4), f32(4, lo=0.5, hi=2)
    x = np.array(a)
    ref = a.copy()
    x += np.array(b)
    ref += b
    check(x, ref)
    x -= 1.5
    ref -= onp.float32(1.5)
    check(x, ref)
    x *= np.array(b)
    ref *= b
    check(x, ref)
    x /= 4
    ref /= onp.float32(4)
    check(x, ref)
    # integer arrays stay integer under an in-place op, as in numpy
    xi = np.array(onp.arange(4, dtype=onp.int64))
    xi += 3
    check(xi, onp.arange(4) + 3)


def test_setitem_in_place():
    a = f32(4, 3)
    x, ref = np.array(a), a.copy()
    x[1:, 0] = 5
    ref[1:, 0] = 5
    check(x, ref)
    row = f32(3)
    x[:] = np.array(row)
    ref[:] = row
    check(x, ref)
    idx = onp.array([0, 2])
    x[idx] = -1.0
    ref[idx] = -1.0
    check(x, ref)
    x[np.array([3, 1], dtype='int64'), 2] = np.array([7.0, 8.0])
    ref[[3, 1], 2] = [7.0, 8.0]
    check(x, ref)
    m = x > 0
    x[m] = 0.0
    ref[ref > 0] = 0.0
    check(x, ref)


def test_setitem_values_vs_numpy():
    a, v = f32(4, 3), f32(3)
    x = np.array(a)
    x[:] = v
    check(x, onp.broadcast_to(v, (4, 3)))


def test_basic_index_view_sees_inplace_updates():
    x = np.array(onp.arange(12, dtype=onp.float32).reshape(3, 4))
    ref = onp.arange(12, dtype=onp.float32).reshape(3, 4)
    v, rv = x[1:], ref[1:]
    col, rcol = x[:, 2], ref[:, 2]
    x += 1
    ref += 1
    check(v, rv)
    check(col, rcol)
    x[2, 3] = 100
    ref[2, 3] = 100
    check(v, rv)
    x[:] = 0.5
    ref[:] = 0.5
    check(v, rv)
    check(col, rcol)


# ====================================================================== indexing

IDX_SRC = onp.arange(60, dtype=onp.float32).reshape(3, 4, 5) * 0.5 - 7


@pytest.mark.parametrize('key', [
    1, -1, (1, 2), (1, 2, 3), slice(1, None), (slice(None), slice(1, 3)),
    (slice(None, None, -1), slice(None, None, 2)), (Ellipsis, 1), (None, 1), (1, None, Ellipsis),
    (slice(0, 3, 2), -2, slice(None, 4)),
], ids=repr)
def test_basic_indexing(key):
    check(np.array(IDX_SRC)[key], IDX_SRC[key])


@pytest.mark.parametrize('key', [
    [0, 2], [2, 2, 0], (slice(None), [3, 0, 0]), ([0, 2], [1, 3]), (Ellipsis, [4, 0]),
    ([[0, 1], [2, 0]],), ([0, 2], slice(None), [1, 4]), (1, [0, 0, 3]),
], ids=repr)
def test_integer_array_indexing(key):
    np_key = tuple(onp.array(k) if isinstance(k, list) else k for k in
                   (key if isinstance(key, tuple) else (key,)))
    check(np.array(IDX_SRC)[key], IDX_SRC[np_key])
    # NDArray index arrays behave the same
    nd_key = tuple(np.array(onp.array(k), dtype='int64') if isinstance(k, list) else k
                   for k in (key if isinstance(key, tuple) else (key,)))
    check(np.array(IDX_SRC)[nd_key], IDX_SRC[np_key])


def test_out_of_bounds_index_raises_index_error():
    x = np.array(IDX_SRC)
    with pytest.raises(IndexError):
        x[[5]]
    with pytest.raises(IndexError):
        x[5]


def test_boolean_masks():
    a = f32(3, 4)
    x = np.array(a)
    check(x[x > 0], a[a > 0])
    check(x[onp.array([True, False, True])], a[onp.array([True, False, True])])
    check(x[:, onp.array([False, True, True, False])], a[:, [False, True, True, False]])


# ====================================================================== shape manipulation

def test_reshape():
    a = f32(2, 3, 4)
    x = np.array(a)
    check(x.reshape(4, -1), a.reshape(4, -1))
    check(x.reshape((-1,)), a.reshape(-1))
    check(np.reshape(x, (2, -1, 2)), a.reshape(2, -1, 2))
    check(x.flatten(), a.flatten())
    check(np.ravel(x), a.ravel())


def test_transpose():
    a = f32(2, 3, 4)
    x = np.array(a)
    check(x.T, a.T)
    check(x.transpose(), a.transpose())
    check(x.transpose(1, 0, 2), a.transpose(1, 0, 2))
    check(np.transpose(x, (2, 0, 1)), onp.transpose(a, (2, 0, 1)))
    check(np.transpose(x, (-1, 0, 1)), onp.transpose(a, (-1, 0, 1)))
    check(np.swapaxes(x, 0, -1), onp.swapaxes(a, 0, -1))
    check(np.moveaxis(x, 0, -1), onp.moveaxis(a, 0, -1))


def test_expand_dims_squeeze():
    a = f32(3, 1, 4, 1)
    x = np.array(a)
    check(np.expand_dims(x, 0), onp.expand_dims(a, 0))
    check(np.expand_dims(x, -1), onp.expand_dims(a, -1))
    check(np.expand_dims(x, (0, 2)), onp.expand_dims(a, (0, 2)))
    check(np.squeeze(x), onp.squeeze(a))
    check(np.squeeze(x, axis=1), onp.squeeze(a, axis=1))
    check(np.squeeze(x, axis=-1), onp.squeeze(a, axis=-1))
    with pytest.raises(ShapeError):
        np.squeeze(x, axis=0)


def test_concatenate_stack_split():
    a, b, c = f32(2, 3), f32(2, 3), f32(1, 3)
    check(np.concatenate([np.array(a), np.array(b), np.array(c)]), onp.concatenate([a, b, c]))
    check(np.concatenate([np.array(a), np.array(b)], axis=-1), onp.concatenate([a, b], axis=-1))
    check(np.concatenate([np.array(a), np.array(c)], axis=None),
          onp.concatenate([a, c], axis=None))
    check(np.stack([np.array(a), np.array(b)]), onp.stack([a, b]))
    check(np.stack([np.array(a), np.array(b)], axis=1), onp.stack([a, b], axis=1))
    check(np.stack([np.array(a), np.array(b)], axis=-1), onp.stack([a, b], axis=-1))
    x = f32(6, 4)
    for got, exp in zip(np.split(np.array(x), 3), onp.split(x, 3)):
        check(got, exp)
    for got, exp in zip(np.split(np.array(x), 2, axis=1), onp.split(x, 2, axis=1)):
        check(got, exp)
    parts = np.split(np.array(x), [1, 4])
    exp_parts = onp.split(x, [1, 4])
    assert len(parts) == len(exp_parts)
    for got, exp in zip(parts, exp_parts):
        check(got, exp)
    with pytest.raises(ShapeError):
        np.split(np.array(x), 4)


def test_broadcast_to():
    a = f32(3, 1)
    check(np.broadcast_to(np.array(a), (2, 3, 4)), onp.broadcast_to(a, (2, 3, 4)))
    b = f32(4)
    check(np.broadcast_to(np.array(b), (3, 4)), onp.broadcast_to(b, (3, 4)))
    with pytest.raises(ShapeError):
        np.broadcast_to(np.array(b), (3, 5))


# ====================================================================== reductions

RED = f32(2, 3, 4)


@pytest.mark.parametrize('name', ['sum', 'mean', 'max', 'min', 'prod'])
@pytest.mark.parametrize('axis', [None, 0, 1, -1, (0, 2), (-1, 0)], ids=repr)
@pytest.mark.parametrize('keepdims', [False, True])
def test_reductions(name, axis, keepdims):
    x = np.array(RED)
    got = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    exp = getattr(onp, name)(RED, axis=axis, keepdims=keepdims)
    check(got, exp)
    # method form
    check(getattr(x, name)(axis=axis, keepdims=keepdims), exp)


@pytest.mark.parametrize('name', ['argmax', 'argmin'])
@pytest.mark.parametrize('axis', [None, 0, 1, -1], ids=repr)
@pytest.mark.parametrize('keepdims', [False, True])
def test_argmax_argmin(name, axis, keepdims):
    got = getattr(np, name)(np.array(RED), axis=axis, keepdims=keepdims)
    exp = getattr(onp, name)(RED, axis=axis, keepdims=keepdims)
    assert got.shape == exp.shape
    onp.testing.assert_array_equal(got.asnumpy(), exp)
    assert got.dtype.kind == 'i'


def test_var_std():
    x = np.array(RED)
    check(np.var(x), onp.var(RED), rtol=1e-5)
    check(np.var(x, axis=1, ddof=1), onp.var(RED, axis=1, ddof=1), rtol=1e-5)
    check(np.std(x, axis=(0, 2), keepdims=True), onp.std(RED, axis=(0, 2), keepdims=True),
          rtol=1e-5)


def test_sum_of_ints_and_bools_dtype():
    i = onp.arange(6, dtype=onp.int32).reshape(2, 3)
    check(np.sum(np.array(i)), onp.sum(i))
    check(np.sum(np.array(i > 2), axis=0), onp.sum(i > 2, axis=0))


# ====================================================================== products

@pytest.mark.parametrize('sa,sb', [
    ((3,), (3,)), ((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)),
    ((2, 5, 3), (3, 4)), ((2, 3), (4, 3, 5)), ((2, 2, 3), (4, 3, 5)), ((3,), (2, 3, 4)),
], ids=str)
def test_dot(sa, sb):
    a, b = f32(*sa), f32(*sb)
    # dot with an N-D second operand is a transpose + reshape + matmul: float32
    # sums in another order than numpy's dot, so rtol 1e-5 there
    tol = dict(rtol=1e-5, atol=1e-6) if len(sb) > 2 else {}
    check(np.dot(np.array(a), np.array(b)), onp.dot(a, b), **tol)


def test_dot_scalar():
    a = f32(2, 3)
    check(np.dot(np.array(a), np.array(2.0)), onp.dot(a, onp.float32(2.0)))


@pytest.mark.parametrize('sa,sb', [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (2, 3, 4)), ((2, 3, 4), (4,)),
    ((2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((5, 2, 3), (3, 4)),
], ids=str)
def test_matmul(sa, sb):
    a, b = f32(*sa), f32(*sb)
    check(np.matmul(np.array(a), np.array(b)), onp.matmul(a, b))
    check(np.array(a) @ np.array(b), a @ b)
    check(a @ np.array(b), a @ b)


# ====================================================================== elementwise functions

EW = f32(3, 4)
EWP = f32(3, 4, lo=0.1, hi=3.0)


@pytest.mark.parametrize('name,data', [
    ('exp', EW), ('log', EWP), ('sqrt', EWP), ('tanh', EW), ('abs', EW), ('sign', EW),
    ('negative', EW), ('square', EW), ('reciprocal', EWP),
])
def test_unary_functions(name, data):
    check(getattr(np, name)(np.array(data)), getattr(onp, name)(data))


def test_clip_with_array_bounds():
    a, lo = f32(3, 4), f32(4, lo=-1.0, hi=0.0)
    check(np.clip(np.array(a), np.array(lo), 0.5), onp.clip(a, lo, 0.5))


def test_where_single_argument():
    cond = onp.array([[True, False, True], [False, False, True]])
    try:
        got = np.where(np.array(cond))
    except (TypeError, NotImplementedError, ValueError):
        return                        # refusing the one-argument form is acceptable
    exp = onp.where(cond)
    assert isinstance(got, tuple) and len(got) == len(exp)
    for g, e in zip(got, exp):
        onp.testing.assert_array_equal(onp.asarray(g), e)


def test_sign_of_zero():
    a = onp.array([-2.0, 0.0, 3.0], onp.float32)
    check(np.sign(np.array(a)), onp.sign(a))


def test_maximum_minimum_where_clip_power():
    a, b = f32(3, 1, 4), f32(2, 4)
    check(np.maximum(np.array(a), np.array(b)), onp.maximum(a, b))
    check(np.minimum(np.array(a), np.array(b)), onp.minimum(a, b))
    check(np.maximum(np.array(a), 0.0), onp.maximum(a, onp.float32(0)))
    cond = a > 0
    check(np.where(np.array(cond), np.array(a), np.array(b)), onp.where(cond, a, b))
    check(np.where(np.array(a) > 0, np.array(a), 0.0), onp.where(cond, a, onp.float32(0)))
    check(np.clip(np.array(a), -0.5, 0.7), onp.clip(a, -0.5, 0.7))
    check(np.clip(np.array(a), None, 0.7), onp.clip(a, None, 0.7))
    check(np.array(a).clip(-0.5, None), onp.clip(a, -0.5, None))
    base = f32(3, 4, lo=0.2, hi=2.0)
    expo = f32(3, 4, lo=-2.0, hi=3.0)
    check(np.power(np.array(base), np.array(expo)), onp.power(base, expo))
    check(np.power(np.array(base), 2), onp.power(base, 2))
    check(np.power(2.0, np.array(expo)), onp.power(onp.float32(2.0), expo))


# ====================================================================== npx

def _sigmoid64(x):
    x = onp.asarray(x, onp.float64)
    with onp.errstate(over='ignore'):
        return 1.0 / (1.0 + onp.exp(-x))


def test_relu_sigmoid():
    a = f32(3, 4, lo=-5, hi=5)
    check(npx.relu(np.array(a)), onp.maximum(a, 0))
    check(npx.sigmoid(np.array(a)), _sigmoid64(a).astype(onp.float32), rtol=1e-6, atol=1e-7)


def test_sigmoid_large_inputs_no_warnings():
    a = onp.array([-1e4, -500.0, -90.0, -20.0, 0.0, 20.0, 90.0, 500.0, 1e4], onp.float32)
    # overflow / invalid / divide must not happen; harmless underflow to 0 is allowed
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with onp.errstate(over='raise', invalid='raise', divide='raise', under='ignore'):
            got = npx.sigmoid(np.array(a))
    assert onp.all(onp.isfinite(got.asnumpy()))
    check(got, _sigmoid64(a).astype(onp.float32), rtol=1e-6, atol=1e-30)


def _softmax64(x, axis):
    x = onp.asarray(x, onp.float64)
    e = onp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize('axis', [-1, 0, 1])
def test_softmax_log_softmax(axis):
    a = f32(3, 5, lo=-4, hi=4)
    check(npx.softmax(np.array(a), axis=axis), _softmax64(a, axis), rtol=1e-5, atol=1e-7,
          dtype=False)
    assert npx.softmax(np.array(a), axis=axis).dtype == onp.float32
    check(npx.log_softmax(np.array(a), axis=axis), onp.log(_softmax64(a, axis)), rtol=1e-5,
          atol=1e-6, dtype=False)
    # large logits do not overflow
    big = a * 1000
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        s = npx.softmax(np.array(big), axis=axis)
    onp.testing.assert_allclose(s.asnumpy(), _softmax64(big, axis), rtol=1e-5, atol=1e-7)


def test_softmax_temperature():
    a = f32(2, 5)
    onp.testing.assert_allclose(npx.softmax(np.array(a), temperature=2.0).asnumpy(),
                                _softmax64(a / 2, -1), rtol=1e-5, atol=1e-7)


_verf = onp.vectorize(math.erf)


def test_gelu_erf_and_tanh():
    # float32 chain of ~5 ops vs a float64 reference: rtol 1e-5, atol 1e-6
    a = f32(4, 5, lo=-6, hi=6)
    x64 = a.astype(onp.float64)
    ref_erf = 0.5 * x64 * (1.0 + _verf(x64 / math.sqrt(2.0)))
    ref_tanh = 0.5 * x64 * (1.0 + onp.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    g = npx.gelu(np.array(a))
    assert g.dtype == onp.float32
    onp.testing.assert_allclose(g.asnumpy(), ref_erf, rtol=1e-5, atol=1e-6)
    gt = npx.gelu(np.array(a), approximation='tanh')
    onp.testing.assert_allclose(gt.asnumpy(), ref_tanh, rtol=1e-5, atol=1e-6)
    # the two forms really differ (tanh is an approximation)
    assert onp.abs(ref_erf - ref_tanh).max() > 1e-5


def test_layer_norm():
    # float32 normalization vs float64 reference: rtol 1e-5, atol 1e-5
    x, g, b = f32(3, 4, 5), f32(4, lo=0.5, hi=1.5), f32(4)
    m = x.astype(onp.float64).mean(axis=1, keepdims=True)
    v = x.astype(onp.float64).var(axis=1, keepdims=True)
    ref = (x - m) / onp.sqrt(v + 1e-5) * g[:, None] + b[:, None]
    got = npx.layer_norm(np.array(x), np.array(g), np.array(b), axis=1)
    assert got.dtype == onp.float32
    onp.testing.assert_allclose(got.asnumpy(), ref, rtol=1e-5, atol=1e-5)
    x2, g2, b2 = f32(2, 6), f32(6), f32(6)
    m2 = x2.astype(onp.float64).mean(-1, keepdims=True)
    ref2 = (x2 - m2) / onp.sqrt(x2.astype(onp.float64).var(-1, keepdims=True) + 1e-3) * g2 + b2
    onp.testing.assert_allclose(
        npx.layer_norm(np.array(x2), np.array(g2), np.array(b2), eps=1e-3).asnumpy(), ref2,
        rtol=1e-5, atol=1e-5)


def _bn_ref(x, gamma, beta, mean, var, eps):
    shp = (1, -1, 1, 1)
    return (x - mean.reshape(shp)) / onp.sqrt(var.reshape(shp) + eps) * gamma.reshape(shp) \
        + beta.reshape(shp)


def test_batch_norm_inference_uses_running_stats():
    x, gamma, beta = f32(4, 3, 2, 2), f32(3, lo=0.5, hi=1.5), f32(3)
    rm, rv = f32(3), f32(3, lo=0.5, hi=2.0)
    rm_nd, rv_nd = np.array(rm), np.array(rv)
    got = npx.batch_norm(np.array(x), np.array(gamma), np.array(beta), rm_nd, rv_nd, eps=1e-5)
    onp.testing.assert_allclose(got.asnumpy(), _bn_ref(x, gamma, beta, rm, rv, 1e-5),
                                rtol=1e-5, atol=1e-5)
    # inference leaves running statistics alone
    onp.testing.assert_array_equal(rm_nd.asnumpy(), rm)
    onp.testing.assert_array_equal(rv_nd.asnumpy(), rv)


def test_batch_norm_training_uses_batch_stats_and_updates_running_stats():
    x, gamma, beta = f32(4, 3, 2, 2), f32(3, lo=0.5, hi=1.5), f32(3)
    rm, rv = f32(3), f32(3, lo=0.5, hi=2.0)
    rm_nd, rv_nd = np.array(rm), np.array(rv)
    with autograd.train_mode():
        got = npx.batch_norm(np.array(x), np.array(gamma), np.array(beta), rm_nd, rv_nd,
                             eps=1e-5, momentum=0.9)
    x64 = x.astype(onp.float64)
    bm, bv = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    onp.testing.assert_allclose(got.asnumpy(), _bn_ref(x64, gamma, beta, bm, bv, 1e-5),
                                rtol=1e-5, atol=1e-5)
    n = 4 * 2 * 2
    onp.testing.assert_allclose(rm_nd.asnumpy(), 0.9 * rm + 0.1 * bm, rtol=1e-5, atol=1e-6)
    onp.testing.assert_allclose(rv_nd.asnumpy(), 0.9 * rv + 0.1 * bv * n / (n - 1),
                                rtol=1e-5, atol=1e-6)


def test_dropout():
    x = np.ones((200, 500))
    # outside training: identity
    onp.testing.assert_array_equal(npx.dropout(x, p=0.3).asnumpy(), onp.ones((200, 500)))
    np.random.seed(0)
    with autograd.train_mode():
        y = npx.dropout(x, p=0.3).asnumpy()
    zero_frac = (y == 0).mean()
    assert abs(zero_frac - 0.3) < 0.01          # 1e5 draws: sd ~ 0.0015
    survivors = y[y != 0]
    onp.testing.assert_allclose(survivors, 1 / 0.7, rtol=1e-6)
    # also inside record(train_mode=True)
    with autograd.record():
        y2 = npx.dropout(x, p=0.5).asnumpy()
    assert abs((y2 == 0).mean() - 0.5) < 0.01
    with autograd.record(train_mode=False):
        onp.testing.assert_array_equal(npx.dropout(x, p=0.5).asnumpy(), onp.ones((200, 500)))


def test_dropout_keeps_dtype_in_training():
    x = np.ones((10, 10))
    with autograd.train_mode():
        assert npx.dropout(x, p=0.3).dtype == onp.float32


def test_one_hot():
    labels = onp.array([0, 3, 1, 3, 2])
    got = npx.one_hot(np.array(labels, dtype='int64'), 4)
    check(got, onp.eye(4, dtype=onp.float32)[labels])
    got2 = npx.one_hot(np.array(labels.reshape(5, 1), dtype='int64'), 4, on_value=5.0,
                       off_value=-1.0)
    check(got2, onp.where(onp.eye(4)[labels.reshape(5, 1)] > 0, 5.0, -1.0).astype(onp.float32))


def test_pick():
    data = f32(4, 5)
    idx = onp.array([0, 4, 2, 2])
    check(npx.pick(np.array(data), np.array(idx, dtype='int64')), data[onp.arange(4), idx])
    check(npx.pick(np.array(data), np.array(idx.astype(onp.float32))),
          data[onp.arange(4), idx])           # float labels, as produced by datasets
    check(npx.pick(np.array(data), np.array(idx, dtype='int64'), keepdims=True),
          data[onp.arange(4), idx][:, None])
    idx0 = onp.array([3, 0, 1, 3, 2])
    check(npx.pick(np.array(data), np.array(idx0, dtype='int64'), axis=0),
          data[idx0, onp.arange(5)])
    # out of range indices are clipped (mode='clip') or wrapped (mode='wrap')
    bad = onp.array([-1, 7, 2, 5])
    check(npx.pick(np.array(data), np.array(bad, dtype='int64')),
          data[onp.arange(4), onp.clip(bad, 0, 4)])
    check(npx.pick(np.array(data), np.array(bad, dtype='int64'), mode='wrap'),
          data[onp.arange(4), bad % 5])


# ====================================================================== conversion, metadata

def test_asnumpy_is_a_copy_and_asarray_works():
    a = f32(2, 3)
    x = np.array(a)
    c = x.asnumpy()
    assert isinstance(c, onp.ndarray)
    c[0, 0] = 99
    onp.testing.assert_array_equal(x.asnumpy(), a)
    arr = onp.asarray(x)
    assert isinstance(arr, onp.ndarray)
    onp.testing.assert_array_equal(arr, a)
    assert arr.dtype == onp.float32
    onp.testing.assert_array_equal(onp.array(x, dtype=onp.float64), a.astype(onp.float64))


def test_metadata_and_item():
    a = f32(2, 3, 4)
    x = np.array(a)
    assert x.shape == (2, 3, 4) and x.size == 24 and x.ndim == 3 and x.dtype == onp.float32
    assert len(x) == 2
    s = np.array([[2.5]])
    assert s.item() == 2.5 and isinstance(s.item(), float)
    assert np.array(7, dtype='int64').item() == 7
    assert float(np.array(1.25)) == 1.25
    assert x.tolist() == a.tolist()


def test_astype_and_copy():
    a = f32(2, 3) * 10
    x = np.array(a)
    check(x.astype('int32'), a.astype(onp.int32))
    check(x.astype(onp.float64), a.astype(onp.float64))
    check(np.astype(x, 'float16'), a.astype(onp.float16))
    y = x.copy()
    check(y, a)
    y += 1
    onp.testing.assert_array_equal(x.asnumpy(), a)          # the copy is independent
    z = x.astype('float32')
    z += 1
    onp.testing.assert_array_equal(x.asnumpy(), a)          # astype copies by default


# ====================================================================== errors

def test_broadcast_error_names_both_shapes():
    with pytest.raises(ShapeError) as ei:
        np.ones((2, 3)) + np.ones((4,))
    msg = str(ei.value)
    assert '(2, 3)' in msg and '(4,)' in msg
    with pytest.raises(ShapeError) as ei:
        np.maximum(np.ones((5, 2)), np.ones((3, 1, 3)))
    assert '(5, 2)' in str(ei.value) and '(3, 1, 3)' in str(ei.value)


def test_unknown_dtype_lists_supported():
    with pytest.raises(DTypeError) as ei:
        np.zeros((2,), dtype='float99')
    msg = str(ei.value)
    assert 'float99' in msg
    for name in ('float16', 'float32', 'float64', 'int32', 'int64', 'uint8', 'bool'):
        assert name in msg
    with pytest.raises(DTypeError):
        np.array([1, 2], dtype='complex128')


def test_reshape_incompatible_size():
    x = np.ones((2, 3))
    with pytest.raises(ShapeError) as ei:
        x.reshape(4, 2)
    assert '(2, 3)' in str(ei.value)
    with pytest.raises(ShapeError):
        x.reshape(-1, 4)
    with pytest.raises(ShapeError):
        np.reshape(x, (-1, -1))


def test_matmul_inner_dim_mismatch():
    with pytest.raises(ShapeError) as ei:
        np.matmul(np.ones((2, 3)), np.ones((4, 5)))
    assert '(2, 3)' in str(ei.value) and '(4, 5)' in str(ei.value)
    with pytest.raises(ShapeError) as ei:
        np.ones((7, 2, 3)) @ np.ones((4, 2))
    assert '(7, 2, 3)' in str(ei.value) and '(4, 2)' in str(ei.value)


def test_matmul_vector_mismatch_names_user_shapes():
    with pytest.raises(ShapeError) as ei:
        np.matmul(np.ones((3,)), np.ones((4, 5)))
    assert '(3,)' in str(ei.value) and '(4, 5)' in str(ei.value)


def test_dot_mismatch():
    with pytest.raises(ShapeError):
        np.dot(np.ones((2, 3)), np.ones((4, 2, 5)))
    with pytest.raises(ShapeError):
        np.dot(np.ones((2, 3)), np.ones((4, 5)))


def test_setitem_shape_error():
    x = np.zeros((3, 4))
    with pytest.raises(ShapeError):
        x[:, 1] = np.ones((4,))


# ====================================================================== special functions

def test_erf_matches_math_erf():
    xs = onp.linspace(-8, 8, 4001)
    ref = onp.array([math.erf(v) for v in xs])
    got = special_erf(xs)
    assert got.dtype == onp.float64
    assert onp.abs(got - ref).max() < 1e-13
    # branch boundary at |x| = 2.5 and tiny arguments
    edge = onp.array([-2.5, -2.4999999, 2.4999999, 2.5, 2.5000001, 1e-300, -1e-20, 0.0])
    assert onp.abs(special_erf(edge) - onp.array([math.erf(v) for v in edge])).max() < 1e-13
    # float32 in, float32 out; nan propagates
    assert special_erf(onp.ones(2, onp.float32)).dtype == onp.float32
    assert onp.isnan(special_erf(onp.array([onp.nan]))[0])


def test_npx_erf_matches_math_erf():
    xs = onp.linspace(-4, 4, 101).astype(onp.float32)
    got = npx.erf(np.array(xs))
    assert got.dtype == onp.float32
    onp.testing.assert_allclose(got.asnumpy(), [math.erf(v) for v in xs.astype(onp.float64)],
                                rtol=1e-6, atol=1e-7)
