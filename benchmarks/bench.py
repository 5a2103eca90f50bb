"""Hybridized tracer models against NumPy, PyTorch (eager and torch.compile)
and jax.jit, side by side in one process.

    python benchmarks/bench.py               # every workload (a couple of minutes)
    python benchmarks/bench.py --quick       # fewer repeats: a smoke test
    python benchmarks/bench.py --only gelu   # one workload (or a prefix: --only mlp784 runs both)
    pip install -e '.[bench]'                # torch==2.13.0 (CPU wheel), jax, jaxlib

Every candidate uses the same float32 parameter values, taken from the
tracer model (Dense weight is (units, in_units): y = x @ W.T + b).  The
hand-written NumPy version is also the correctness reference: every
output must agree with it to rtol 1e-4 (atol 1e-5 times the largest
|reference| value), and a tracer workload that fails or disagrees is
printed as FAILED with the reason, never dropped.

Per candidate: the first call is timed on its own ("first call": for a
hybridized tracer model it includes trace, passes and LLVM compilation;
for torch.compile and jax.jit their compilation), then the calls are
timed one by one with time.perf_counter and the median is reported.
Candidates of one workload run interleaved in rounds, so that load from
other processes on this shared host falls on all of them alike; only the
ratios of one run mean anything.  Compilation caches (tracer's object
cache, TorchInductor's cache) are pointed at fresh temporary directories,
so first calls are cold compiles; --warm-cache keeps the default caches.
torch and jax are optional: a missing one is skipped.
"""
import argparse
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RTOL = 1e-4
ATOL_SCALE = 1e-5

WORKLOADS = ['mlp', 'fixed', 'chimera', 'mlp784-b64', 'mlp784-b1024', 'gelu', 'encoder']


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true', help='few repeats (smoke test)')
    ap.add_argument('--only', metavar='NAME',
                    help=f'run workload NAME, or those whose name starts with NAME '
                         f'({", ".join(WORKLOADS)})')
    ap.add_argument('--warm-cache', action='store_true',
                    help="keep tracer's and TorchInductor's default on-disk caches")
    ap.add_argument('--no-torch-compile', action='store_true', help='skip torch.compile')
    args = ap.parse_args()
    if args.only and not any(w.startswith(args.only) for w in WORKLOADS):
        ap.error(f'--only {args.only!r} matches no workload; names: {", ".join(WORKLOADS)}')
    return args


ARGS = parse_args()
_TMP = None
if not ARGS.warm_cache:                       # before tracer / torch read them
    _TMP = tempfile.mkdtemp(prefix='tracer-bench-')
    os.environ['TRACER_CACHE_DIR'] = os.path.join(_TMP, 'tracer')
    os.environ['TORCHINDUCTOR_CACHE_DIR'] = os.path.join(_TMP, 'inductor')

import numpy as onp  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, 'examples'))
from tracer import np, npx  # noqa: E402
from tracer.gluon import nn  # noqa: E402

try:
    import scipy.special as _sps
    ERF = _sps.erf
    ERF_NOTE = 'scipy.special.erf'
except ImportError:                           # pragma: no cover - scipy is usually there
    _sps = None

    def ERF(x):
        """erf for float32 arrays: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7)."""
        s = onp.sign(x)
        a = onp.abs(x)
        t = 1 / (1 + onp.float32(0.3275911) * a)
        y = t * (onp.float32(0.254829592) + t * (onp.float32(-0.284496736) + t * (
            onp.float32(1.421413741) + t * (onp.float32(-1.453152027) +
                                            t * onp.float32(1.061405429)))))
        return (s * (1 - y * onp.exp(-a * a))).astype(x.dtype)
    ERF_NOTE = 'A&S 7.1.26 rational erf in numpy (scipy not installed)'

MISSING = {}
try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except Exception as e:                        # ImportError, or a broken install
    torch, MISSING['torch'] = None, e
try:
    import jax
    import jax.numpy as jnp
except Exception as e:
    jax, MISSING['jax'] = None, e

warnings.simplefilter('ignore')               # graph-break warnings: the table says how each ran


# ---------------------------------------------------------------------------- helpers
def f32(a):
    return onp.ascontiguousarray(a, dtype=onp.float32)


def randomize(net, rng):
    """Non-trivial biases and LayerNorm scales/shifts (zeros and ones by default),
    so that a candidate dropping one of them cannot agree by accident."""
    for name, p in net.collect_params().items():
        leaf = name.rsplit('.', 1)[-1]
        if leaf in ('bias', 'beta'):
            p.set_data(f32(rng.uniform(-0.1, 0.1, size=p.shape)))
        elif leaf == 'gamma':
            p.set_data(f32(1 + rng.uniform(-0.1, 0.1, size=p.shape)))


