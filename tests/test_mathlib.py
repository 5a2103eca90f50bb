"""codegen.lower.mathlib: accuracy, special values, vector/scalar agreement
and AVX-512 code generation of the fast math functions.

Each function is wrapped in a kernel ``void k(T* in, T* out, i64 n)`` with a
``<16 x float>`` (``<8 x double>``) body and a scalar tail loop that emits
the same function on the scalar type, optimized at O3 for the host and run
through MCJIT on numpy arrays.
"""
import ctypes
import math

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from codegen.lower import mathlib

FUNCS = ('exp', 'log', 'tanh', 'sigmoid', 'erf', 'softrelu', 'sqrt', 'abs')

# Documented float32 accuracy: max relative error against a float64
# reference over the grids below (absolute error, scaled by 1e-30, where
# |reference| < 1e-30).  Measured on znver4 (2M points each): exp 8.1e-8,
# log 7.9e-8, tanh 2.8e-7, sigmoid 1.7e-7, erf 3.6e-7, softrelu 1.4e-7,
# sqrt 6.0e-8, abs 0.
ACCURACY = {
    'exp': 1.5e-7,
    'log': 1.5e-7,
    'tanh': 4e-7,
    'sigmoid': 3e-7,
    'erf': 5e-7,
    'softrelu': 2.5e-7,
    'sqrt': 6e-8,       # correctly rounded: half an ulp, 2**-24
    'abs': 0.0,
}
# float64 goes through libm per lane (sigmoid / softrelu composed);
# measured <= 4.3e-16.
ACCURACY_F64 = {
    'exp': 1e-15, 'log': 1e-15, 'tanh': 1e-15, 'sigmoid': 1e-15,
    'erf': 1e-15, 'softrelu': 1e-15, 'sqrt': 2e-16, 'abs': 0.0,
}

F32, F64 = ir.FloatType(), ir.DoubleType()
WIDTH = {'f32': 16, 'f64': 8}
NPTYPE = {'f32': np.float32, 'f64': np.float64}
IRTYPE = {'f32': F32, 'f64': F64}
F32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------ harness
def _emit_kernel(mod, name, fn, elt, width):
    """void name(T* in, T* out, i64 n): vector body of ``width`` + scalar
    tail, both calling ``fn(builder, value)``."""
    i64 = ir.IntType(64)
    ptr = elt.as_pointer()
    vt = ir.VectorType(elt, width)
    align = 4 if elt == F32 else 8
    func = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr, ptr, i64]),
                       name)
    src, dst, n = func.args
    for p in (src, dst):
        p.add_attribute('noalias')
    entry = func.append_basic_block('entry')
    vloop = func.append_basic_block('vloop')
    tcheck = func.append_basic_block('tcheck')
    tloop = func.append_basic_block('tloop')
    done = func.append_basic_block('done')

    b = ir.IRBuilder(entry)
    nvec = b.and_(n, i64(-width))
    b.cbranch(b.icmp_signed('>', nvec, i64(0)), vloop, tcheck)

    b.position_at_end(vloop)
    i = b.phi(i64)
    i.add_incoming(i64(0), entry)
    v = b.load(b.bitcast(b.gep(src, [i]), vt.as_pointer()), align=align)
    b.store(fn(b, v), b.bitcast(b.gep(dst, [i]), vt.as_pointer()),
            align=align)
    inext = b.add(i, i64(width))
    i.add_incoming(inext, vloop)
    b.cbranch(b.icmp_signed('<', inext, nvec), vloop, tcheck)

    b.position_at_end(tcheck)
    b.cbranch(b.icmp_signed('<', nvec, n), tloop, done)

    b.position_at_end(tloop)
    j = b.phi(i64)
    j.add_incoming(nvec, tcheck)
    s = b.load(b.gep(src, [j]), align=align)
    b.store(fn(b, s), b.gep(dst, [j]), align=align)
    jnext = b.add(j, i64(1))
    j.add_incoming(jnext, tloop)
    b.cbranch(b.icmp_signed('<', jnext, n), tloop, done)

    b.position_at_end(done)
    b.ret_void()
    return func


def _target_machine():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(), opt=3, jit=True)


def _optimize(mod, tm):
    ref = llvm.parse_assembly(str(mod))
    ref.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(ref, pb)
    return ref


