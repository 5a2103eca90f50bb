"""Property tests for tracing: random programs built from registered ops,
traced (``hybridize(fullgraph=True)`` or ``Trace`` directly) and run by the
reference interpreter, must agree with eager execution.

A program is drawn step by step with ``st.data()``.  While drawing, every
value is computed with plain NumPy (``REF`` below), which both simulates
shapes (so each op is chosen to fit the values available) and serves as an
independent oracle for eager mode.  Each step is a line of Python source
that runs unchanged on tracer arrays (``{M}`` = ``tnp``, ``{X}`` = ``npx``)
and on NumPy arrays (``{M}`` = ``onp``, ``{X}`` = ``REF``), so a failing
example is printed as a program you can paste.
"""
import math
import os
import re

import numpy as onp
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracer
from codegen.passes import PassContext, optimize
from tracer import autograd, gluon, npx, ops
from tracer import np as tnp
from tracer.gluon import nn
from tracer.graph.interpreter import SOURCE_OPS, run_graph
from tracer.graph.interpreter import Program as GraphProgram
from tracer.graph.trace import Symbol, Trace, tracing
from tracer.ops.movement import IndexArg, fill_key

# float32 tolerances (eps = 1.2e-7).  Traced and eager runs call the same NumPy
# kernels on the same values, so forward results are normally bit-identical;
# but the passes may regroup work (views vs copies change NumPy's summation
# and BLAS blocking) and the backward graph may sum the contributions to a
# shared value in another order than the eager tape.  Each costs a few ulps:
# rtol 1e-5 (~80 ulps) leaves room for that and still catches any wrong op,
# axis or wiring; atol 1e-6 covers results that cancel to about 0.
RTOL, ATOL = 1e-5, 1e-6
# The NumPy oracle uses independent formulas (float64 erf, sigmoid, softmax,
# layer_norm...) whose rounding differs and is amplified by later steps, so it
# only checks eager mode loosely: it is there to catch wrong ops, axes and shapes.
ORACLE_RTOL, ORACLE_ATOL = 1e-3, 1e-3

MAX_NDIM, MAX_SIZE, MAX_DIM = 4, 256, 12
F32 = onp.float32

SETTINGS = {'deadline': None, 'derandomize': True, 'print_blob': True,
            'suppress_health_check': [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much]}
SCALARS = st.sampled_from([2.0, 0.5, -1.5, 3, 1.0, -0.25, 0.0, -2, 1])


def draw_array(d, shape, label):
    """float32 values for ``shape``: a seeded generator and a value style
    (three choices per array, so long programs stay within Hypothesis'
    data budget); small integers and constants make ties and zeros common."""
    style = d.draw(st.sampled_from(['uniform', 'small ints', 'constant', 'normal']),
                   label=f'{label}: values')
    rng = onp.random.default_rng(d.draw(st.integers(0, 2 ** 16), label=f'{label}: seed'))
    if style == 'uniform':
        v = rng.uniform(-3, 3, shape)
    elif style == 'small ints':
        v = rng.integers(-2, 3, shape) * 0.5
    elif style == 'constant':
        v = onp.full(shape, rng.integers(-4, 5) * 0.5)
    else:
        v = rng.standard_normal(shape)
    return onp.asarray(v, dtype=F32)


# ----------------------------------------------------------------- the NumPy oracle
class REF:
    """Independent NumPy versions of the ``npx`` functions the programs use."""

    @staticmethod
    def _f(x):
        return onp.asarray(x, dtype=onp.float64)

    @staticmethod
    def sigmoid(x):
        return (1.0 / (1.0 + onp.exp(-REF._f(x)))).astype(F32)

    @staticmethod
    def relu(x):
        return onp.maximum(x, F32(0))

    @staticmethod
    def erf(x):
        return onp.vectorize(math.erf, otypes=[onp.float64])(REF._f(x)).astype(F32)

    @staticmethod
    def softrelu(x):
        return onp.logaddexp(0.0, REF._f(x)).astype(F32)

    @staticmethod
    def activation(x, act_type):
        return {'relu': REF.relu, 'sigmoid': REF.sigmoid, 'softrelu': REF.softrelu,
                'tanh': onp.tanh}[act_type](x)

    @staticmethod
    def softmax(x, axis=-1):
        x = REF._f(x)
        e = onp.exp(x - x.max(axis=axis, keepdims=True))
        return (e / e.sum(axis=axis, keepdims=True)).astype(F32)

    @staticmethod
    def log_softmax(x, axis=-1):
        x = REF._f(x)
        s = x - x.max(axis=axis, keepdims=True)
        return (s - onp.log(onp.exp(s).sum(axis=axis, keepdims=True))).astype(F32)

    @staticmethod
    def layer_norm(x, gamma, beta, axis=-1, eps=1e-5):
        x = REF._f(x)
        ax = axis % x.ndim
        shp = [1] * x.ndim
        shp[ax] = -1
        mu = x.mean(axis=ax, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
        y = (x - mu) / onp.sqrt(var + eps) * REF._f(gamma).reshape(shp) + \
            REF._f(beta).reshape(shp)
        return y.astype(F32)


def ref_dense(x, weight, bias, flatten, act):
    x = onp.asarray(x)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    out = onp.matmul(x, weight.T)
    if bias is not None:
        out = out + bias
    return out if act is None else REF.activation(out, act)


# ----------------------------------------------------------------- shape helpers
def fits(shape):
    n = 1
    for d in shape:
        n *= d
    return len(shape) <= MAX_NDIM and 0 < n <= MAX_SIZE and all(1 <= d <= MAX_DIM for d in shape)


def bshape(*shapes):
    try:
        return tuple(onp.broadcast_shapes(*shapes))
    except ValueError:
        return None


def draw_broadcast_shape(d, shape, label):
    """A shape that broadcasts against ``shape`` (a suffix with some 1s, maybe a new lead dim)."""
    n = len(shape)
    k = d.draw(st.integers(0, n), label=f'{label}: suffix length')
    out = [1 if d.draw(st.booleans(), label=f'{label}: dim {i} -> 1') else s
           for i, s in enumerate(shape[n - k:])]
    if k == n and n < MAX_NDIM and d.draw(st.booleans(), label=f'{label}: new lead dim'):
        out.insert(0, d.draw(st.integers(1, 3), label=f'{label}: lead size'))
    return tuple(out)


def draw_slice(d, n, label):
    step = d.draw(st.sampled_from([None, 1, 2, -1, -2]), label=f'{label} step')
    ends = st.one_of(st.none(), st.integers(-n - 1, n + 1))
    start = d.draw(ends, label=f'{label} start')
    stop = d.draw(ends, label=f'{label} stop')
    if not len(range(n)[slice(start, stop, step)]):
        return slice(None)
    return slice(start, stop, step)


def draw_key(d, shape, max_arrays=2):
    """An indexing key: a list of entries ('int', k), ('slice', s), ('none',),
    ('ellipsis',) and ('array', nested list of ints, the dimension it indexes)."""
    entries, narr, arr_shape = [], 0, None
    ndim = len(shape)
    nkey = d.draw(st.integers(1 if ndim else 0, ndim), label='key: dims indexed')
    ellipsis_at = d.draw(st.integers(-1, nkey), label='key: ellipsis position (-1 none)') \
        if nkey < ndim or ndim == 0 else -1
    for i in range(nkey):
        if i == ellipsis_at:
            entries.append(('ellipsis',))
        dim = i if ellipsis_at < 0 or i < ellipsis_at else ndim - nkey + i
        n = shape[dim]
        if d.draw(st.integers(0, 9), label='key: maybe newaxis') == 0:
            entries.append(('none',))
        kinds = ['slice', 'int'] + (['array'] if narr < max_arrays else [])
        kind = d.draw(st.sampled_from(kinds), label=f'key: entry {i}')
        if kind == 'int':
            entries.append(('int', d.draw(st.integers(-n, n - 1), label='key: int')))
        elif kind == 'slice':
            entries.append(('slice', draw_slice(d, n, 'key: slice')))
        else:
            if arr_shape is None:
                arr_shape = d.draw(st.sampled_from([(1,), (2,), (3,), (2, 2), (4,)]),
                                   label='key: index array shape')
            idx = d.draw(hnp.arrays(onp.int64, arr_shape, elements=st.integers(-n, n - 1)),
                         label='key: index array')
            entries.append(('array', idx.tolist(), dim))
            narr += 1
    if ellipsis_at == nkey:
        entries.append(('ellipsis',))
    return entries


def render_key(d, entries, M):
    parts = []
    for e in entries:
        if e[0] == 'int':
            parts.append(str(e[1]))
        elif e[0] == 'none':
            parts.append('None')
        elif e[0] == 'ellipsis':
            parts.append('...')
        elif e[0] == 'slice':
            s = e[1]
            txt = f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}"
            parts.append(txt + ('' if s.step is None else f':{s.step}'))
        else:
            style = d.draw(st.sampled_from(['list', 'onp', 'M']), label='key: index array style')
            parts.append({'list': repr(e[1]), 'onp': f'onp.array({e[1]!r})',
                          'M': f"{M}.array({e[1]!r}, dtype='int64')"}[style])
    if not parts:
        return '()'
    return ', '.join(parts)          # one entry: a bare key (v[1:3], v[[0, 2]])


