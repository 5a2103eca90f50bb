"""GFLOP/s of the emitted matmul kernels (codegen/lower/matmul.py) against
numpy.matmul (OpenBLAS).

    python benchmarks/matmul_kernel.py [--runs N] [--seconds S]

Each kernel is compiled at O3 for the host CPU (MCJIT) and called through
ctypes on the whole row range in one thread (the ctypes call, about
0.3 us, is included: it matters only for the tiny shape).  numpy is
timed with its default thread count (OpenBLAS may use every core) and,
when threadpoolctl is installed, limited to one thread.  Figures are the
median (and best) of many runs in this process; the shapes are
M x N x K with B stored (N, K) for trans_b (Dense weights) and (K, N)
otherwise.  The host may be shared: compare medians from one run.
"""
import argparse
import ctypes
import pathlib
import statistics
import sys
import time

import numpy as onp

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llvmlite.binding as llvm  # noqa: E402
from llvmlite import ir  # noqa: E402

from codegen.lower.matmul import emit_matmul  # noqa: E402

SHAPES = [  # (M, N, K, trans_b, note)
    (2, 256, 20, True, 'tiny'),
    (64, 512, 784, True, ''),
    (1024, 512, 784, True, ''),
    (1024, 1024, 256, True, ''),
    (128, 128, 64, False, 'attention-like'),
    (512, 512, 512, False, ''),
    (512, 512, 512, True, ''),
    (4, 512, 784, True, 'small M'),
    (1024, 1024, 1024, False, ''),
]


def compile_all(shapes):
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
        opt=3, jit=True)
    mod = ir.Module('bench')
    mod.triple = llvm.get_default_triple()
    for i, (M, N, K, tb, _) in enumerate(shapes):
        emit_matmul(mod, f'mm{i}', M, N, K, trans_b=tb)
    t = time.perf_counter()
    ref = llvm.parse_assembly(str(mod))
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(ref, pb)
    ee = llvm.create_mcjit_compiler(ref, tm)
    ee.finalize_object()
    build = time.perf_counter() - t
    P, L = ctypes.c_void_p, ctypes.c_int64
    proto = ctypes.CFUNCTYPE(None, P, P, P, P, L, L, L)
    return ee, [proto(ee.get_function_address(f'mm{i}')) for i in range(len(shapes))], build


def timed(fn, runs, seconds):
    fn()                                   # warm up
    t = time.perf_counter()
    fn()
    one = time.perf_counter() - t
    n = max(runs, min(2000, int(seconds / max(one, 1e-7))))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=30, help='minimum runs per measurement')
    ap.add_argument('--seconds', type=float, default=0.5, help='time budget per measurement')
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None

    print(f'host cpu {llvm.get_host_cpu_name()}; '
          f'llvmlite {__import__("llvmlite").__version__}; numpy {onp.__version__}')
    _engine, fns, build = compile_all(SHAPES)      # the engine must stay alive
    print(f'compiled {len(SHAPES)} kernels (parse + O3 + MCJIT) in {build * 1e3:.0f} ms')
    if threadpool_limits is None:
        print('threadpoolctl not installed: numpy is timed with its default threads only')
    hdr = (f'{"M x N x K":>16} {"B":>5} | {"kernel (1 thread)":>19} | {"numpy default":>14} | '
           f'{"numpy 1 thread":>14} | {"kernel/np1":>10}')
    print('GFLOP/s, median (best)')
    print(hdr)
    print('-' * len(hdr))
    rng = onp.random.default_rng(0)
    for (M, N, K, tb, note), f in zip(SHAPES, fns):
        A = rng.standard_normal((M, K), dtype=onp.float32)
        B = rng.standard_normal((N, K) if tb else (K, N), dtype=onp.float32)
        C = onp.empty((M, N), onp.float32)
        a, b, c = A.ctypes.data, B.ctypes.data, C.ctypes.data
        ex = (ctypes.c_void_p * 1)()
        f(a, b, c, ex, 0, 0, M)
        Bk = B.T if tb else B
        ref = A.astype(onp.float64) @ Bk.astype(onp.float64)
        err = onp.abs(C - ref).max() / max(1.0, onp.abs(ref).max())
        assert err < 1e-5, f'{M}x{N}x{K}: wrong result (rel err {err:.3g})'
        flop = 2.0 * M * N * K
        out = onp.empty((M, N), onp.float32)

        def kernel(f=f, a=a, b=b, c=c, ex=ex, M=M):
            f(a, b, c, ex, 0, 0, M)

        def numpy(A=A, Bk=Bk, out=out):
            onp.matmul(A, Bk, out=out)

        km, kb, _ = timed(kernel, args.runs, args.seconds)
        nm, nb, _ = timed(numpy, args.runs, args.seconds)
        if threadpool_limits is not None:
            with threadpool_limits(1):
                n1m, n1b, _ = timed(numpy, args.runs, args.seconds)
            one = f'{flop / n1m / 1e9:6.1f} ({flop / n1b / 1e9:5.1f})'
            ratio = f'{n1m / km:9.2f}x'
        else:
            one, ratio = f'{"-":>14}', f'{"-":>10}'
        name = f'{M}x{N}x{K}'
        print(f'{name:>16} {"(N,K)" if tb else "(K,N)":>5} | '
              f'{flop / km / 1e9:7.1f} ({flop / kb / 1e9:6.1f})   | '
              f'{flop / nm / 1e9:6.1f} ({flop / nb / 1e9:5.1f}) | {one} | {ratio}'
              + (f'  {note}' if note else ''))
    print('kernel time per call for the tiny shape includes ctypes (~0.3 us)')


if __name__ == '__main__':
    main()