def params_of(net):
    """Structural name -> float32 numpy copy of every parameter (Constants too)."""
    return {k: f32(p.data().asnumpy()).copy() for k, p in net.collect_params().items()}


def execution_summary(net):
    """How the hybridized model ran: per block with a cache entry, its kind and
    whether its graph runs native code or fell back to the interpreter."""
    from runtime.hybrid import _Run
    parts, problems = [], []

    def visit(path, block):
        for entry in list(block._cached.values()):
            label = path or type(block).__name__
            if entry.kind == 'graph':
                if entry.native is not None:
                    parts.append(f'{label}: native graph')
                else:
                    parts.append(f'{label}: INTERPRETER')
                    why = entry.native_error or 'native code disabled (TRACER_NATIVE)'
                    problems.append(f'{label} runs on the interpreter: {why}')
            elif entry.kind == 'variants':
                subs = entry.entries
                nat = sum(1 for e in subs if getattr(e, 'native', None) is not None)
                guards = [len(getattr(e, 'guard_values', ()) or ()) for e in subs]
                parts.append(f'{label}: {len(subs)} guarded specialized graph(s) '
                             f'({nat} native; guards per graph {guards})'
                             + (', exhausted: eager for other inputs' if entry.exhausted else ''))
                for e in subs:
                    if getattr(e, 'native', None) is None:
                        problems.append(f'{label} variant runs on the interpreter: '
                                        f'{getattr(e, "native_error", "?")}')
            elif entry.kind == 'eager':
                parts.append(f'{label}: eager forward (graph break at '
                             f'{os.path.basename(entry.brk.source)})')
            elif entry.kind == 'segmented':
                parts.append(f'{label}: segmented at child {entry.k}')
                for step in entry.plan or []:
                    if type(step) is _Run:
                        visit(f'{label}[run of {len(step._layers)}]', step)
            else:
                parts.append(f'{label}: {entry.kind}')

    for path, block in net._walk():
        visit(type(net).__name__ + ('.' + path if path else ''), block)
    return parts, problems


def reason(e):
    msg = str(e).strip().splitlines()
    return f'{type(e).__name__}: {msg[0] if msg else ""}'[:300]


def compare(out, ref):
    """None if out agrees with ref, else a description."""
    out = onp.asarray(out, dtype=onp.float64)
    ref = onp.asarray(ref, dtype=onp.float64)
    if out.shape != ref.shape:
        return f'shape {out.shape} != reference {ref.shape}'
    atol = ATOL_SCALE * max(1.0, float(onp.abs(ref).max()))
    if not onp.all(onp.isfinite(out)):
        return 'non-finite values'
    if onp.allclose(out, ref, rtol=RTOL, atol=atol):
        return None
    err = onp.abs(out - ref)
    i = onp.unravel_index(onp.argmax(err - RTOL * onp.abs(ref)), err.shape)
    return (f'mismatch: max abs diff {err.max():.3g}, at {tuple(int(j) for j in i)} '
            f'{out[i]:.6g} vs {ref[i]:.6g}')


class Candidate:
    def __init__(self, name):
        self.name = name
        self.fn = None            # no-argument callable: one timed call
        self.to_numpy = onp.asarray
        self.first = None         # seconds
        self.samples = []
        self.error = None         # could not build / run
        self.mismatch = None
        self.note = None

    def setup(self, build):
        """build() -> (fn, to_numpy); the first fn() call is timed separately."""
        try:
            self.fn, to_numpy = build()
            if to_numpy is not None:
                self.to_numpy = to_numpy
            t = time.perf_counter()
            out = self.fn()
            self.first = time.perf_counter() - t
            return out
        except Exception as e:
            self.error = reason(e)
            self.fn = None
            if os.environ.get('BENCH_TRACEBACK'):
                traceback.print_exc()
            return None

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None