# ----------------------------------------------------------------- programs
class Prog:
    """A drawn program.  ``events`` fill the value list ``v`` in order:
    ('input', i), ('param', j), ('const', j) or ('step', template)."""

    def __init__(self):
        self.inputs, self.params, self.consts = [], [], []
        self.dense = None           # dict(units, in_units, flatten, act, weight, bias)
        self.events, self.values, self.sym, self.diff = [], [], [], []
        self.smooth = []            # per value: no comparison (where) upstream
        self.families = []          # family of each step
        self.out_diff = []          # per step: depends differentiably on an input/param

    # values
    def _push(self, event, value, sym, diff, smooth=True):
        self.smooth.append(smooth)
        self.events.append(event)
        self.values.append(onp.asarray(value))
        self.sym.append(sym)
        self.diff.append(diff)
        return len(self.values) - 1

    def add_input(self, x):
        self.inputs.append(x)
        return self._push(('input', len(self.inputs) - 1), x, True, True)

    def fresh(self, d, shape, label, kinds=('param', 'const')):
        """A new Parameter or captured constant array of ``shape``."""
        kind = d.draw(st.sampled_from(kinds), label=f'{label}: fresh operand kind')
        value = draw_array(d, shape, f'{label}: {kind} value')
        store = self.params if kind == 'param' else self.consts
        store.append(value)
        return self._push((kind, len(store) - 1), value, kind == 'param', kind == 'param')

    def shape(self, i):
        return self.values[i].shape

    def evaluate(self, template):
        """The step's value, computed by the NumPy oracle."""
        ncode = template.format(M='onp', X='REF')
        with onp.errstate(all='ignore'):
            value = onp.asarray(eval(ncode, self.numpy_env(self.values)))
        assert value.dtype == F32, (ncode, value.dtype)
        assert fits(value.shape) or value.ndim == 0, (ncode, value.shape)
        return value

    def step(self, family, template, diff, value):
        self.families.append(family)
        self.out_diff.append(diff)
        smooth = family != 'where' and all(self.smooth[i] for i in operands(template))
        return self._push(('step', template), value, True, diff, smooth)

    # execution
    def numpy_env(self, v):
        env = {'onp': onp, 'REF': REF, 'v': v}
        if self.dense:
            dd = self.dense
            env['dense'] = lambda x: ref_dense(x, dd['weight'], dd['bias'], dd['flatten'],
                                               dd['act'])
        return env

    def describe(self):
        lines = []
        for k, ev in enumerate(self.events):
            val = self.values[k]
            if ev[0] == 'step':
                lines.append(f"v[{k}] = {ev[1].format(M='tnp', X='npx')}"
                             f"    # {val.shape}{'' if self.diff[k] else ' (not differentiable)'}")
            else:
                arr = {'input': self.inputs, 'param': self.params, 'const': self.consts}[ev[0]]
                lines.append(f'v[{k}] = {ev[0]} {ev[1]}: onp.{arr[ev[1]]!r}')
        if self.dense:
            dd = self.dense
            lines.insert(0, f"dense = nn.Dense({dd['units']}, in_units={dd['in_units']}, "
                            f"flatten={dd['flatten']}, activation={dd['act']!r}, "
                            f"use_bias={dd['bias'] is not None}); weight = onp.{dd['weight']!r}; "
                            f"bias = onp.{dd['bias']!r}")
        return '\n'.join(lines)


def pick(d, prog, label, cond=lambda i: True):
    """A symbolic value (depends on an input or parameter), most recent first."""
    cands = [i for i in reversed(range(len(prog.values))) if prog.sym[i] and cond(i)]
    return d.draw(st.sampled_from(cands), label=label) if cands else None


def other_operand(d, prog, shape, label, allow_scalar=True):
    """Second operand broadcasting against ``shape``: a value, a fresh array or a scalar.
    Returns (code, index or None)."""
    kinds = ['value', 'fresh'] + (['scalar'] if allow_scalar else [])
    kind = d.draw(st.sampled_from(kinds), label=f'{label}: operand kind')
    if kind == 'value':
        cands = [i for i in reversed(range(len(prog.values)))
                 if (b := bshape(shape, prog.shape(i))) is not None and (fits(b) or b == ())]
        if cands:
            i = d.draw(st.sampled_from(cands), label=f'{label}: operand')
            return f'v[{i}]', i
        kind = 'fresh'
    if kind == 'fresh':
        i = prog.fresh(d, draw_broadcast_shape(d, shape, label), label)
        return f'v[{i}]', i
    return repr(d.draw(SCALARS, label=f'{label}: scalar')), None


# Each family: (applicable(shape), build(d, prog, a) -> (template, diff)).
UNARY = {
    'exp': '{M}.exp({M}.clip(v[A], -4.0, 4.0))',
    'tanh': '{M}.tanh(v[A])',
    'sigmoid': '{X}.sigmoid(v[A])',
    'relu': '{X}.relu(v[A])',
    'abs': 'abs(v[A])',
    'negative': '-v[A]',
    'sqrt': '{M}.sqrt({M}.abs(v[A]) + 1.0)',
    'log': '{M}.log({M}.abs(v[A]) + 1)',
    'erf': '{X}.erf(v[A])',
    'softrelu': "{X}.activation(v[A], 'softrelu')",
}