class _Jit:
    def __init__(self):
        self.tm = _target_machine()
        mod = ir.Module(name='mathlib_test')
        mod.triple = llvm.get_process_triple()
        for fname in FUNCS:
            for dt in ('f32', 'f64'):
                _emit_kernel(mod, f'k_{fname}_{dt}', getattr(mathlib, fname),
                             IRTYPE[dt], WIDTH[dt])
        self.ir = str(mod)
        self.ref = _optimize(mod, self.tm)
        self.ee = llvm.create_mcjit_compiler(self.ref, self.tm)
        self.ee.finalize_object()
        proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64)
        self.funcs = {
            (f, dt): proto(self.ee.get_function_address(f'k_{f}_{dt}'))
            for f in FUNCS for dt in ('f32', 'f64')}

    def run(self, fname, x, n=None, chunk=None):
        x = np.ascontiguousarray(x)
        dt = 'f32' if x.dtype == np.float32 else 'f64'
        out = np.full_like(x, np.nan)
        f = self.funcs[(fname, dt)]
        n = x.size if n is None else n
        if chunk is None:
            f(x.ctypes.data, out.ctypes.data, n)
        else:
            xp, op, isz = x.ctypes.data, out.ctypes.data, x.itemsize
            for s in range(0, n, chunk):
                f(xp + s * isz, op + s * isz, min(chunk, n - s))
        return out


@pytest.fixture(scope='module')
def jit():
    return _Jit()


# --------------------------------------------------------------- references
def _erf64(x):
    try:
        from scipy.special import erf as sp_erf
        return sp_erf(x)
    except ImportError:                                      # pragma: no cover
        return np.vectorize(math.erf, otypes=[np.float64])(x)


def _sigmoid64(x):
    with np.errstate(over='ignore'):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0, e) / (1.0 + e)


REF64 = {
    'exp': np.exp, 'log': np.log, 'tanh': np.tanh, 'sigmoid': _sigmoid64,
    'erf': _erf64, 'softrelu': lambda x: np.logaddexp(0.0, x),
    'sqrt': np.sqrt, 'abs': np.abs,
}


def _ref(fname, x):
    with np.errstate(all='ignore'):
        return REF64[fname](np.asarray(x, np.float64))