def run_timing(cands, budget, min_calls, rounds, max_calls=200000):
    """Interleaved rounds; in each round a candidate runs until it has used its
    share of ``budget`` seconds (wall clock, so slow outliers on a busy host
    shorten the run instead of stretching it), at least ``min_calls / rounds``
    calls and at most ``max_calls / rounds``."""
    live = [c for c in cands if c.fn is not None]
    for c in live:                              # a few warm calls
        for _ in range(3):
            c.fn()
    pc = time.perf_counter
    share = budget / rounds
    lo, hi = max(1, min_calls // rounds), max(1, max_calls // rounds)
    for _ in range(rounds):
        for c in live:
            fn, samples = c.fn, c.samples
            start, n = pc(), 0
            while n < hi:
                t = pc()
                fn()
                t2 = pc()
                samples.append(t2 - t)
                n += 1
                if n >= lo and t2 - start >= share:
                    break


# ---------------------------------------------------------------------------- workloads
class Workload:
    """One model: the tracer block, the NumPy reference and the other frameworks."""
    name = ''
    title = ''
    scale = 1.0                                 # relative timing budget

    def __init__(self, rng):
        self.rng = rng
        self.notes = []


def relu_np(x):
    return onp.maximum(x, onp.float32(0))


def dense_np(P, name, x):
    return x @ P[name + '.weight'].T + P[name + '.bias']


def torch_linear(P, name):
    w = P[name + '.weight']
    lin = tnn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(P[name + '.bias']))
    return lin


def jdense(P, name, x):
    return x @ P[name + '.weight'].T + P[name + '.bias']


# --- 1. founding MLP ---------------------------------------------------------------
class MLPWorkload(Workload):
    name, title = 'mlp', 'founding MLP 20-256-10, batch 2'

    def tracer_model(self):
        from founding import MLP
        return MLP(), (2, 20)

    def numpy_fn(self, P):
        def f(x):
            return dense_np(P, 'out', relu_np(dense_np(P, 'hidden', x)))
        return f

    def torch_model(self, P):
        class M(tnn.Module):
            def __init__(self):
                super().__init__()
                self.hidden, self.out = torch_linear(P, 'hidden'), torch_linear(P, 'out')

            def forward(self, x):
                return self.out(torch.relu(self.hidden(x)))
        return M()

    def jax_fn(self):
        def f(P, x):
            return jdense(P, 'out', jax.nn.relu(jdense(P, 'hidden', x)))
        return f


# --- 2. FixedHiddenMLP ---------------------------------------------------------------
def fixed_np(P, p, x, trips=None):
    X = relu_np(dense_np(P, p + 'dense', x))
    X = relu_np(X @ P[p + 'rand_weight'] + onp.float32(1))
    X = relu_np(dense_np(P, p + 'dense', X))
    n = 0
    while onp.abs(X).sum() > 1:
        X /= 2
        n += 1
    if trips is not None:
        trips.append(n)
    return X.sum()


def nest_np(P, x):
    h = relu_np(dense_np(P, '0.net.0', x))
    h = relu_np(dense_np(P, '0.net.1', h))
    h = relu_np(dense_np(P, '0.dense', h))
    return dense_np(P, '1', h)


class VariedInputs:
    """After timing: inputs that make the while loop run a different number
    of times must still agree (a value-dependent branch must not be frozen)."""
    scales = (0.0, 0.05, 0.3, 3.0, 30.0, 1000.0)

    def varied(self, P, x):
        out = []
        for s in self.scales:
            trips = []
            xs = f32(x * s)
            ref = self.numpy_trips(P, xs, trips)
            out.append((f'x*{s:g} ({trips[0]} loop trips)', xs, ref))
        return out


class TorchFixed(tnn.Module if torch else object):
    def __init__(self, P, p=''):
        super().__init__()
        self.dense = torch_linear(P, p + 'dense')
        self.register_buffer('rand_weight', torch.from_numpy(P[p + 'rand_weight']).clone())

    def forward(self, X):
        X = torch.relu(self.dense(X))
        X = torch.relu(X @ self.rand_weight + 1)
        X = torch.relu(self.dense(X))
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


def jfixed_prefix(P, p, x):
    X = jax.nn.relu(jdense(P, p + 'dense', x))
    X = jax.nn.relu(X @ P[p + 'rand_weight'] + 1)
    return jax.nn.relu(jdense(P, p + 'dense', X))


def jfixed(P, p, x):
    X = jfixed_prefix(P, p, x)
    X = jax.lax.while_loop(lambda X: jnp.abs(X).sum() > 1, lambda X: X / 2, X)
    return X.sum()


class FixedWorkload(VariedInputs, Workload):
    name, title = 'fixed', 'FixedHiddenMLP (while loop), batch 2'

    def tracer_model(self):
        from founding import FixedHiddenMLP
        return FixedHiddenMLP(), (2, 20)

    def numpy_fn(self, P):
        return lambda x: fixed_np(P, '', x)

    def numpy_trips(self, P, x, trips):
        return fixed_np(P, '', x, trips)

    def torch_model(self, P):
        return TorchFixed(P)

    def jax_fn(self):
        self.notes.append('jax.jit: the whole model in one jit, the loop as jax.lax.while_loop')
        return lambda P, x: jfixed(P, '', x)

    def extra(self, P, x, ref, timed):
        """JAX the way tracer runs it: a jitted prefix, then the loop in Python."""
        if jax is None:
            return
        prefix = jax.jit(lambda P, x: jfixed_prefix(P, '', x))
        JP = {k: jnp.asarray(v) for k, v in P.items()}
        jx = jnp.asarray(x)

        def f():
            X = prefix(JP, jx)
            while jnp.abs(X).sum() > 1:
                X = X / 2
            return X.sum().block_until_ready()
        timed('jax: jit prefix + Python while loop', f, ref)