def build_unary(d, prog, a):
    name = d.draw(st.sampled_from(sorted(UNARY)), label='unary op')
    return UNARY[name].replace('[A]', f'[{a}]'), prog.diff[a]


BINARY = ['add', 'subtract', 'multiply', 'divide', 'maximum', 'minimum', 'power']


def build_binary(d, prog, a):
    name = d.draw(st.sampled_from(BINARY), label='binary op')
    A = f'v[{a}]'
    if name == 'power':
        if d.draw(st.booleans(), label='power: scalar base'):
            base = repr(d.draw(st.sampled_from([0.5, 1.5, 2.0, 3.0]), label='base'))
            return f'{base} ** {M_CLIP.format(A)}', prog.diff[a]
        if d.draw(st.booleans(), label='power: scalar exponent'):
            e = d.draw(st.sampled_from([2.0, 0.5, -1.0, 3.0, 1.5]), label='exponent')
            return f'(abs({A}) + 0.5) ** {e!r}', prog.diff[a]
        B, b = other_operand(d, prog, prog.shape(a), 'power exponent', allow_scalar=False)
        return f'{{M}}.power(abs({A}) + 0.5, {M_CLIP.format(B)})', prog.diff[a] or prog.diff[b]
    B, b = other_operand(d, prog, prog.shape(a), name)
    if b is None or d.draw(st.booleans(), label='swap operands'):
        A, B = B, A           # scalar (or other value) on the left
    diff = prog.diff[a] or (b is not None and prog.diff[b])
    if name == 'divide':
        return f'{A} / (abs({B}) + 1)', diff
    if name in ('maximum', 'minimum'):
        return f'{{M}}.{name}({A}, {B})', diff
    if d.draw(st.booleans(), label='function form'):
        return f'{{M}}.{name}({A}, {B})', diff
    sym = {'add': '+', 'subtract': '-', 'multiply': '*'}[name]
    return f'{A} {sym} {B}', diff


M_CLIP = '{{M}}.clip({}, -2.0, 2.0)'


def build_where(d, prog, a):
    A = f'v[{a}]'
    B, b = other_operand(d, prog, prog.shape(a), 'compare')
    cmp = d.draw(st.sampled_from(['>', '<', '>=', '<=', '==', '!=']), label='comparison')
    cond = f'({A} {cmp} {B})'
    cshape = bshape(prog.shape(a), prog.shape(b)) if b is not None else prog.shape(a)
    if d.draw(st.booleans(), label='where: x is the compared value'):
        X, x = A, a
    else:
        X, x = other_operand(d, prog, cshape, 'where x', allow_scalar=False)
    xshape = bshape(cshape, prog.shape(x))
    Y, y = other_operand(d, prog, xshape, 'where y')
    if d.draw(st.booleans(), label='where: swap branches'):
        X, Y, x, y = Y, X, y, x
    diff = any(i is not None and prog.diff[i] for i in (x, y))
    return f'{{M}}.where({cond}, {X}, {Y})', diff


def draw_axis(d, ndim, label, allow_tuple=True, allow_none=True):
    opts = (['none'] if allow_none else []) + (['int'] if ndim else []) + \
        (['tuple'] if allow_tuple else [])
    kind = d.draw(st.sampled_from(opts), label=f'{label}: axis kind')
    if kind == 'none':
        return None
    if kind == 'int':
        return d.draw(st.integers(-ndim, ndim - 1), label=f'{label}: axis')
    axes = d.draw(st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim)
                  if ndim else st.just([]), label=f'{label}: axes')
    return tuple(ax - ndim if d.draw(st.booleans(), label='negative axis') else ax for ax in axes)


def build_reduce(d, prog, a):
    fn = d.draw(st.sampled_from(['sum', 'mean', 'max', 'min', 'prod']), label='reduction')
    axis = draw_axis(d, len(prog.shape(a)), fn)
    kd = d.draw(st.booleans(), label='keepdims')
    if d.draw(st.booleans(), label='method form'):
        return f'v[{a}].{fn}(axis={axis!r}, keepdims={kd})', prog.diff[a]
    return f'{{M}}.{fn}(v[{a}], axis={axis!r}, keepdims={kd})', prog.diff[a]


def _product_shape(form, sa, sb):
    try:
        fn = onp.dot if form in ('dot', 'method') else onp.matmul
        return fn(onp.zeros(sa, F32), onp.zeros(sb, F32)).shape
    except ValueError:
        return None


def build_matmul(d, prog, a):
    form = d.draw(st.sampled_from(['@', 'matmul', 'dot', 'method']), label='product form')
    sa = prog.shape(a)
    left = d.draw(st.booleans(), label='value on the left')
    m = d.draw(st.integers(1, 4), label='new dim')
    batch = d.draw(st.integers(1, 3), label='batch dim')
    if left:
        k = sa[-1]
        shapes = [(k,), (k, m), (batch, k, m), (1, k, m)] + \
            ([(sa[0], k, m)] if len(sa) == 3 else [])
    else:
        k = sa[-2] if len(sa) >= 2 else sa[0]
        shapes = [(k,), (m, k), (batch, m, k), (1, m, k)]

    def ok(s):
        r = _product_shape(form, sa, s) if left else _product_shape(form, s, sa)
        return r is not None and (r == () or fits(r))
    shapes = [s for s in shapes if ok(s)]
    cands = [i for i in reversed(range(len(prog.values))) if ok(prog.shape(i))]
    if cands and d.draw(st.booleans(), label='product: existing operand'):
        b = d.draw(st.sampled_from(cands), label='product operand')
    else:
        b = prog.fresh(d, d.draw(st.sampled_from(shapes), label='product operand shape'),
                       'product')
    A, B = (f'v[{a}]', f'v[{b}]') if left else (f'v[{b}]', f'v[{a}]')
    code = {'@': f'{A} @ {B}', 'matmul': f'{{M}}.matmul({A}, {B})',
            'dot': f'{{M}}.dot({A}, {B})', 'method': f'{A}.dot({B})'}[form]
    return code, prog.diff[a] or prog.diff[b]


def prime_factors(n):
    out, k = [], 2
    while n > 1:
        while n % k == 0:
            out.append(k)
            n //= k
        k += 1
    return out


def draw_reshape_target(d, shape, label):
    """A target shape of the same size (ndim 0-4, maybe with one -1)."""
    size = int(onp.prod(shape))
    ndim = d.draw(st.integers(0 if size == 1 else 1, MAX_NDIM), label=f'{label}: ndim')
    dims = [1] * ndim
    for f in prime_factors(size):
        dims[d.draw(st.integers(0, ndim - 1), label=f'{label}: factor goes to')] *= f
    if not fits(tuple(dims)) and dims:
        dims = list(shape)
    if dims and d.draw(st.booleans(), label=f'{label}: use -1'):
        dims[d.draw(st.integers(0, len(dims) - 1), label=f'{label}: -1 position')] = -1
    return tuple(dims)


