"""Compile-time of the graph passes and what they do to node counts.

    python benchmarks/passes.py

For the founding document's models and a 12-block transformer encoder
stack (d_model 256): time to trace, optimize and compile (no execution; the
disk cache is whatever TRACER_CACHE_DIR holds), time per pass (median of 5 runs of the whole pipeline on
the traced graph), nodes before and after, fusion groups and distinct
kernels.
"""
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'examples'))

import founding  # noqa: E402
import tracer  # noqa: E402
from codegen.passes import PassContext, optimize  # noqa: E402
from runtime import hybrid  # noqa: E402
from tracer import np  # noqa: E402
from transformer import encoder_stack  # noqa: E402


def measure(name, net, x):
    net.hybridize()
    key, leaves = hybrid.signature((x,), {})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t = time.perf_counter()
        hybrid._trace(net, (x,), {}, key, leaves, True)     # trace, passes, LLVM; no run
        first_call = time.perf_counter() - t
        net(x)        # a model with a graph break compiles its children on this call
        ex = tracer.explain(net, x)
    for unit, graph in ex.graphs:
        traced = next(e for e in hybrid.graph_entries(net) if e.graph is graph).traced
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            opt, reports = optimize(traced, PassContext())
            runs.append((time.perf_counter() - t, reports))
        total = statistics.median(r[0] for r in runs)
        reports = runs[0][1]
        fusion = next(r for r in reports if r.name == 'fusion').stats
        per_pass = {}
        for r in reports:
            per_pass[r.name] = per_pass.get(r.name, 0.0) + r.seconds
        print(f'{name + " / " + unit:<34} trace+passes+LLVM {first_call * 1e3:7.1f} ms | passes '
              f'{total * 1e3:6.1f} ms | nodes {traced.number_of_nodes():5} -> '
              f'{opt.number_of_nodes():5} | groups {fusion["groups"]:4} | kernels '
              f'{fusion["distinct_kernels"]:3}')
        print('    ' + '  '.join(f'{k} {v * 1e3:.1f}' for k, v in per_pass.items()) + '  (ms)')


def main():
    x = np.random.uniform(size=(2, 20))
    for name, net in founding.make_models().items():
        measure(name, net, x)
    xt = np.random.normal(size=(8, 128, 256))
    measure('transformer x1', encoder_stack(1), xt)
    measure('transformer x12', encoder_stack(12), xt)


if __name__ == '__main__':
    main()