# --- 3. chimera ------------------------------------------------------------------------
class ChimeraWorkload(VariedInputs, Workload):
    name, title = 'chimera', 'chimera Seq(NestMLP, Dense 20, FixedHiddenMLP), batch 2'
    scales = (0.0, 0.3, 3.0, 1e4, 1e5, 1e6)      # the trip count moves only for large inputs

    def tracer_model(self):
        from founding import FixedHiddenMLP, NestMLP
        net = nn.Sequential()
        net.add(NestMLP(), nn.Dense(20), FixedHiddenMLP())
        return net, (2, 20)

    def numpy_fn(self, P):
        return lambda x: fixed_np(P, '2.', nest_np(P, x))

    def numpy_trips(self, P, x, trips):
        return fixed_np(P, '2.', nest_np(P, x), trips)

    def torch_model(self, P):
        class Nest(tnn.Module):
            def __init__(self):
                super().__init__()
                self.net = tnn.Sequential(torch_linear(P, '0.net.0'), tnn.ReLU(),
                                          torch_linear(P, '0.net.1'), tnn.ReLU())
                self.dense = torch_linear(P, '0.dense')

            def forward(self, x):
                return torch.relu(self.dense(self.net(x)))
        return tnn.Sequential(Nest(), torch_linear(P, '1'), TorchFixed(P, '2.'))

    def jax_fn(self):
        self.notes.append('jax.jit: one jit, FixedHiddenMLP loop as jax.lax.while_loop')

        def f(P, x):
            h = jax.nn.relu(jdense(P, '0.net.0', x))
            h = jax.nn.relu(jdense(P, '0.net.1', h))
            h = jax.nn.relu(jdense(P, '0.dense', h))
            return jfixed(P, '2.', jdense(P, '1', h))
        return f


# --- 4. MLP 784-512-512-10 -----------------------------------------------------------------
class MLP784Workload(Workload):
    def __init__(self, rng, batch):
        super().__init__(rng)
        self.batch = batch
        self.name = f'mlp784-b{batch}'
        self.title = f'MLP 784-512-512-10, batch {batch}'
        self.scale = 1.5

    def tracer_model(self):
        net = nn.HybridSequential()
        net.add(nn.Dense(512, activation='relu'), nn.Dense(512, activation='relu'),
                nn.Dense(10))
        return net, (self.batch, 784)

    def numpy_fn(self, P):
        def f(x):
            h = relu_np(dense_np(P, '0', x))
            h = relu_np(dense_np(P, '1', h))
            return dense_np(P, '2', h)
        return f

    def torch_model(self, P):
        return tnn.Sequential(torch_linear(P, '0'), tnn.ReLU(), torch_linear(P, '1'),
                              tnn.ReLU(), torch_linear(P, '2'))

    def jax_fn(self):
        def f(P, x):
            h = jax.nn.relu(jdense(P, '0', x))
            h = jax.nn.relu(jdense(P, '1', h))
            return jdense(P, '2', h)
        return f


# --- 5. GELU chain --------------------------------------------------------------------
class GeluChain(nn.HybridBlock):
    def forward(self, x):
        return npx.gelu(x) * 1.5 + np.tanh(x)


SQRT_HALF = math.sqrt(0.5)


class GeluWorkload(Workload):
    name, title = 'gelu', 'gelu(x)*1.5 + tanh(x), 1024x1024'
    scale = 1.5

    def tracer_model(self):
        self.notes.append(f'numpy erf: {ERF_NOTE}')
        return GeluChain(), (1024, 1024)

    def input(self):
        return f32(self.rng.normal(size=(1024, 1024)) * 2)

    def numpy_fn(self, P):
        def f(x):
            return x * 0.5 * (1 + ERF(x * SQRT_HALF)) * 1.5 + onp.tanh(x)
        return f

    def torch_model(self, P):
        class M(tnn.Module):
            def forward(self, x):
                return F.gelu(x) * 1.5 + torch.tanh(x)
        return M()

    def jax_fn(self):
        return lambda P, x: jax.nn.gelu(x, approximate=False) * 1.5 + jnp.tanh(x)