def build_reshape(d, prog, a):
    dims = draw_reshape_target(d, prog.shape(a), 'reshape')
    form = d.draw(st.sampled_from(['method', 'function', 'varargs', 'flatten', 'twice']),
                  label='reshape form')
    if form == 'twice':                 # a reshape chain (the simplifier merges it)
        then = draw_reshape_target(d, prog.shape(a), 'second reshape')
        return f'v[{a}].reshape({dims!r}).reshape({then!r})', prog.diff[a]
    if form == 'flatten' and len(dims) == 1:
        return (f'v[{a}].flatten()' if d.draw(st.booleans(), label='flatten method')
                else f'{{M}}.ravel(v[{a}])'), prog.diff[a]
    if form == 'varargs' and dims:
        return f"v[{a}].reshape({', '.join(map(str, dims))})", prog.diff[a]
    if form == 'function':
        return f'{{M}}.reshape(v[{a}], {dims!r})', prog.diff[a]
    return f'v[{a}].reshape({dims!r})', prog.diff[a]


def build_transpose(d, prog, a):
    n = len(prog.shape(a))
    form = d.draw(st.sampled_from(['function', 'method', 'T', 'swapaxes', 'moveaxis', 'twice']),
                  label='transpose form')
    if form == 'T' or n == 0:
        return f'v[{a}].T', prog.diff[a]
    if form in ('swapaxes', 'moveaxis'):
        i = d.draw(st.integers(-n, n - 1), label='axis 1')
        j = d.draw(st.integers(-n, n - 1), label='axis 2')
        return f'{{M}}.{form}(v[{a}], {i}, {j})', prog.diff[a]
    perm = d.draw(st.permutations(range(n)), label='permutation')
    perm = tuple(p - n if d.draw(st.booleans(), label='negative axis') else p for p in perm)
    if form == 'twice':                 # a transpose chain (the simplifier composes it)
        then = tuple(d.draw(st.permutations(range(n)), label='second permutation'))
        return f'v[{a}].transpose({perm!r}).transpose({then!r})', prog.diff[a]
    if form == 'method':
        return f'v[{a}].transpose({perm!r})', prog.diff[a]
    return f'{{M}}.transpose(v[{a}], {perm!r})', prog.diff[a]


def build_dims(d, prog, a):
    shape = prog.shape(a)
    n = len(shape)
    ones = [i for i, s in enumerate(shape) if s == 1]
    if n < MAX_NDIM and (not ones or d.draw(st.booleans(), label='expand (else squeeze)')):
        ax = d.draw(st.integers(-n - 1, n), label='expand axis')
        return f'{{M}}.expand_dims(v[{a}], {ax})', prog.diff[a]
    kind = d.draw(st.sampled_from(['none', 'method'] + (['int', 'tuple'] if ones else [])),
                  label='squeeze axis kind')
    if kind == 'method':
        return f'v[{a}].squeeze()', prog.diff[a]
    if kind == 'none':
        return f'{{M}}.squeeze(v[{a}])', prog.diff[a]
    if kind == 'int':
        ax = d.draw(st.sampled_from(ones), label='squeeze axis')
        ax = ax - n if d.draw(st.booleans(), label='negative axis') else ax
        return f'{{M}}.squeeze(v[{a}], axis={ax})', prog.diff[a]
    axes = tuple(d.draw(st.lists(st.sampled_from(ones), unique=True, min_size=1),
                        label='squeeze axes'))
    return f'{{M}}.squeeze(v[{a}], axis={axes!r})', prog.diff[a]


def build_join(d, prog, a):
    shape = prog.shape(a)
    n = len(shape)
    stack = n == 0 or (n < MAX_NDIM and d.draw(st.booleans(), label='stack (else concatenate)'))
    count = d.draw(st.integers(1, 2), label='join: extra operands')
    if stack:
        ax = d.draw(st.integers(-n - 1, n), label='stack axis')
        idx = [a]
        for k in range(count):
            if fits((len(idx) + 1,) + shape):
                cands = [i for i in reversed(range(len(prog.values))) if prog.shape(i) == shape]
                if d.draw(st.booleans(), label='stack: existing operand'):
                    idx.append(d.draw(st.sampled_from(cands), label='stack operand'))
                else:
                    idx.append(prog.fresh(d, shape, 'stack'))
        order = d.draw(st.permutations(idx), label='stack order')
        code = f"{{M}}.stack([{', '.join(f'v[{i}]' for i in order)}], axis={ax})"
    else:
        ax = d.draw(st.integers(-n, n - 1), label='concatenate axis')
        idx, total = [a], shape[ax]
        for k in range(count):
            cands = [i for i in reversed(range(len(prog.values)))
                     if len(prog.shape(i)) == n and all(
                         s == t for j, (s, t) in enumerate(zip(prog.shape(i), shape))
                         if j != ax % n) and total + prog.shape(i)[ax] <= MAX_DIM]
            if cands and d.draw(st.booleans(), label='concatenate: existing operand'):
                i = d.draw(st.sampled_from(cands), label='concatenate operand')
            else:
                size = d.draw(st.integers(1, 3), label='concatenate: fresh size')
                s = list(shape)
                s[ax] = size
                if total + size > MAX_DIM or not fits(tuple(s)):
                    continue
                i = prog.fresh(d, tuple(s), 'concatenate')
            new_shape = list(shape)
            new_shape[ax] = total + prog.shape(i)[ax]
            if not fits(tuple(new_shape)):
                continue
            idx.append(i)
            total += prog.shape(i)[ax]
        order = d.draw(st.permutations(idx), label='concatenate order')
        code = f"{{M}}.concatenate([{', '.join(f'v[{i}]' for i in order)}], axis={ax})"
    return code, any(prog.diff[i] for i in idx)


def build_getitem(d, prog, a):
    shape = prog.shape(a)
    for _ in range(4):
        entries = draw_key(d, shape)
        key = render_key(d, entries, '{M}')
        code = f'v[{a}][{key}]'
        with onp.errstate(all='ignore'):
            r = eval(code.format(M='onp'), {'onp': onp, 'v': prog.values})
        if r.size and (fits(r.shape) or r.ndim == 0):
            return code, prog.diff[a]
    return f'v[{a}][...]', prog.diff[a]


def build_normalize(d, prog, a):
    shape = prog.shape(a)
    n = len(shape)
    ax = d.draw(st.integers(-n, n - 1), label='normalization axis')
    fn = d.draw(st.sampled_from(['softmax', 'log_softmax', 'layer_norm']), label='normalization')
    if fn != 'layer_norm':
        return f'{{X}}.{fn}(v[{a}], axis={ax})', prog.diff[a]
    p = (shape[ax],)
    cands = [i for i in reversed(range(len(prog.values))) if prog.shape(i) == p]
    gb = []
    for nm in ('gamma', 'beta'):
        if cands and d.draw(st.booleans(), label=f'{nm}: existing value'):
            gb.append(d.draw(st.sampled_from(cands), label=nm))
        else:
            gb.append(prog.fresh(d, p, nm))
    g, b = gb
    return (f'{{X}}.layer_norm(v[{a}], v[{g}], v[{b}], axis={ax})',
            prog.diff[a] or prog.diff[g] or prog.diff[b])


