"""Per-op cost of eager mode against raw NumPy on small arrays.

    python benchmarks/eager_overhead.py

Each case runs side by side in one process; the figure is the median over
many rounds of the per-call time, and the ratio is ours / NumPy's (lower
is better; the target is at most 3x).  Only ratios from one run mean
anything on a shared machine.
"""
import statistics
import sys
import timeit

import numpy as onp

from tracer import autograd, np
from tracer.gluon import nn


def per_call_us(fn, number=2000, rounds=25):
    fn()
    times = timeit.repeat(fn, number=number, repeat=rounds)
    return statistics.median(times) / number * 1e6


def cases():
    a32 = onp.random.uniform(size=(2, 20)).astype('float32')
    b32 = onp.random.uniform(size=(2, 20)).astype('float32')
    w32 = onp.random.uniform(size=(20, 20)).astype('float32')
    a, b, w = np.array(a32), np.array(b32), np.array(w32)

    dense = nn.Dense(256, activation='relu', in_units=20)
    dense.initialize()
    W = dense.weight.data().asnumpy()
    bias = dense.bias.data().asnumpy()

    def numpy_dense():
        return onp.maximum(a32 @ W.T + bias, 0)

    yield 'a + b (2x20)', lambda: a32 + b32, lambda: a + b
    yield 'np.dot (2x20 @ 20x20)', lambda: onp.dot(a32, w32), lambda: np.dot(a, w)
    yield 'Dense(256, relu) forward (2x20)', numpy_dense, lambda: dense(a)

    x = np.array(b32)
    x.attach_grad()

    def numpy_loop():
        for _ in range(100):
            a32 * b32

    def recorded_loop():
        with autograd.record():
            for _ in range(100):
                a * x
    yield '100 x (a * x) under record(), x.attach_grad()', numpy_loop, recorded_loop


def main():
    rows = []
    for name, ref, ours in cases():
        t_ref, t_ours = per_call_us(ref), per_call_us(ours)
        rows.append((name, t_ref, t_ours, t_ours / t_ref))
    width = max(len(r[0]) for r in rows)
    print(f'{"case":<{width}}  {"numpy us":>9}  {"tracer us":>9}  {"ratio":>6}')
    for name, t_ref, t_ours, ratio in rows:
        print(f'{name:<{width}}  {t_ref:9.2f}  {t_ours:9.2f}  {ratio:5.2f}x')
    print(f'python {sys.version.split()[0]}, numpy {onp.__version__}')


if __name__ == '__main__':
    main()
