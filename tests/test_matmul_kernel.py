"""The matmul kernel emitter (codegen/lower/matmul.py): kernels are emitted
into a module, optimized at O3 for the host, JIT-compiled with MCJIT and
called through ctypes, then checked against numpy (float64 reference).

Tolerances: inputs are uniform in [-1, 1]; float32 results must satisfy
|C - ref| <= 1e-5*|ref| + 1e-6*K (the atol grows with the reduction
length K), float64 ones |C - ref| <= 1e-12*|ref| + 1e-13*K.

Every operand lives inside a larger buffer surrounded by sentinels (and,
for A/B/C with leading dimensions, gaps between rows): after each call A
and B must be bit-identical and every element of C outside the computed
block must still hold the sentinel.  Reads past the operands are caught
with guard pages (PROT_NONE) in a subprocess.
"""
import ctypes
import mmap
import os
import pathlib
import subprocess
import sys

import numpy as onp
import pytest

llvm = pytest.importorskip('llvmlite.binding')
from llvmlite import ir  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from codegen.lower.matmul import emit_matmul  # noqa: E402

SENTINEL = -7.25e30
FORCE_TILED = {'dot_m_min': 0, 'dot_m_max': 0}
FORCE_DOT = {'dot_m_min': 10 ** 9}

_TM = []
_KEEP = []          # execution engines must outlive the ctypes functions


def target_machine():
    if not _TM:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _TM.append(llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
            opt=3, jit=True))
    return _TM[0]


def compile_kernels(specs):
    """specs: [(name, (M, N, K), kwargs)] -> ({name: cfunc}, optimized module)."""
    tm = target_machine()
    mod = ir.Module('matmul_test')
    mod.triple = llvm.get_default_triple()
    for name, shape, kw in specs:
        emit_matmul(mod, name, *shape, **kw)
    ref = llvm.parse_assembly(str(mod))
    ref.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(ref, pb)
    ee = llvm.create_mcjit_compiler(ref, tm)
    ee.finalize_object()
    _KEEP.append(ee)
    P, L = ctypes.c_void_p, ctypes.c_int64
    proto = ctypes.CFUNCTYPE(None, P, P, P, P, L, L, L)
    return {n: proto(ee.get_function_address(n)) for n, _, _ in specs}, ref


def extra_array(*arrays):
    """The ``i8** extra`` argument: a ctypes array of data pointers."""
    return (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])


# --------------------------------------------------------------- operands
def embedded(rows, cols, ld, dtype, rng, pad=37):
    """A rows x cols matrix with row stride ld inside a sentinel-filled
    buffer with `pad` elements before and after.  Returns (buffer, view)."""
    buf = onp.full(pad + (rows - 1) * ld + cols + pad, SENTINEL, dtype)
    view = onp.lib.stride_tricks.as_strided(
        buf[pad:], shape=(rows, cols), strides=(ld * buf.itemsize, buf.itemsize))
    view[...] = rng.uniform(-1, 1, (rows, cols)).astype(dtype)
    return buf, view


def tolerance(dtype, K):
    return (1e-5, 1e-6 * K) if dtype == 'float32' else (1e-12, 1e-13 * K)


def check_close(C, ref, dtype, K, what):
    rtol, atol = tolerance(dtype, K)
    err = onp.abs(C.astype(onp.float64) - ref)
    bad = err > rtol * onp.abs(ref) + atol
    assert not bad.any(), (f'{what}: {bad.sum()} wrong elements, max abs err {err.max():.3g} '
                           f'(atol {atol:.3g}); first at {onp.argwhere(bad)[0]}')