def build_dense(d, prog, a):
    shape = prog.shape(a)
    flatten = d.draw(st.booleans(), label='dense: flatten')
    in_units = int(onp.prod(shape[1:])) if flatten else shape[-1]
    units = d.draw(st.integers(1, 4), label='dense: units')
    use_bias = d.draw(st.booleans(), label='dense: use_bias')
    act = d.draw(st.sampled_from([None, 'relu', 'tanh', 'sigmoid', 'softrelu']),
                 label='dense: activation')
    out = ((shape[0], units) if flatten else shape[:-1] + (units,))
    if not fits(out):
        return None
    weight = draw_array(d, (units, in_units), 'dense weight')
    bias = draw_array(d, (units,), 'dense bias') if use_bias else None
    prog.dense = {'units': units, 'in_units': in_units, 'flatten': flatten, 'act': act,
                  'weight': weight, 'bias': bias}
    return f'dense(v[{a}])', True


def _ndim_at_least(k):
    return lambda shape: len(shape) >= k


FAMILIES = {
    'unary': (lambda s: True, build_unary),
    'binary': (lambda s: True, build_binary),
    'where': (lambda s: True, build_where),
    'reduce': (lambda s: True, build_reduce),
    'matmul': (_ndim_at_least(1), build_matmul),
    'reshape': (lambda s: True, build_reshape),
    'transpose': (lambda s: True, build_transpose),
    'dims': (lambda s: True, build_dims),
    'join': (lambda s: True, build_join),
    'getitem': (lambda s: True, build_getitem),
    'normalize': (_ndim_at_least(1), build_normalize),
    'dense': (_ndim_at_least(1), build_dense),
}


def operands(template):
    return [int(i) for i in re.findall(r'v\[(\d+)\]', template)]


def build_program(d, families=tuple(FAMILIES)):
    prog = Prog()
    ninputs = d.draw(st.integers(1, 3), label='number of inputs')
    for i in range(ninputs):
        shape = d.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
                       label=f'input {i} shape')
        prog.add_input(draw_array(d, shape, f'input {i}'))
    if d.draw(st.booleans(), label='start with a bias-like parameter'):
        prog.fresh(d, (prog.shape(0)[-1],), 'bias parameter', kinds=('param',))
    nsteps = d.draw(st.integers(1, 8), label='number of steps')
    while len(prog.families) < nsteps:
        family = d.draw(st.sampled_from(families), label='op family')
        applicable, build = FAMILIES[family]
        if family == 'dense' and prog.dense is not None:
            continue
        a = pick(d, prog, f'{family}: operand',
                 lambda i, ok=applicable: ok(prog.shape(i)))
        if a is None:
            continue
        built = build(d, prog, a)
        if built is None:
            continue
        template, diff = built
        prog.step(family, template, diff, prog.evaluate(template))
    return prog


# ----------------------------------------------------------------- the Block
class ProgramBlock(nn.Block):
    """Runs a drawn program as its forward; returns every step's value."""

    def __init__(self, prog):
        super().__init__()
        self.prog = prog
        self.forward_calls = 0
        for j, value in enumerate(prog.params):
            setattr(self, f'p{j}', gluon.Parameter(f'p{j}', shape=value.shape))
        if prog.dense:
            dd = prog.dense
            self.dense = nn.Dense(dd['units'], in_units=dd['in_units'], flatten=dd['flatten'],
                                  activation=dd['act'], use_bias=dd['bias'] is not None)
        self.initialize()
        for j, value in enumerate(prog.params):
            getattr(self, f'p{j}').set_data(value)
        if prog.dense:
            self.dense.weight.set_data(prog.dense['weight'])
            if prog.dense['bias'] is not None:
                self.dense.bias.set_data(prog.dense['bias'])
        self.consts = [tnp.array(c) for c in prog.consts]
        self.code = [compile(ev[1].format(M='tnp', X='npx'), f'<step {k}>', 'eval')
                     if ev[0] == 'step' else None for k, ev in enumerate(prog.events)]

    def forward(self, *xs):
        self.forward_calls += 1
        v = list(xs)
        env = {'tnp': tnp, 'npx': npx, 'onp': onp, 'v': v,
               'dense': getattr(self, 'dense', None)}
        outs = []
        for ev, code in zip(self.prog.events[len(xs):], self.code[len(xs):]):
            if ev[0] == 'param':
                v.append(getattr(self, f'p{ev[1]}').data())
            elif ev[0] == 'const':
                v.append(self.consts[ev[1]])
            else:
                r = eval(code, env)
                v.append(r)
                outs.append(r)
        return tuple(outs)


def assert_same(actual, expected, what, rtol=RTOL, atol=ATOL):
    actual, expected = onp.asarray(actual), onp.asarray(expected)
    assert actual.shape == expected.shape, f'{what}: shape {actual.shape} != {expected.shape}'
    assert actual.dtype == expected.dtype, f'{what}: dtype {actual.dtype} != {expected.dtype}'
    if actual.dtype.kind in 'biu':
        onp.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        onp.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def forward_values(block, inputs):
    with onp.errstate(all='ignore'):
        outs = block(*[tnp.array(x) for x in inputs])
    return [o.asnumpy() for o in outs]


def gradients(block, prog, inputs, weights):
    """Per differentiable output k: the input and parameter gradients of
    (out_k * W_k).sum(), and the outputs computed under record().

    One output at a time: a hybridized block's outputs are separate tape nodes
    that each run the backward graph, while eager autograd sums the output
    gradients first, so a loss over all outputs rounds differently (by far
    more than float32 ulps after a cancelling rule such as layer_norm's)."""
    xs = [tnp.array(x) for x in inputs]
    for x in xs:
        x.attach_grad()
    params = block.collect_params()
    grads = {}
    with onp.errstate(all='ignore'):
        with autograd.record():
            outs = block(*xs)
            losses = [(o * tnp.array(w)).sum() if diff else None
                      for o, w, diff in zip(outs, weights, prog.out_diff)]
        for k, loss in enumerate(losses):
            if loss is None:
                continue
            for x in xs:
                x.grad._data[...] = 0
            block.zero_grad()
            loss.backward(retain_graph=True)
            for i, x in enumerate(xs):
                grads[f'input {i} (loss of output {k})'] = x.grad.asnumpy()
            for name, p in params.items():
                grads[f'{name} (loss of output {k})'] = p.grad().asnumpy()
    return grads, [o.asnumpy() for o in outs]


