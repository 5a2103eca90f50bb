"""The main demonstration: hybridize models, show the speed-up over eager
execution, what the compiler did, and the exported graph.

    python examples/demo.py
"""
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as onp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import founding  # noqa: E402
import tracer  # noqa: E402
from tracer import gluon, np, npx  # noqa: E402
from tracer.gluon import nn  # noqa: E402


def per_call_us(fn, seconds=0.3):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        fn()
        n += 1
    n = max(1, int(n * seconds / 0.05 / 7))
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n)
    return statistics.median(runs) * 1e6


class GeluChain(nn.HybridBlock):
    def forward(self, x):
        return npx.gelu(x) * 1.5 + np.tanh(x)


def mlp(sizes):
    net = nn.Sequential()
    for units in sizes[:-1]:
        net.add(nn.Dense(units, activation='relu'))
    net.add(nn.Dense(sizes[-1]))
    net.initialize(tracer.init.Xavier())
    return net


def main():
    warnings.simplefilter('ignore', UserWarning)       # graph breaks are reported below
    np.random.seed(0)
    cases = [
        ("founding document's MLP, batch 2", founding.make_models()['MLP'],
         np.random.uniform(size=(2, 20))),
        ('MLP 784-512-512-10, batch 64', mlp([512, 512, 10]),
         np.random.uniform(size=(64, 784))),
        ('GELU chain over 1024x1024', GeluChain(), np.random.normal(size=(1024, 1024))),
        ('FixedHiddenMLP (a while loop on a value)', founding.make_models()['FixedHiddenMLP'],
         np.random.uniform(size=(2, 20))),
    ]
    print(f'{"model":<44} {"eager us":>10} {"hybridized us":>14} {"speed-up":>9} '
          f'{"1st call ms":>12}')
    for name, net, x in cases:
        ref = net(x).asnumpy()
        eager = per_call_us(lambda: net(x))
        net.hybridize()
        t = time.perf_counter()
        y = net(x).asnumpy()
        first = (time.perf_counter() - t) * 1e3
        assert onp.allclose(y, ref, rtol=1e-4, atol=1e-5), name
        hyb = per_call_us(lambda: net(x))
        print(f'{name:<44} {eager:10.1f} {hyb:14.1f} {eager / hyb:8.1f}x {first:12.1f}')
    print('\n(eager: the same model run op by op on NumPy; one run, medians; the machine is '
          'shared, so only ratios mean anything)\n')

    net = founding.make_models()['chimera']
    x = np.random.uniform(size=(2, 20))
    ex = tracer.explain(net, x)
    print("What hybridize did with the founding document's chimera:")
    for b in ex.breaks:
        print(f"  graph break at {b['source']}: {b['reason']}")
    for unit, g in ex.graphs:
        groups = g.graph.get('groups', {})
        print(f'  compiled unit {unit}: {g.number_of_nodes()} nodes in {len(groups)} fused '
              f'kernels:')
        for i, grp in groups.items():
            print(f"    kernel {i}: {' -> '.join(g.nodes[n]['op'] for n in grp['nodes'])}")

    big = mlp([512, 512, 10])
    big(np.ones((64, 784)))
    big.hybridize()
    ex = tracer.explain(big, np.ones((64, 784)))
    k = ex.kernels[0]
    fma = [ln.strip() for ln in k['asm'].splitlines() if 'vfmadd' in ln]
    print(f"\nKernel {k['name']} (group {k['group']}, {k['kind']}): {len(fma)} FMA instructions, "
          f"e.g. `{fma[0] if fma else '-'}`")

    with tempfile.TemporaryDirectory() as d:
        sym, params = big.export(os.path.join(d, 'mlp'))
        doc = json.load(open(sym))
        print(f"\nExported {os.path.basename(sym)} (format {doc['format']} v{doc['version']}, "
              f"{len(doc['graph']['nodes'])} nodes) and {os.path.basename(params)}:")
        for node in doc['graph']['nodes'][:8]:
            print(f"  #{node['id']:<3} {node['op']:<10} {node.get('name', ''):<10} "
                  f"shape {node['shape']}")
        print('  ...')
        blk = gluon.SymbolBlock.imports(sym, ['data'], params)
        same = onp.allclose(blk(np.ones((64, 784))).asnumpy(), big(np.ones((64, 784))).asnumpy(),
                            rtol=1e-5, atol=1e-6)
        print(f'Reloaded without the Python class: outputs match = {same}')


if __name__ == '__main__':
    main()