def run_case(f, M, N, K, *, dtype='float32', trans_b=False, lda=None, ldb=None, ldc=None,
             rows=None, extra=(), batch=0, post=None, seed=0, what=''):
    """Call kernel f on embedded random operands and check everything.
    post(acc64, rows_slice) -> expected values for the epilogue (float64)."""
    rng = onp.random.default_rng(seed)
    lda = K if lda is None else lda
    ldb = (K if trans_b else N) if ldb is None else ldb
    ldc = N if ldc is None else ldc
    abuf, A = embedded(M, K, lda, dtype, rng)
    bbuf, B = embedded(*((N, K) if trans_b else (K, N)), ldb, dtype, rng)
    cbuf, C = embedded(M, N, ldc, dtype, rng)
    cbuf[...] = SENTINEL
    a0, b0 = abuf.copy(), bbuf.copy()
    mb, me = (0, M) if rows is None else rows
    ex = extra_array(*extra)
    f(A.ctypes.data, B.ctypes.data, C.ctypes.data, ex, batch, mb, me)
    assert onp.array_equal(abuf, a0) and onp.array_equal(bbuf, b0), f'{what}: A or B modified'
    lo, hi = max(mb, 0), min(me, M)
    ref = A.astype(onp.float64) @ (B.T if trans_b else B).astype(onp.float64)
    expect = onp.full(cbuf.shape, SENTINEL, dtype)
    if hi > lo:
        part = ref[lo:hi]
        if post is not None:
            part = post(part, slice(lo, hi))
        check_close(C[lo:hi], part, dtype, K, what)
        view = onp.lib.stride_tricks.as_strided(
            expect[37:], shape=(M, N), strides=(ldc * expect.itemsize, expect.itemsize))
        view[lo:hi] = C[lo:hi]
    untouched = cbuf == expect
    assert untouched.all(), (f'{what}: {(~untouched).sum()} elements of C outside rows '
                             f'[{lo}, {hi}) x [0, {N}) (or in the padding) were written')


# --------------------------------------------------------------- epilogues
def _vload(b, base, idx, like):
    """Load a value of like.type (vector or scalar) at base[idx]."""
    p = b.gep(base, [idx])
    if isinstance(like.type, ir.VectorType):
        return b.load(b.bitcast(p, like.type.as_pointer()), align=4)
    return b.load(p, align=4)


def _extra_ptr(b, extra, i, elem):
    return b.bitcast(b.load(b.gep(extra, [ir.Constant(ir.IntType(64), i)])), elem.as_pointer())


def bias_relu(b, extra, batch, row, col, acc):
    """max(acc + bias[col], 0) with the bias pointer in extra[0]."""
    elem = acc.type.element if isinstance(acc.type, ir.VectorType) else acc.type
    v = b.fadd(acc, _vload(b, _extra_ptr(b, extra, 0, elem), col, acc))
    zero = ir.Constant(v.type, None if isinstance(v.type, ir.VectorType) else 0.0)
    return b.select(b.fcmp_ordered('>', v, zero), v, zero)


def residual_epilogue(M, N):
    """acc * s[row] + R[batch, row, col] (s in extra[0], R in extra[1]):
    uses row, col and batch."""
    def epi(b, extra, batch, row, col, acc):
        vec = isinstance(acc.type, ir.VectorType)
        elem = acc.type.element if vec else acc.type
        s = b.load(b.gep(_extra_ptr(b, extra, 0, elem), [row]), align=4)
        if vec:
            s = b.insert_element(ir.Constant(acc.type, None), s, ir.Constant(ir.IntType(32), 0))
            s = b.shuffle_vector(s, ir.Constant(acc.type, None),
                                 ir.Constant(ir.VectorType(ir.IntType(32), acc.type.count), None))
        i64 = ir.IntType(64)
        idx = b.add(b.add(b.mul(batch, ir.Constant(i64, M * N)),
                          b.mul(row, ir.Constant(i64, N))), col)
        r = _vload(b, _extra_ptr(b, extra, 1, elem), idx, acc)
        return b.fadd(b.fmul(acc, s), r)
    return epi


class Recorder:
    """Wraps an epilogue and records the value types it was called with."""

    def __init__(self, fn):
        self.fn, self.kinds = fn, set()

    def __call__(self, b, extra, batch, row, col, acc):
        assert row.type == ir.IntType(64) and col.type == ir.IntType(64)
        self.kinds.add(acc.type.count if isinstance(acc.type, ir.VectorType) else 1)
        out = self.fn(b, extra, batch, row, col, acc)
        assert out.type == acc.type
        return out


# --------------------------------------------------------------- tests
SHAPES = [(1, 1, 1), (1, 1, 7), (1, 9, 1), (7, 1, 1), (7, 13, 5), (2, 256, 20),
          (33, 65, 129), (64, 512, 784), (5, 3, 17), (13, 31, 33), (6, 32, 16),
          (17, 100, 3), (3, 5, 300), (50, 47, 31), (9, 36, 40), (100, 20, 64)]