def check_program(prog):
    block = ProgramBlock(prog)
    nsteps = len(prog.families)
    steps = [k for k, ev in enumerate(prog.events) if ev[0] == 'step']

    # eager, checked loosely against the independent NumPy oracle
    eager = forward_values(block, prog.inputs)
    assert len(eager) == nsteps
    # (comparisons are discontinuous: oracle rounding could flip a branch, so
    # values downstream of a where are left to the eager/traced checks)
    scale = max([1.0] + [float(onp.max(onp.abs(v[onp.isfinite(v)])))
                         for v in prog.values if onp.isfinite(v).any()])
    for k, out in zip(steps, eager):
        ref = prog.values[k]
        assert out.shape == ref.shape, f'eager v[{k}]: shape {out.shape} != {ref.shape}'
        if prog.smooth[k]:
            ok = onp.isfinite(out) & onp.isfinite(ref)
            onp.testing.assert_allclose(out[ok], ref[ok], rtol=ORACLE_RTOL,
                                        atol=ORACLE_ATOL * scale, err_msg=f'eager v[{k}] vs NumPy')

    # hybridized: the first call traces, the second runs the cached graph
    block.hybridize(fullgraph=True)
    calls = block.forward_calls
    for run in ('tracing call', 'cached call'):
        for k, out, ref in zip(steps, forward_values(block, prog.inputs), eager):
            assert_same(out, ref, f'{run}: v[{k}]')
    assert block.forward_calls == calls + 1, 'the cached call re-ran forward'

    # the trace has an op node per step; in the traced and in the optimized
    # graph every node's recorded shape/dtype is what actually runs
    xs = [tnp.array(x) for x in prog.inputs]
    ex = tracer.explain(block, *xs)
    traced = ex.traced_graph
    op_nodes = [n for n, dd in traced.nodes(data=True) if dd['op'] not in SOURCE_OPS]
    assert len(op_nodes) >= nsteps, f'{len(op_nodes)} traced op nodes for {nsteps} steps'
    (entry,) = block._cached.values()
    assert ex.graph is entry.graph
    for name, graph, program in (
            ('traced', traced, GraphProgram(traced, traced.graph['inputs'],
                                            traced.graph['outputs'])),
            ('optimized', entry.graph, entry.program)):
        with onp.errstate(all='ignore'):
            outs, env = program.run([x._data for x in xs], keep_env=True)
        for k, out, ref in zip(steps, outs, eager):
            assert_same(out, ref, f'{name} graph run by the interpreter: v[{k}]')
        for n, dd in graph.nodes(data=True):
            if dd['op'] == 'input':
                continue
            val = env[program.slot[n]]
            assert (tuple(dd['shape']), dd['dtype']) == (val.shape, val.dtype.name), \
                (f"{name} node {n} ({dd['op']}): recorded {dd['shape']} {dd['dtype']}, "
                 f"ran {val.shape} {val.dtype}")

    # inference with parameters folded into the graph
    block.hybridize(fullgraph=True, freeze=True)
    for k, out, ref in zip(steps, forward_values(block, prog.inputs), eager):
        assert_same(out, ref, f'hybridize(freeze=True): v[{k}]')

    # gradients: eager tape vs the backward graph of the hybridized block
    if not any(prog.out_diff):
        return
    rng = onp.random.RandomState(1234)
    weights = [rng.uniform(-1, 1, size=o.shape).astype(F32) for o in eager]
    block.hybridize(active=False)
    ref_grads, ref_outs = gradients(block, prog, prog.inputs, weights)
    block.hybridize(fullgraph=True)
    calls = block.forward_calls
    for run in ('tracing call', 'cached call'):
        grads, outs = gradients(block, prog, prog.inputs, weights)
        for k, out, ref in zip(steps, outs, ref_outs):
            assert_same(out, ref, f'{run} under record: v[{k}]')
        assert grads.keys() == ref_grads.keys()
        for name in ref_grads:
            assert_same(grads[name], ref_grads[name], f'{run}: gradient of {name}')
    assert block.forward_calls == calls + 1, 'the cached call under record re-ran forward'


# ----------------------------------------------------------------- property 1
# Every pass checks the IR invariants after it runs, and hybridized graphs run
# on the reference interpreter (native code generation has its own tests).
ENVIRONMENT = {'TRACER_VERIFY': '1', 'TRACER_NATIVE': '0'}


@pytest.fixture(scope='module', autouse=True)
def _environment():
    old = {k: os.environ.get(k) for k in ENVIRONMENT}
    os.environ.update(ENVIRONMENT)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@settings(max_examples=500, **SETTINGS)
@given(st.data())
def test_hybridized_random_programs_match_eager(data):
    prog = build_program(data)
    note(prog.describe())
    for family in sorted(set(prog.families)):
        event(f'family {family}')
    event(f'{len(prog.families)} steps')
    event('gradients compared' if any(prog.out_diff) else 'no differentiable output')
    event('oracle compared' if 'where' not in prog.families else 'oracle partly skipped (where)')
    check_program(prog)


def test_unused_output_does_not_poison_gradients():
    """Regression (found by the property above, fixed in f28cae6): the backward
    graph ran with zero cotangents for outputs the loss does not use, and
    0 * inf = NaN there poisoned the requested gradient.  Minimal program:
    v1 = x - x; v2 = abs(v1); v3 = prod(v2), with a loss on v1 alone."""

    class TwoOutputs(nn.Block):
        def forward(self, x):
            return x * 2, tnp.log(x - x)     # the loss below does not use the second output

    def grad(hybridize):
        net = TwoOutputs()
        if hybridize:
            net.hybridize(fullgraph=True)
        x = tnp.array([1.0, 2.0])
        x.attach_grad()
        with onp.errstate(all='ignore'), autograd.record():
            y, _ = net(x)
            loss = y.sum()
        loss.backward()
        return x.grad.asnumpy()

    onp.testing.assert_array_equal(grad(False), [2, 2])
    onp.testing.assert_array_equal(grad(True), [2, 2])       # was [nan, nan]


# ----------------------------------------------------------------- property 2: Trace directly
FLOAT_UNARY = ['negative', 'exp', 'log', 'sqrt', 'tanh', 'abs', 'sign', 'relu', 'sigmoid',
               'softrelu', 'erf', 'stop_gradient']
ARITH = ['add', 'subtract', 'multiply', 'divide', 'maximum', 'minimum', 'mod', 'floor_divide',
         'power']
COMPARE = ['equal', 'not_equal', 'less', 'less_equal', 'greater', 'greater_equal']


class RawProg:
    """Steps of registered ops called directly: (op name, args, attrs); args
    are ('v', i) pool references, ('s', scalar) literals, ('c', array) constants."""

    def __init__(self):
        self.inputs, self.values, self.bounds, self.steps = [], [], [], []

    def push(self, value, bound=None):
        self.values.append(value)
        self.bounds.append(bound)        # int values: exclusive upper bound (index arrays)
        return len(self.values) - 1

    def resolve(self, args, v):
        return [v[x] if kind == 'v' else x for kind, x in args]

    def add(self, name, args, attrs, bound=None):
        with onp.errstate(all='ignore'):
            value = ops.get(name)(*self.resolve(args, self.values), **attrs)
        self.steps.append((name, args, attrs))
        return self.push(value, bound)

    def shape(self, i):
        return tuple(self.values[i].shape)

    def dtype(self, i):
        return self.values[i].dtype

    def describe(self):
        lines = [f'v{i} = input {x.dtype}{list(x.shape)}: {x.tolist()!r}'
                 for i, x in enumerate(self.inputs)]
        for k, (name, args, attrs) in enumerate(self.steps):
            a = ', '.join(f'v{x}' if kind == 'v' else repr(x) for kind, x in args)
            kw = ''.join(f', {n}={val!r}' for n, val in attrs.items())
            lines.append(f'v{len(self.inputs) + k} = ops.{name}({a}{kw})')
        return '\n'.join(lines)