# --- 6. transformer encoder block ---------------------------------------------------------
D, HEADS, FFN, BATCH, SEQ, EPS = 256, 4, 1024, 8, 128, 1e-5


def _layer_norm_np(x, g, b):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / onp.sqrt(var + onp.float32(EPS)) * g + b


def _softmax_np(s):
    e = onp.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class EncoderWorkload(Workload):
    name = 'encoder'
    title = f'EncoderBlock(d={D}, heads={HEADS}, ffn={FFN}), batch {BATCH}, seq {SEQ}'
    scale = 3.0

    def tracer_model(self):
        from transformer import EncoderBlock
        self.notes.append('numpy/torch/jax: explicit matmul-softmax-matmul attention '
                          '(no fused SDPA), post-norm, erf GELU, LayerNorm eps 1e-5')
        return EncoderBlock(D, HEADS, FFN), (BATCH, SEQ, D)

    def input(self):
        return f32(self.rng.normal(size=(BATCH, SEQ, D)))

    def numpy_fn(self, P):
        dk = D // HEADS
        scale = 1.0 / math.sqrt(dk)

        def f(x):
            b, t, d = x.shape

            def split(y):
                return y.reshape(b, t, HEADS, dk).transpose(0, 2, 1, 3)
            q = split(dense_np(P, 'attention.query', x))
            k = split(dense_np(P, 'attention.key', x))
            v = split(dense_np(P, 'attention.value', x))
            attn = _softmax_np((q @ k.transpose(0, 1, 3, 2)) * scale)
            o = (attn @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
            x = _layer_norm_np(x + dense_np(P, 'attention.proj', o), P['norm1.gamma'],
                               P['norm1.beta'])
            h = dense_np(P, 'ffn1', x)
            h = h * 0.5 * (1 + ERF(h * SQRT_HALF))
            h = dense_np(P, 'ffn2', h)
            return _layer_norm_np(x + h, P['norm2.gamma'], P['norm2.beta'])
        return f

    def torch_model(self, P):
        dk = D // HEADS
        scale = 1.0 / math.sqrt(dk)

        class Encoder(tnn.Module):
            def __init__(self):
                super().__init__()
                self.query, self.key, self.value, self.proj = (
                    torch_linear(P, 'attention.' + n) for n in ('query', 'key', 'value', 'proj'))
                self.ffn1, self.ffn2 = torch_linear(P, 'ffn1'), torch_linear(P, 'ffn2')
                self.norm1, self.norm2 = tnn.LayerNorm(D, eps=EPS), tnn.LayerNorm(D, eps=EPS)
                with torch.no_grad():
                    for n in ('norm1', 'norm2'):
                        getattr(self, n).weight.copy_(torch.from_numpy(P[n + '.gamma']))
                        getattr(self, n).bias.copy_(torch.from_numpy(P[n + '.beta']))

            def forward(self, x):
                b, t, d = x.shape

                def split(y):
                    return y.reshape(b, t, HEADS, dk).transpose(1, 2)
                q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
                attn = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)
                o = (attn @ v).transpose(1, 2).reshape(b, t, d)
                x = self.norm1(x + self.proj(o))
                return self.norm2(x + self.ffn2(F.gelu(self.ffn1(x))))
        return Encoder()

    def jax_fn(self):
        dk = D // HEADS
        scale = 1.0 / math.sqrt(dk)

        def ln(x, g, b):
            mean = x.mean(axis=-1, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
            return (x - mean) / jnp.sqrt(var + EPS) * g + b

        def f(P, x):
            b, t, d = x.shape

            def split(y):
                return y.reshape(b, t, HEADS, dk).transpose(0, 2, 1, 3)
            q = split(jdense(P, 'attention.query', x))
            k = split(jdense(P, 'attention.key', x))
            v = split(jdense(P, 'attention.value', x))
            attn = jax.nn.softmax((q @ k.transpose(0, 1, 3, 2)) * scale, axis=-1)
            o = (attn @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
            x = ln(x + jdense(P, 'attention.proj', o), P['norm1.gamma'], P['norm1.beta'])
            h = jdense(P, 'ffn2', jax.nn.gelu(jdense(P, 'ffn1', x), approximate=False))
            return ln(x + h, P['norm2.gamma'], P['norm2.beta'])
        return f


# ---------------------------------------------------------------------------- the run
COLS = ['tracer', 'numpy', 'torch', 'torch.compile', 'jax.jit']


def run_workload(w, budget, min_calls, rounds):
    """Build and check every candidate, time them; returns a result dict."""
    res = {'name': w.name, 'title': w.title, 'cands': {}, 'failed': None, 'exec': [],
           'extra': [], 'notes': w.notes}
    cands = {c: Candidate(c) for c in COLS}
    res['cands'] = cands

    # the tracer model: eager call infers shapes, then non-trivial parameter values
    net, shape = w.tracer_model()
    x_np = w.input() if hasattr(w, 'input') else f32(w.rng.uniform(size=shape))
    X = np.array(x_np)
    try:
        net.initialize()
        net(X)
        randomize(net, w.rng)
        P = params_of(net)
        eager_ref = net(X).asnumpy()
    except Exception as e:
        res['failed'] = f'eager tracer model: {reason(e)}'
        for c in cands.values():
            c.error = 'not run'
        return res

    # NumPy: the reference
    np_fn = w.numpy_fn(P)
    ref = cands['numpy'].setup(lambda: ((lambda: np_fn(x_np)), None))
    if ref is None:
        res['failed'] = f'numpy reference: {cands["numpy"].error}'
        return res
    ref = onp.asarray(ref)
    if compare(eager_ref, ref):             # the reference itself must match eager tracer
        res['notes'].append(f'NOTE eager tracer vs numpy: {compare(eager_ref, ref)}')

    # tracer, hybridized
    def build_tracer():
        net.hybridize()
        return (lambda: net(X)), (lambda y: y.asnumpy())
    tc = cands['tracer']
    out = tc.setup(build_tracer)
    if tc.error is None:
        tc.mismatch = compare(tc.to_numpy(out), ref)
        y2 = tc.to_numpy(tc.fn())               # the steady-state path must agree too
        if tc.mismatch is None:
            tc.mismatch = compare(y2, ref) and 'second call: ' + compare(y2, ref)
        try:
            res['exec'], problems = execution_summary(net)
            res['notes'].extend(problems)
            res['interpreted'] = bool(problems)
        except Exception as e:                  # internals moved: not a benchmark failure
            res['exec'] = [f'(execution summary unavailable: {reason(e)})']
    if tc.error or tc.mismatch:
        res['failed'] = tc.error or tc.mismatch

    if torch is not None:
        tmodel = w.torch_model(P).eval()
        xt = torch.from_numpy(x_np.copy())

        def tcall(m):
            def f():
                with torch.inference_mode():
                    return m(xt)
            return f
        to_np = (lambda y: y.detach().numpy())
        out = cands['torch'].setup(lambda: (tcall(tmodel), to_np))
        if out is not None:
            cands['torch'].mismatch = compare(to_np(out), ref)
        if ARGS.no_torch_compile:
            cands['torch.compile'].error = 'skipped (--no-torch-compile)'
        else:
            torch._dynamo.reset()

            def build_compiled():
                return tcall(torch.compile(tmodel)), to_np
            out = cands['torch.compile'].setup(build_compiled)
            if out is not None:
                cands['torch.compile'].mismatch = compare(to_np(out), ref)
    else:
        cands['torch'].error = cands['torch.compile'].error = \
            f'torch not importable: {reason(MISSING["torch"])}'

    if jax is not None:
        jf = jax.jit(w.jax_fn())
        JP = {k: jnp.asarray(v) for k, v in P.items()}
        jx = jnp.asarray(x_np)
        to_np = (lambda y: onp.asarray(y))
        out = cands['jax.jit'].setup(lambda: ((lambda: jf(JP, jx).block_until_ready()), to_np))
        if out is not None:
            cands['jax.jit'].mismatch = compare(to_np(out), ref)
    else:
        cands['jax.jit'].error = f'jax not importable: {reason(MISSING["jax"])}'

    run_timing(list(cands.values()), budget * w.scale, min_calls, rounds)

    if hasattr(w, 'extra'):
        def timed(label, fn, ref_):
            c = Candidate(label)
            out = c.setup(lambda: (fn, None))
            if c.error is None:
                c.mismatch = compare(onp.asarray(out), ref_)
                run_timing([c], budget * w.scale, min_calls, rounds)
            res['extra'].append(c)
        w.extra(P, x_np, ref, timed)

    if hasattr(w, 'varied') and tc.fn is not None:
        checked = []
        for label, xs, ref_s in w.varied(P, x_np):
            try:
                bad = compare(net(np.array(xs)).asnumpy(), ref_s)
            except Exception as e:
                bad = reason(e)
            checked.append(label)
            if bad:
                msg = f'input {label}: {bad}'
                res['failed'] = res['failed'] or msg
                res['notes'].append(f'tracer FAILED on varied input {msg}')
        res['notes'].append('tracer agrees with numpy on varied inputs: ' + ', '.join(
            c for c in checked))
        try:
            res['exec_after'], _ = execution_summary(net)
        except Exception:
            pass
    return res


def framework_init():
    """One-time costs (LLVM/JIT setup, Dynamo/Inductor import, XLA client) paid on a
    trivial model first, so that each workload's first call is its own compile."""
    rows = []

    class Tiny(nn.HybridBlock):
        def forward(self, x):
            return x * 2.0 + 1.0
    t = time.perf_counter()
    b = Tiny()
    b.initialize()
    b.hybridize()
    b(np.ones((3, 5)))
    rows.append(('tracer', time.perf_counter() - t))
    if torch is not None and not ARGS.no_torch_compile:
        t = time.perf_counter()
        try:
            with torch.inference_mode():
                torch.compile(lambda x: x * 2 + 1)(torch.ones(3, 5))
            rows.append(('torch.compile', time.perf_counter() - t))
        except Exception as e:
            rows.append(('torch.compile', f'n/a: {reason(e)}'))
        torch._dynamo.reset()
    if jax is not None:
        t = time.perf_counter()
        jax.jit(lambda x: x * 2 + 1)(jnp.ones((3, 5))).block_until_ready()
        rows.append(('jax.jit', time.perf_counter() - t))
    return rows


# ---------------------------------------------------------------------------- report
def fmt_us(c):
    if c.error:
        return 'n/a'
    s = f'{c.median * 1e6:.1f}' if c.median < 1e-3 else f'{c.median * 1e6:.0f}'
    return s + (' !' if c.mismatch else '')


def fmt_first(c):
    if c.error or c.first is None:
        return 'n/a'
    t = c.first
    return f'{t * 1e6:.0f} us' if t < 1e-3 else f'{t * 1e3:.1f} ms' if t < 1 else f'{t:.2f} s'


def table(header, rows):
    rows = [[str(v).replace('|', '/') for v in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out = ['| ' + ' | '.join(str(h).ljust(w) for h, w in zip(header, widths)) + ' |',
           '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    for r in rows:
        out.append('| ' + ' | '.join(str(v).ljust(w) for v, w in zip(r, widths)) + ' |')
    return '\n'.join(out)


def git_state():
    try:
        import subprocess
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                              capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return head + (' + uncommitted changes' if dirty else '') if head else 'unknown'
    except Exception:
        return 'unknown'


def cpu_busy(seconds=1.0):
    """Percent of all CPUs busy over ``seconds`` (from /proc/stat), NaN if unknown.
    Taken while this process is idle, so it measures the other processes."""
    def snap():
        with open('/proc/stat') as fh:
            v = [int(t) for t in fh.readline().split()[1:9]]
        return sum(v), v[3] + v[4]                 # total, idle + iowait
    try:
        t1, i1 = snap()
        time.sleep(seconds)
        t2, i2 = snap()
        return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))
    except (OSError, ValueError):
        return float('nan')


def report(results, init_rows, wall, load):
    print()
    print('## Steady state: median per call (us); ratio = other / tracer (>1: tracer faster)')
    print()
    header = ['workload', 'tracer', 'numpy', 'torch', 'torch.compile', 'jax.jit',
              'numpy/tr', 'torch/tr', 'compile/tr', 'jax/tr']
    rows = []
    for r in results:
        c = r['cands']
        tr = c['tracer']
        tracer_cell = ('FAILED: ' + r['failed'][:70]) if r['failed'] else fmt_us(tr)
        if r.get('interpreted'):
            tracer_cell += ' (interpreter!)'
        if r['failed'] and not tr.error and tr.samples:
            tracer_cell += f' ({tr.median * 1e6:.1f} us)'
        row = [r['title'], tracer_cell] + [fmt_us(c[k]) for k in COLS[1:]]
        for k in COLS[1:]:
            ok = not tr.error and tr.samples and not c[k].error and c[k].samples
            row.append(f'{c[k].median / tr.median:.2f}' if ok else 'n/a')
        rows.append(row)
    print(table(header, rows))
    print()
    print('## Fastest single call (us): less sensitive to other processes than the median')
    print()
    rows = [[r['title']] + [('n/a' if c.error or not c.samples else
                             f'{min(c.samples) * 1e6:.1f}' if min(c.samples) < 1e-3 else
                             f'{min(c.samples) * 1e6:.0f}')
                            for c in (r['cands'][k] for k in COLS)] for r in results]
    print(table(['workload'] + COLS, rows))
    print()
    print('## First call (tracer: trace + passes + LLVM compile; torch.compile and jax.jit: '
          'their compile)')
    print()
    rows = [[r['title']] + [fmt_first(r['cands'][k]) for k in COLS] for r in results]
    print(table(['workload'] + COLS, rows))
    print()
    init = ', '.join(f'{n} {v:.2f} s' if isinstance(v, float) else f'{n} {v}'
                     for n, v in init_rows)
    print(f'One-time framework start-up, paid on a trivial model before the table: {init}.')
    print()
    print('## Details')
    for r in results:
        print(f'- {r["name"]} ({r["title"]}):')
        if r['failed']:
            print(f'    tracer FAILED: {r["failed"]}')
        if r['exec']:
            print('    tracer ran as (timed input): ' + '; '.join(r['exec']))
        if r.get('exec_after'):
            print('    after the varied inputs: ' + '; '.join(r['exec_after']))
        for k in COLS:
            c = r['cands'][k]
            if c.error:
                print(f'    {k}: n/a ({c.error})')
            elif c.mismatch:
                print(f'    {k}: DISAGREES with numpy: {c.mismatch}')
        spread = [f'{k} {100 * (q[2] - q[0]) / q[1]:.0f}%'
                  for k in COLS for c in [r['cands'][k]] if c.samples and len(c.samples) >= 4
                  for q in [statistics.quantiles(c.samples, n=4)]]
        calls = ', '.join(f'{k} {len(r["cands"][k].samples)}' for k in COLS
                          if r['cands'][k].samples)
        print(f'    calls timed: {calls}; interquartile range / median: {", ".join(spread)}')
        for c in r['extra']:
            tr = r['cands']['tracer']
            if c.error:
                print(f'    {c.name}: n/a ({c.error})')
            else:
                ratio = (f', {c.median / tr.median:.2f}x tracer' if tr.samples else '')
                bad = f' DISAGREES: {c.mismatch}' if c.mismatch else ''
                print(f'    {c.name}: {c.median * 1e6:.1f} us{ratio}{bad}')
        for n in r['notes']:
            print(f'    {n}')
    print()
    versions = [f'numpy {onp.__version__}']
    versions.append(f'torch {torch.__version__} ({torch.get_num_threads()} threads)'
                    if torch else 'torch not importable')
    versions.append(f'jax {jax.__version__}' if jax else 'jax not importable')
    cpu = platform.processor() or platform.machine()
    info = {}
    try:
        with open('/proc/cpuinfo') as fh:
            for line in fh:
                k, _, v = line.partition(':')
                info.setdefault(k.strip(), v.strip())
        cpu = f'{info.get("model name", cpu)}, family {info.get("cpu family", "?")} ' \
              f'model {info.get("model", "?")}'
    except OSError:
        pass
    try:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        cpu += f', LLVM host cpu {llvm.get_host_cpu_name()}'
    except Exception:
        pass
    print(f'machine: {os.cpu_count()} CPUs ({cpu}); python {platform.python_version()}, '
          f'{", ".join(versions)}; tracer {git_state()}')
    print(f'noise: shared host (CPU used by other processes: {load[0]:.0f}% just before, '
          f'{load[1]:.0f}% just after); '
          f'candidates ran interleaved in rounds within one process, so compare ratios within '
          f'a row, not absolute times across runs ({"quick" if ARGS.quick else "full"} run, '
          f'{wall:.0f} s in all; "!" marks a result that disagrees with numpy).')
    if max(load) > 15:
        print('WARNING: other processes were busy around this run; multi-threaded '
              'candidates '
              '(BLAS in numpy and torch, XLA, tracer\'s OpenMP kernels) lose most when a core '
              'is taken.')


def main():
    t0 = time.perf_counter()
    load0 = cpu_busy()
    rng = onp.random.default_rng(0)
    np.random.seed(0)
    if ARGS.quick:
        budget, min_calls, rounds = 0.05, 5, 2
    else:
        budget, min_calls, rounds = 1.0, 30, 5
    all_w = [MLPWorkload, FixedWorkload, ChimeraWorkload, lambda r: MLP784Workload(r, 64),
             lambda r: MLP784Workload(r, 1024), GeluWorkload, EncoderWorkload]
    init_rows = framework_init()
    results = []
    for make in all_w:
        w = make(rng)
        if ARGS.only and not (w.name == ARGS.only if ARGS.only in WORKLOADS
                              else w.name.startswith(ARGS.only)):
            continue
        t = time.perf_counter()
        print(f'running {w.name}: {w.title} ...', end=' ', flush=True)
        results.append(run_workload(w, budget, min_calls, rounds))
        print(f'{time.perf_counter() - t:.1f} s', flush=True)
    report(results, init_rows, time.perf_counter() - t0, (load0, cpu_busy()))
    if _TMP:
        shutil.rmtree(_TMP, ignore_errors=True)
    return 1 if any(r['failed'] for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