def _grid(fname, npts):
    """Dense float32 grid over the useful range of each function."""
    lin, geo = np.linspace, np.geomspace
    tiny = geo(1e-45, 1.0, npts // 8)
    if fname == 'exp':
        x = lin(-104.0, 89.0, npts)
    elif fname == 'log':
        x = np.concatenate([2.0 ** lin(-149.0, 127.99, npts // 2),
                            lin(0.5, 2.0, npts // 2)])
    elif fname in ('tanh', 'erf'):
        x = np.concatenate([lin(-10.0, 10.0, npts - npts // 4), tiny, -tiny])
    elif fname in ('sigmoid', 'softrelu'):
        x = lin(-110.0, 110.0, npts)
    elif fname == 'sqrt':
        x = 2.0 ** lin(-149.0, 127.99, npts)
    else:
        x = lin(-1e3, 1e3, npts)
    return x


SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 1.0, -1.0,
            0.5, 2.0, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, -1e-45, 1e-40,
            -1e-40, 1.1754944e-38, -1.1754944e-38, 88.72, 88.73, -87.5,
            -103.0, -104.0, -150.0, 100.0, -100.0, 20.0, -20.0, 9.0, -9.0,
            8.0, -8.0, 4.0, -4.0, 3.9, -3.9, 1e-4, -1e-4]


def _max_err(out, ref, finite_max):
    """(max relative error, max scaled absolute error) where comparable."""
    out = out.astype(np.float64)
    ok = np.isfinite(ref) & (np.abs(ref) <= finite_max)
    big = ok & (np.abs(ref) > 1e-30)
    small = ok & ~big
    with np.errstate(invalid='ignore'):
        rel = np.abs(out[big] - ref[big]) / np.abs(ref[big])
        ab = np.abs(out[small] - ref[small]) / 1e-30
    rel = np.nan_to_num(rel, nan=np.inf)
    ab = np.nan_to_num(ab, nan=np.inf)
    return (rel.max(initial=0.0), ab.max(initial=0.0))


# -------------------------------------------------------------------- tests
@pytest.mark.parametrize('fname', FUNCS)
def test_accuracy_f32(jit, fname):
    x = _grid(fname, 2_000_003).astype(np.float32)   # n % 16 != 0
    out = jit.run(fname, x)
    ref = _ref(fname, x)
    rel, ab = _max_err(out, ref, F32_MAX)
    bound = ACCURACY[fname]
    assert rel <= bound, f'{fname}: max relative error {rel:.3g} > {bound}'
    assert ab <= bound, f'{fname}: max absolute error {ab * 1e-30:.3g}'
    # results beyond float32 range overflow to inf with the right sign
    over = np.isfinite(ref) & (np.abs(ref) > F32_MAX)
    assert np.array_equal(out[over], np.copysign(np.inf, ref[over]))


@pytest.mark.parametrize('fname', FUNCS)
def test_accuracy_f64(jit, fname):
    x = _grid(fname, 200_003)
    if fname == 'log':
        x = np.concatenate([x, 2.0 ** np.linspace(-1074, 1023.9, 10_001)])
    out = jit.run(fname, x)
    rel, ab = _max_err(out, _ref(fname, x), np.inf)
    bound = ACCURACY_F64[fname]
    assert rel <= bound, f'{fname}: max relative error {rel:.3g} > {bound}'
    assert ab <= bound


def _np_same_dtype(fname, x):
    """numpy's own results in x's dtype (the behaviour to match in kind)."""
    one = x.dtype.type(1)
    with np.errstate(all='ignore'):
        if fname == 'sigmoid':
            return one / (one + np.exp(-x))
        if fname == 'softrelu':
            return np.logaddexp(x.dtype.type(0), x)
        if fname == 'erf':
            return _erf64(x.astype(np.float64)).astype(x.dtype)
        return getattr(np, fname)(x)


@pytest.mark.parametrize('dt', ['f32', 'f64'])
@pytest.mark.parametrize('fname', FUNCS)
def test_special_values(jit, fname, dt):
    x = np.array(SPECIALS * 2, NPTYPE[dt])       # through vector and tail
    out = jit.run(fname, x).astype(np.float64)
    ref = _np_same_dtype(fname, x).astype(np.float64)
    assert np.array_equal(np.isnan(out), np.isnan(ref)), (x, out, ref)
    inf = np.isinf(ref)
    assert np.array_equal(out[inf], ref[inf]), (x[inf], out[inf])
    assert not np.isinf(out[~inf]).any(), (x[~inf], out[~inf])
    fin = np.isfinite(ref)
    # numpy's float32 sigmoid underflows to 0 for x < -88.7 (we do not)
    tol = 1e-6 * np.abs(ref[fin]) + (1e-37 if dt == 'f32' else 1e-300)
    assert (np.abs(out[fin] - ref[fin]) <= tol).all(), (x[fin], out[fin])
    # saturation is exact for huge |x|: +-1 for tanh/erf, 0/1 for sigmoid,
    # and the sign of zero results matches numpy's
    huge = np.abs(x.astype(np.float64)) >= 1e30
    if fname in ('tanh', 'erf', 'sigmoid'):
        assert np.array_equal(out[huge], ref[huge]), (x[huge], out[huge])
    zero = (ref == 0) & (out == 0)
    assert np.array_equal(np.signbit(out[zero]), np.signbit(ref[zero]))


@pytest.mark.parametrize('dt', ['f32', 'f64'])
@pytest.mark.parametrize('fname', FUNCS)
def test_scalar_tail_matches_vector_body(jit, fname, dt):
    rng = np.random.default_rng(0)
    g = _grid(fname, 40_000)
    x = np.concatenate([np.array(SPECIALS), rng.choice(g, 15 * 16 * 12 - 40)])
    x = x.astype(NPTYPE[dt])
    assert x.size % 16 == 0 and x.size % 15 == 0
    vec = jit.run(fname, x)                 # n % 16 == 0: vector body only
    tail = jit.run(fname, x, chunk=15)      # n = 15 per call: tail only
    same = (vec == tail) | (np.isnan(vec) & np.isnan(tail))
    assert same.all(), (x[~same], vec[~same], tail[~same])
    # n not a multiple of the width: body and tail in the same call
    mixed = jit.run(fname, x, n=x.size - 5)
    assert np.array_equal(mixed[:-5], vec[:-5], equal_nan=True)
    assert np.isnan(mixed[-5:]).all()       # nothing written past n


def test_many_emissions_in_one_module():
    """All functions, several times each, in one function, for several
    vector widths and both precisions: declarations are shared."""
    mod = ir.Module(name='many')
    for elt, tag in ((F32, 'f'), (F64, 'd')):
        for w in (1, 4, 8, 16):
            ty = elt if w == 1 else ir.VectorType(elt, w)
            fn = ir.Function(mod, ir.FunctionType(ty, [ty]), f'g_{tag}{w}')
            b = ir.IRBuilder(fn.append_basic_block())
            acc = fn.args[0]
            for _ in range(3):
                for fname in FUNCS:
                    acc = b.fadd(acc, getattr(mathlib, fname)(b, acc))
            b.ret(acc)
    names = [g.name for g in mod.global_values]
    assert len(names) == len(set(names))
    assert 'llvm.fma.v16f32' in names and 'llvm.fma.f32' in names
    assert 'exp' in names and 'log1p' in names
    llvm.parse_assembly(str(mod)).verify()


def test_type_errors():
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]),
                     'f')
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(TypeError):
        mathlib.exp(b, fn.args[0])


def test_f32_exp_kernel_uses_zmm():
    if not llvm.get_host_cpu_features().get('avx512f', False):
        pytest.skip('host has no AVX-512')
    tm = _target_machine()
    mod = ir.Module(name='exp_only')
    mod.triple = llvm.get_process_triple()
    _emit_kernel(mod, 'k_exp', mathlib.exp, F32, 16)
    asm = tm.emit_assembly(_optimize(mod, tm))
    assert 'zmm' in asm
    assert 'vfmadd' in asm
    assert 'expf' not in asm            # no libm call: the polynomial is inline