def raw_operand(d, rp, shape, kinds, label, dtypes='fi'):
    """An operand broadcasting with ``shape``: ('v', i), ('s', scalar) or ('c', array)."""
    kind = d.draw(st.sampled_from(kinds), label=f'{label}: operand kind')
    if kind == 'v':
        cands = [i for i in reversed(range(len(rp.values)))
                 if rp.dtype(i).kind in dtypes and bshape(shape, rp.shape(i)) is not None
                 and fits(bshape(shape, rp.shape(i)) or (1,))]
        if cands:
            return ('v', d.draw(st.sampled_from(cands), label=f'{label}: operand'))
        kind = 'c'
    if kind == 's':
        return ('s', d.draw(st.sampled_from([2.0, -1.5, 0.5, 3, 1]), label=f'{label}: scalar'))
    s = draw_broadcast_shape(d, shape, label)
    return ('c', draw_array(d, s, f'{label}: constant'))


def draw_raw_step(d, rp):
    fam = d.draw(st.sampled_from(['unary', 'arith', 'compare', 'logical', 'where', 'clip',
                                  'astype', 'reduce', 'arg', 'normalize', 'matmul', 'reshape',
                                  'transpose', 'broadcast_to', 'getitem', 'setitem',
                                  'index_add', 'concatenate']), label='raw family')
    pool = list(reversed(range(len(rp.values))))
    floats = [i for i in pool if rp.dtype(i).kind == 'f']
    nonbool = [i for i in pool if rp.dtype(i).kind in 'fi']
    bools = [i for i in pool if rp.dtype(i).kind == 'b']

    def choose(cands, label):
        return d.draw(st.sampled_from(cands), label=label) if cands else None

    if fam == 'unary':
        a = choose(floats, 'unary operand')
        name = d.draw(st.sampled_from(FLOAT_UNARY), label='unary op')
        return name, [('v', a)], {}
    if fam in ('arith', 'compare'):
        a = choose(nonbool, f'{fam} operand')
        names = ARITH if fam == 'arith' else COMPARE
        name = d.draw(st.sampled_from(names), label=f'{fam} op')
        if name == 'power' and rp.dtype(a).kind != 'f':
            name = 'multiply'
        b = raw_operand(d, rp, rp.shape(a), ['v', 's', 'c'], name,
                        dtypes='f' if name == 'power' else 'fi')
        args = [('v', a), b]
        if name != 'power' and d.draw(st.booleans(), label='swap operands'):
            args.reverse()
        return name, args, {}
    if fam == 'logical':
        a = choose(bools, 'logical operand')
        if a is None:
            return None
        name = d.draw(st.sampled_from(['logical_and', 'logical_or', 'logical_not', 'invert']),
                      label='logical op')
        if name in ('logical_not', 'invert'):
            return name, [('v', a)], {}
        b = choose([i for i in bools if bshape(rp.shape(a), rp.shape(i)) is not None], 'b')
        return name, [('v', a), ('v', b)], {}
    if fam == 'where':
        c = choose(bools, 'where condition')
        if c is None:
            return None
        x = raw_operand(d, rp, rp.shape(c), ['v', 'c'], 'where x')
        s = bshape(rp.shape(c), onp.shape(x[1]) if x[0] == 'c' else rp.shape(x[1]))
        y = raw_operand(d, rp, s, ['v', 's', 'c'], 'where y')
        return 'where', [('v', c), x, y], {}
    if fam == 'clip':
        a = choose(nonbool, 'clip operand')
        lo = d.draw(st.sampled_from([None, -1.0, 0, -2.5]), label='a_min')
        hi = d.draw(st.sampled_from([None, 1.0, 2, 0.5]) if lo is not None
                    else st.sampled_from([1.0, 2]), label='a_max')
        return 'clip', [('v', a)], {'a_min': lo, 'a_max': hi}
    if fam == 'astype':
        a = choose(pool, 'astype operand')
        dt = d.draw(st.sampled_from(['float32', 'int64', 'bool', 'float64']), label='dtype')
        return 'astype', [('v', a)], {'dtype': dt}
    if fam in ('reduce', 'arg'):
        a = choose(pool, f'{fam} operand')
        n = len(rp.shape(a))
        if fam == 'reduce':
            name = d.draw(st.sampled_from(['sum', 'prod', 'max', 'min']), label='reduction')
            axes = d.draw(st.one_of(st.none(), st.lists(st.integers(0, max(n - 1, 0)), unique=True,
                                                        max_size=n).map(sorted).map(tuple))
                          if n else st.sampled_from([None, ()]), label='axes')
        else:
            name = d.draw(st.sampled_from(['argmax', 'argmin']), label='arg reduction')
            axes = d.draw(st.one_of(st.none(), st.integers(0, n - 1).map(lambda x: (x,)))
                          if n else st.none(), label='axis')
        kd = d.draw(st.booleans(), label='keepdims')
        return name, [('v', a)], {'axis': axes, 'keepdims': kd}
    if fam == 'normalize':
        a = choose([i for i in floats if rp.shape(i)], 'normalize operand')
        if a is None:
            return None
        n = len(rp.shape(a))
        ax = d.draw(st.integers(0, n - 1), label='axis')
        name = d.draw(st.sampled_from(['softmax', 'log_softmax', 'layer_norm']), label='op')
        if name != 'layer_norm':
            return name, [('v', a)], {'axis': ax}
        p = (rp.shape(a)[ax],)
        g = draw_array(d, p, 'gamma')
        b = draw_array(d, p, 'beta')
        return 'layer_norm', [('v', a), ('c', g), ('c', b)], {'axis': ax, 'eps': 1e-5}
    if fam == 'matmul':
        a = choose([i for i in floats if len(rp.shape(i)) >= 2], 'matmul operand')
        if a is None:
            return None
        sa = rp.shape(a)
        m = d.draw(st.integers(1, 4), label='m')
        lead = d.draw(st.sampled_from([(), (1,), (2,)] + ([sa[:-2]] if len(sa) > 2 else [])),
                      label='batch')
        if bshape(sa[:-2], lead) is None:
            lead = ()
        left = d.draw(st.booleans(), label='value on the left')
        other = lead + ((sa[-1], m) if left else (m, sa[-2]))
        if not fits(bshape(sa[:-2], lead) + (max(sa[-2], m), max(sa[-1], m))):
            return None
        cands = [i for i in floats if rp.shape(i) == other]
        if cands and d.draw(st.booleans(), label='existing operand'):
            b = ('v', d.draw(st.sampled_from(cands), label='operand'))
        else:
            b = ('c', draw_array(d, other, 'matmul constant'))
        args = [('v', a), b] if left else [b, ('v', a)]
        return 'matmul', args, {}
    if fam == 'reshape':
        a = choose(pool, 'reshape operand')
        size = int(onp.prod(rp.shape(a)))
        shape = d.draw(st.sampled_from([(size,), (-1,), (1, size), (size, -1), (-1, 1)]
                                       + ([()] if size == 1 else [])), label='target')
        return 'reshape', [('v', a)], {'shape': shape}
    if fam == 'transpose':
        a = choose(pool, 'transpose operand')
        n = len(rp.shape(a))
        perm = d.draw(st.one_of(st.none(), st.permutations(range(n)).map(tuple)), label='axes')
        return 'transpose', [('v', a)], {'axes': perm}
    if fam == 'broadcast_to':
        a = choose(pool, 'broadcast operand')
        s = rp.shape(a)
        target = tuple(d.draw(st.integers(1, 3), label='expand 1') if x == 1 else x for x in s)
        if len(target) < MAX_NDIM and d.draw(st.booleans(), label='new lead dim'):
            target = (d.draw(st.integers(1, 3), label='lead'),) + target
        if not fits(target):
            target = s
        return 'broadcast_to', [('v', a)], {'shape': target}
    if fam == 'concatenate':
        a = choose([i for i in pool if rp.shape(i)], 'concatenate operand')
        if a is None:
            return None
        s = rp.shape(a)
        ax = d.draw(st.integers(0, len(s) - 1), label='axis')
        cands = [i for i in pool if len(rp.shape(i)) == len(s) and all(
            x == y for j, (x, y) in enumerate(zip(rp.shape(i), s)) if j != ax)]
        more = d.draw(st.lists(st.sampled_from(cands), min_size=1, max_size=2), label='others')
        if sum(rp.shape(i)[ax] for i in [a] + more) > MAX_DIM:
            more = [a]
        return 'concatenate', [('v', i) for i in [a] + more], {'axis': ax}
    # getitem / setitem / index_add: keys with IndexArg placeholders
    a = choose([i for i in pool if rp.shape(i)], f'{fam} operand')
    if a is None:
        return None
    shape = rp.shape(a)
    entries = draw_key(d, shape)
    template, idx = [], []
    for e in entries:
        if e[0] == 'array':
            dim = shape[e[2]]
            sym_idx = [i for i in pool if rp.bounds[i] is not None and rp.bounds[i] <= dim
                       and rp.shape(i) == onp.shape(e[1])]
            if sym_idx and d.draw(st.booleans(), label='symbolic index array'):
                idx.append(('v', d.draw(st.sampled_from(sym_idx), label='index array value')))
            else:
                idx.append(('c', onp.array(e[1], dtype=onp.int64)))
            template.append(IndexArg(len(idx) - 1))
        else:
            template.append({'int': e[-1], 'slice': e[-1], 'none': None,
                             'ellipsis': Ellipsis}[e[0]])
    key = tuple(template)
    probe = onp.empty(shape)[fill_key(key, [onp.asarray(x) for x in rp.resolve(idx, rp.values)])]
    if not probe.size or not (fits(probe.shape) or probe.ndim == 0):
        return None
    if fam == 'getitem':
        return 'getitem', [('v', a)] + idx, {'key': key}
    if fam == 'setitem':
        val = raw_operand(d, rp, probe.shape, ['v', 's', 'c'], 'setitem value')
        if val[0] == 'v' and bshape(rp.shape(val[1]), probe.shape) != probe.shape:
            val = ('s', 1.5)
        if val[0] == 'c' and bshape(onp.shape(val[1]), probe.shape) != probe.shape:
            val = ('s', -2.0)
        return 'setitem', [('v', a), val] + idx, {'key': key}
    # index_add of the selection itself, back into an array of the operand's shape
    rp.add('getitem', [('v', a)] + idx, {'key': key})
    return 'index_add', [('v', len(rp.values) - 1)] + idx, {'key': key, 'shape': shape}