@pytest.mark.parametrize('trans_b', [False, True])
def test_shapes_float32(trans_b):
    specs = [(f'k{i}', s, dict(trans_b=trans_b)) for i, s in enumerate(SHAPES)]
    fns, _ = compile_kernels(specs)
    for i, (M, N, K) in enumerate(SHAPES):
        run_case(fns[f'k{i}'], M, N, K, trans_b=trans_b, seed=i, what=f'{M}x{N}x{K} tb={trans_b}')


# shapes x tile settings that force each code path (dot vs packed tiles,
# k blocks through C, packing for trans_b=False or not, other tile sizes)
PATH_SHAPES = [(1, 1, 1), (7, 13, 5), (33, 65, 129), (4, 7, 300), (10, 20, 36)]
PATHS = {
    'tiled': (True, FORCE_TILED),
    'dot': (True, FORCE_DOT),
    'kblocks_t': (True, dict(FORCE_TILED, stack_bytes=2048)),
    'kblocks_n': (False, {'stack_bytes': 2048, 'pack_nt_min_m': 1, 'pack_nt_alias': 1}),
    'pack_n': (False, {'pack_nt_min_m': 1, 'pack_nt_alias': 1}),
    'nopack_n': (False, {'pack_nt': False}),
    'scalar_cols_n': (False, {'nt_dot_min_m': 10 ** 9}),
    'mr6_nv1': (True, dict(FORCE_TILED, mr=6, nv=1)),
    'mr3_nv3_n': (False, {'mr': 3, 'nv': 3}),
    'mc_blocks': (True, dict(FORCE_TILED, mc_bytes=2048)),
}


def test_code_paths():
    specs, cases = [], []
    for pname, (tb, tiles) in PATHS.items():
        for i, s in enumerate(PATH_SHAPES):
            name = f'{pname}_{i}'
            specs.append((name, s, dict(trans_b=tb, tiles=tiles)))
            cases.append((name, s, tb))
    fns, _ = compile_kernels(specs)
    for name, (M, N, K), tb in cases:
        run_case(fns[name], M, N, K, trans_b=tb, what=name)


def test_vector_width_8():
    shapes = [(7, 13, 5), (33, 65, 129), (3, 19, 40)]
    specs = [(f'y{tb}_{i}_{dt}', s, dict(trans_b=tb, vector_width=8, dtype=dt))
             for dt in ('float32', 'float64') for tb in (False, True)
             for i, s in enumerate(shapes)]
    fns, _ = compile_kernels(specs)
    for name, (M, N, K), kw in specs:
        run_case(fns[name], M, N, K, trans_b=kw['trans_b'], dtype=kw['dtype'], what=name)


def test_float64():
    shapes = [(1, 1, 1), (7, 13, 5), (2, 256, 20), (33, 65, 129), (20, 9, 70)]
    specs = [(f'd{tb}_{i}', s, dict(trans_b=tb, dtype='float64'))
             for tb in (False, True) for i, s in enumerate(shapes)]
    specs += [(f'dp{i}', s, dict(trans_b=True, dtype='float64', tiles=FORCE_TILED))
              for i, s in enumerate(shapes)]
    fns, _ = compile_kernels(specs)
    for name, (M, N, K), kw in specs:
        run_case(fns[name], M, N, K, dtype='float64', trans_b=kw['trans_b'], what=name)


@pytest.mark.parametrize('trans_b', [False, True])
def test_leading_dimensions(trans_b):
    cases = [((7, 13, 5), (9, 20, 16)), ((33, 65, 129), (130, 140, 70)),
             ((2, 256, 20), (21, 300, 257)), ((64, 40, 48), (64, 48, 41))]
    specs = []
    for i, ((M, N, K), (lda, ldb, ldc)) in enumerate(cases):
        if not trans_b:
            ldb = max(ldb, N + 3)
        specs.append((f'ld{i}', (M, N, K), dict(trans_b=trans_b, lda=lda, ldb=ldb, ldc=ldc)))
    fns, _ = compile_kernels(specs)
    for name, (M, N, K), kw in specs:
        run_case(fns[name], M, N, K, trans_b=trans_b, lda=kw['lda'], ldb=kw['ldb'],
                 ldc=kw['ldc'], what=f'{name} {kw}')