def build_raw_program(d):
    rp = RawProg()
    ninputs = d.draw(st.integers(1, 3), label='number of inputs')
    for i in range(ninputs):
        shape = d.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
                       label=f'input {i} shape')
        x = draw_array(d, shape, f'input {i}')
        rp.inputs.append(x)
        rp.push(tnp.array(x))
    nsteps = d.draw(st.integers(1, 8), label='number of steps')
    while len(rp.steps) < nsteps:
        step = draw_raw_step(d, rp)
        if step is None:
            continue
        name, args, attrs = step
        bound = None
        if name in ('argmax', 'argmin'):
            a = rp.shape(args[0][1])
            bound = int(onp.prod(a)) if attrs['axis'] is None else a[attrs['axis'][0]]
        rp.add(name, args, attrs, bound)
    return rp


@settings(max_examples=300, **SETTINGS)
@given(st.data())
def test_trace_of_registered_ops_runs_like_eager(data):
    rp = build_raw_program(data)
    note(rp.describe())
    for name, args, _ in rp.steps:
        event(f'op {name}')
        if any(kind == 'v' and rp.bounds[x] is not None for kind, x in args[1:]):
            event(f'{name} with a traced index array')
    trace = Trace()
    v = [trace.input(f'x{i}', x.shape, x.dtype) for i, x in enumerate(rp.inputs)]
    with tracing(trace):
        for name, args, attrs in rp.steps:
            v.append(ops.get(name)(*rp.resolve(args, v), **attrs))
    outs = v[len(rp.inputs):]
    assert all(type(s) is Symbol for s in outs)
    graph = trace.graph
    op_nodes = [n for n, dd in graph.nodes(data=True) if dd['op'] not in SOURCE_OPS]
    assert len(op_nodes) == len(rp.steps)
    assert [graph.nodes[s.node]['op'] for s in outs] == [name for name, _, _ in rp.steps]
    for s, ref in zip(outs, rp.values[len(rp.inputs):]):       # traced shapes = eager shapes
        assert (s.shape, s.dtype) == (ref.shape, ref.dtype)
    with onp.errstate(all='ignore'):
        got = run_graph(graph, trace.inputs, [s.node for s in outs], rp.inputs)
        prog = GraphProgram(graph, trace.inputs, [s.node for s in outs])
        _, env = prog.run(rp.inputs, keep_env=True)
    for k, (g, ref) in enumerate(zip(got, rp.values[len(rp.inputs):])):
        assert_same(g, ref.asnumpy(), f'v{len(rp.inputs) + k}')
    for n in op_nodes:
        dd, val = graph.nodes[n], env[prog.slot[n]]
        assert (tuple(dd['shape']), dd['dtype']) == (val.shape, val.dtype.name), \
            f"node {n} ({dd['op']}): traced {dd['shape']} {dd['dtype']}, ran {val.shape} {val.dtype}"
    # and the optimized graph (every pass, IR invariants checked) still agrees
    graph.graph.update(inputs=list(trace.inputs), outputs=[s.node for s in outs], updates=[])
    opt, _ = optimize(graph, PassContext(verify=True))
    with onp.errstate(all='ignore'):
        got = run_graph(opt, opt.graph['inputs'], opt.graph['outputs'], rp.inputs)
    for k, (g, ref) in enumerate(zip(got, rp.values[len(rp.inputs):])):
        assert_same(g, ref.asnumpy(), f'optimized graph: v{len(rp.inputs) + k}')