def test_row_ranges():
    shapes = [(33, 65, 129, True), (33, 65, 129, False), (3, 40, 300, True), (13, 31, 33, False),
              (50, 47, 31, True)]
    specs = [(f'r{i}', s[:3], dict(trans_b=s[3])) for i, s in enumerate(shapes)]
    fns, _ = compile_kernels(specs)
    for i, (M, N, K, tb) in enumerate(shapes):
        for rows in [(0, M), (1, M - 1), (M // 2, M // 2 + 1), (M - 1, M), (0, 1), (M, M),
                     (2, 2), (M - 1, 1), (0, 7), (5, 14), (-3, M + 5)]:
            run_case(fns[f'r{i}'], M, N, K, trans_b=tb, rows=rows,
                     what=f'{M}x{N}x{K} tb={tb} rows={rows}')


EPI_SHAPES = [(7, 13, 5, True), (33, 65, 129, True), (33, 65, 129, False), (2, 256, 20, True),
              (13, 31, 33, False), (5, 3, 17, False), (64, 100, 300, True)]


def test_epilogue_bias_relu():
    rec = Recorder(bias_relu)
    specs = []
    for i, (M, N, K, tb) in enumerate(EPI_SHAPES):
        specs.append((f'e{i}', (M, N, K), dict(trans_b=tb, epilogue=rec)))
        kblocks = dict(FORCE_TILED, stack_bytes=1024, pack_nt_min_m=1, pack_nt_alias=1)
        specs.append((f'eb{i}', (M, N, K),                     # k blocks: epilogue once
                      dict(trans_b=tb, epilogue=rec, tiles=kblocks)))
    fns, _ = compile_kernels(specs)
    assert 1 in rec.kinds and 16 in rec.kinds and (8 in rec.kinds or 4 in rec.kinds), rec.kinds
    rng = onp.random.default_rng(1)
    for name, (M, N, K), kw in specs:
        bias = rng.uniform(-1, 1, N).astype(onp.float32)
        run_case(fns[name], M, N, K, trans_b=kw['trans_b'], extra=(bias,),
                 post=lambda acc, rs, bias=bias: onp.maximum(acc + bias, 0),
                 rows=(1, M) if M > 1 else None,
                 what=f'{name} bias+relu')


def test_epilogue_row_col_batch():
    specs = []
    for i, (M, N, K, tb) in enumerate(EPI_SHAPES):
        epi = residual_epilogue(M, N)
        specs.append((f'r{i}', (M, N, K), dict(trans_b=tb, epilogue=epi)))
        other = FORCE_DOT if tb else {'pack_nt_min_m': 1, 'pack_nt_alias': 1}
        specs.append((f'rd{i}', (M, N, K), dict(trans_b=tb, epilogue=epi, tiles=other)))
    fns, _ = compile_kernels(specs)
    rng = onp.random.default_rng(2)
    for name, (M, N, K), kw in specs:
        scale = rng.uniform(0.5, 2, M).astype(onp.float32)
        R = rng.uniform(-1, 1, (3, M, N)).astype(onp.float32)
        for batch in (0, 2):
            run_case(fns[name], M, N, K, trans_b=kw['trans_b'], extra=(scale, R), batch=batch,
                     post=lambda acc, rs, s=scale, r=R[batch]: acc * s[rs, None] + r[rs],
                     rows=(M // 3, M), what=f'{name} residual batch={batch}')


def test_bad_arguments():
    mod = ir.Module()
    with pytest.raises(ValueError):
        emit_matmul(mod, 'a', 0, 3, 3)
    with pytest.raises(ValueError):
        emit_matmul(mod, 'b', 3, 3, 3, lda=2)
    with pytest.raises(NotImplementedError):
        emit_matmul(mod, 'c', 3, 3, 3, dtype='int32')
    with pytest.raises(ValueError):
        emit_matmul(mod, 'd', 3, 3, 3, vector_width=12)


def test_assembly_uses_zmm_fma():
    if not llvm.get_host_cpu_features().get('avx512f', False):
        pytest.skip('host has no avx512f')
    _, ref = compile_kernels([('mm', (64, 256, 256), dict(trans_b=True))])
    asm = target_machine().emit_assembly(ref)
    fma = [ln for ln in asm.splitlines() if 'vfmadd' in ln]
    assert any('zmm' in ln for ln in fma), fma[:5]


# --------------------------------------------------------------- guard pages
PACK_N = {'pack_nt_min_m': 1, 'pack_nt_alias': 1}
GUARD_CASES = [((1, 1, 1), False, None), ((7, 13, 5), True, None), ((7, 13, 5), False, None),
               ((2, 256, 20), True, None), ((33, 65, 129), True, None),
               ((33, 65, 129), False, None), ((33, 65, 129), True, FORCE_TILED),
               ((33, 65, 129), True, FORCE_DOT), ((13, 31, 33), False, PACK_N),
               ((5, 3, 17), True, FORCE_TILED),
               ((9, 20, 35), True, dict(FORCE_TILED, stack_bytes=1024)),
               ((9, 20, 35), False, dict(PACK_N, stack_bytes=512)),
               ((12, 6, 70), False, {'nt_dot_min_m': 10 ** 9})]


def _guarded(nelem, dtype, at_end, keep):
    """A 1-d array of nelem elements that ends right before (at_end) or
    starts right after a PROT_NONE page."""
    page = mmap.PAGESIZE
    itemsize = onp.dtype(dtype).itemsize
    nbytes = nelem * itemsize
    data_pages = -(-nbytes // page)
    mm = mmap.mmap(-1, (data_pages + 2) * page)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for p in (addr, addr + (data_pages + 1) * page):
        assert libc.mprotect(p, page, 0) == 0, ctypes.get_errno()
    off = page + (data_pages * page - nbytes if at_end else 0)
    keep.append(mm)
    return onp.frombuffer(mm, dtype=dtype, count=nelem, offset=off)


def guard_main():
    """Run in a subprocess: every operand touches a guard page at its first
    or last element; an out-of-bounds access kills the process."""
    def lds(M, N, K, tb):
        return K + 3, (K + 2) if tb else (N + 1), N + 5

    specs = []
    for i, (s, tb, tiles) in enumerate(GUARD_CASES):
        lda, ldb, ldc = lds(*s, tb)
        specs.append((f'g{i}', s, dict(trans_b=tb, tiles=tiles, epilogue=bias_relu,
                                       lda=lda, ldb=ldb, ldc=ldc)))
    fns, _ = compile_kernels(specs)
    keep = []
    for i, ((M, N, K), tb, _) in enumerate(GUARD_CASES):
        lda, ldb, ldc = lds(M, N, K, tb)
        for at_end in (True, False):
            rng = onp.random.default_rng(i)
            A = _guarded((M - 1) * lda + K, 'float32', at_end, keep)
            B = _guarded(((N - 1) if tb else (K - 1)) * ldb + (K if tb else N), 'float32',
                         at_end, keep)
            C = _guarded((M - 1) * ldc + N, 'float32', at_end, keep)
            bias = _guarded(N, 'float32', at_end, keep)
            for arr in (A, B, bias):
                arr[...] = rng.uniform(-1, 1, arr.shape)
            fns[f'g{i}'](A.ctypes.data, B.ctypes.data, C.ctypes.data, extra_array(bias), 0, 0, M)
            Am = onp.lib.stride_tricks.as_strided(A, (M, K), (lda * 4, 4)).astype(onp.float64)
            Bm = onp.lib.stride_tricks.as_strided(B, (N, K) if tb else (K, N), (ldb * 4, 4))
            Cm = onp.lib.stride_tricks.as_strided(C, (M, N), (ldc * 4, 4))
            ref = onp.maximum(Am @ (Bm.T if tb else Bm).astype(onp.float64) + bias, 0)
            check_close(Cm, ref, 'float32', K, f'guard case {i}')
    print('guard ok', len(GUARD_CASES))


def test_guard_pages():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, __file__, '--guard'], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'guard ok' in proc.stdout, (
        f'guard-page run failed (rc {proc.returncode}, negative = signal):\n'
        f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')


if __name__ == '__main__' and sys.argv[1:] == ['--guard']:
    guard_main()
