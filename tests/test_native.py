"""Native code: every registered op compiled vs the reference interpreter,
vector registers in the assembly, the founding models / a transformer /
the digits MLP compiled vs eager, validation of bad arrays, threads, the
disk cache and output ownership."""
import os
import subprocess
import sys
import warnings

import llvmlite.binding as llvm
import numpy as onp
import pytest

import founding
import tracer
from codegen.lower import LOWERINGS
from codegen.passes import PassContext, optimize
from runtime import jit
from runtime.executable import Executable
from test_op_gradients import CASES, NONDIFF_CALLS
from tracer import autograd, np, npx, ops
from tracer.graph.interpreter import run_graph
from tracer.graph.trace import Trace, tracing
from tracer.ops import OPS

# float32: FMA contraction and vector reductions reorder sums; exp/log/tanh/
# sigmoid/erf/softrelu are polynomial approximations within 5e-7 relative
# (tests/test_mathlib.py), so compiled results match to rtol 1e-5.
TOL = {'float32': dict(rtol=1e-5, atol=1e-6), 'float64': dict(rtol=1e-12, atol=1e-12)}


def compile_graph(fn, inputs, seed=None):
    """Trace ``fn`` on symbols like ``inputs``; return (interpreter, native) outputs."""
    t = Trace()
    syms = [t.input(f'd{i}', x.shape, x.dtype) for i, x in enumerate(inputs)]
    with tracing(t):
        out = fn(*syms)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    t.graph.graph.update(inputs=list(t.inputs), outputs=[o.node for o in outs], updates=[])
    h, _ = optimize(t.graph, PassContext(verify=True))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        exe = Executable(h, 'op', use_cache=False)
    if seed is not None:
        np.random.seed(seed)
    ref = run_graph(t.graph, t.graph.graph['inputs'], t.graph.graph['outputs'], inputs)
    if seed is not None:
        np.random.seed(seed)
    return ref, exe.run(inputs), exe


def _case_params():
    for name in sorted(CASES):
        for c in CASES[name]:
            for dtype in ('float32', 'float64'):
                yield pytest.param(name, c, dtype, id=f'{name}-{c.id}-{dtype}')


@pytest.mark.parametrize('name,c,dtype', list(_case_params()))
def test_every_differentiable_op_compiles_to_the_interpreters_result(name, c, dtype):
    if any(isinstance(x, onp.ndarray) and x.dtype == bool for x in c.inputs):
        pytest.skip('a traced boolean mask is a graph break (data-dependent shape); known '
                    'masks compile as integer positions (test_boolean_mask_indexing_compiles)')
    arrays = [x.astype(dtype) if x.dtype == onp.float64 else x
              for x in c.inputs if isinstance(x, onp.ndarray)]
    op = OPS[name]

    def fn(*syms):
        it = iter(syms)
        args = [next(it) if isinstance(x, onp.ndarray) else x for x in c.inputs]
        return op(*args, **c.attrs)
    ref, got, _ = compile_graph(fn, arrays)
    assert got[0].dtype == ref[0].dtype and got[0].shape == ref[0].shape
    onp.testing.assert_allclose(got[0], ref[0], **TOL[dtype])


@pytest.mark.parametrize('name', sorted(NONDIFF_CALLS))
def test_every_other_op_compiles(name):
    x = onp.random.default_rng(3).uniform(-2, 2, (3, 4)).astype('float32')

    def fn(s):
        return NONDIFF_CALLS[name](s) * 1          # keep the op in the graph
    ref, got, _ = compile_graph(fn, [x], seed=7)
    assert got[0].dtype == ref[0].dtype and got[0].shape == ref[0].shape
    onp.testing.assert_allclose(got[0], ref[0], **TOL['float32'])


def test_boolean_mask_indexing_compiles():
    x = onp.random.default_rng(0).uniform(-1, 1, (4, 5)).astype('float32')
    mask = x > 0
    ref, got, _ = compile_graph(lambda a: a[mask] * 2 + a[mask[:, 0]].sum(), [x])
    onp.testing.assert_allclose(got[0], x[mask] * 2 + x[mask[:, 0]].sum(), rtol=1e-6)


def test_every_registered_op_has_a_lowering():
    missing = sorted(set(OPS) - set(LOWERINGS))
    assert not missing, f'ops without a native lowering: {missing}'


def test_integer_and_boolean_elementwise_semantics():
    a = onp.array([-7, -1, 0, 5, 9], 'int32')
    b = onp.array([2, -3, 0, 2, -4], 'int32')

    def fn(x, y):
        return (ops.floor_divide(x, y), ops.mod(x, y), ~x, x > y, np.abs(x), np.sign(x),
                ops.logical_and(x > 0, y > 0), ops.maximum(x, y))
    with onp.errstate(all='ignore'):
        ref, got, _ = compile_graph(fn, [a, b])
    for r, g in zip(ref, got):
        onp.testing.assert_array_equal(g, r)


def test_special_float_values():
    x = onp.array([onp.nan, onp.inf, -onp.inf, 0.0, -0.0, 1e30, -1e30, 1e-40], 'float32')

    def fn(v):
        return (npx.relu(v), ops.maximum(v, 0.5), v.max(), npx.sigmoid(v), ops.tanh(v),
                np.sign(v), v > 0, ops.minimum(v, 1.0))
    with onp.errstate(all='ignore'):
        ref, got, _ = compile_graph(fn, [x])
    for r, g in zip(ref, got):
        onp.testing.assert_allclose(g, r, rtol=1e-6, atol=0, equal_nan=True)


def _features():
    return llvm.get_host_cpu_features() if jit.host() else {}


def test_vector_registers_in_elementwise_and_matmul_kernels():
    feats = jit.host()[1]
    if not (feats.get('avx512f') or feats.get('avx2')):
        pytest.skip('the host has neither AVX-512 nor AVX2')
    reg = 'zmm' if feats.get('avx512f') else 'ymm'
    x = onp.random.default_rng(0).uniform(-1, 1, (64, 256)).astype('float32')
    w = onp.random.default_rng(1).uniform(-1, 1, (128, 256)).astype('float32')
    _, _, exe = compile_graph(lambda a: npx.gelu(a) * 1.5 + ops.tanh(a), [x])
    (k,) = exe.kernels()
    assert k['kind'] == 'elementwise' and reg in k['asm']
    _, _, exe = compile_graph(lambda a, b: npx.relu(np.matmul(a, b.T)), [x, w])
    (k,) = exe.kernels()
    assert k['kind'] == 'matmul'
    assert any('vfmadd' in ln and reg in ln for ln in k['asm'].splitlines())


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('name', ['MLP', 'Sequential', 'MySequential', 'FixedHiddenMLP',
                                  'NestMLP', 'chimera'])
def test_founding_models_compiled_vs_eager(name):
    net = founding.make_models()[name]
    x = np.random.uniform(size=(3, 20))
    ref = net(x).asnumpy()
    net.hybridize()
    for _ in range(3):
        onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)
    ex = tracer.explain(net, x)
    for _, g in ex.graphs:
        pass
    assert all(e.native is not None for e in _graph_entries(net)), \
        [e.native_error for e in _graph_entries(net)]


def _graph_entries(block):
    from runtime.hybrid import graph_entries
    return list(graph_entries(block))


def test_transformer_block_compiled_vs_eager():
    from transformer import encoder_stack
    net = encoder_stack(blocks=2, d_model=64, heads=4, ffn=128)
    x = np.random.normal(size=(2, 16, 64))
    ref = net(x).asnumpy()
    net.hybridize()
    out = net(x).asnumpy()
    onp.testing.assert_allclose(out, ref, rtol=1e-4, atol=2e-5)
    (entry,) = _graph_entries(net)
    assert entry.native is not None, entry.native_error


def test_digits_mlp_compiled_vs_eager():
    pytest.importorskip('sklearn')
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'train_digits', os.path.join(os.path.dirname(founding.__file__), 'train_digits.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from tracer.gluon import nn
    net = nn.Sequential()
    net.add(nn.Dense(128, activation='relu'), nn.Dropout(0.2), nn.Dense(10))
    net.initialize()
    x = np.random.uniform(size=(50, 64))
    ref = net(x).asnumpy()
    net.hybridize()
    onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ bad arrays
def test_native_entry_refuses_bad_arrays_without_crashing():
    x = onp.ones((4, 8), 'float32')
    _, _, exe = compile_graph(lambda a: a * 2 + 1, [x])
    cases = [
        (onp.ones((4, 8), 'float64'), 'wrong dtype'),
        (onp.ones((5, 8), 'float32'), 'wrong shape'),
        (onp.ones((32,), 'float32'), 'wrong ndim'),
        (onp.ones((8, 8), 'float32')[::2], 'not contiguous'),
        (onp.ones((8, 4), 'float32').T, 'not contiguous'),
        (onp.ones((4, 8), '>f4'), 'wrong dtype|big-endian'),
        ([[1.0] * 8] * 4, 'not an ndarray'),
        (None, 'not an ndarray'),
    ]
    for bad, why in cases:
        with pytest.raises(ValueError, match=why):
            exe.run([bad])
    ro = onp.ones((4, 8), 'float32')
    out = onp.empty((4, 8), 'float32')
    out.flags.writeable = False
    with pytest.raises(ValueError, match='not writeable'):
        exe.call(ro, out)
    with pytest.raises(ValueError, match='expected 2 arrays'):
        exe.call(ro)
    onp.testing.assert_array_equal(exe.run([x])[0], x * 2 + 1)


def test_hybridized_block_accepts_views_and_names_bad_shapes():
    net = tracer.gluon.nn.Dense(3, in_units=4)
    net.initialize()
    net.hybridize()
    base = np.random.uniform(size=(6, 8))
    view = base[::2, ::2]                                   # non-contiguous (3, 4)
    ref = view.asnumpy() @ net.weight.data().asnumpy().T + net.bias.data().asnumpy()
    net(np.ones((3, 4)))
    onp.testing.assert_allclose(net(view).asnumpy(), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(tracer.errors.ShapeError, match=r'expected input shape \(batch, 4\)'):
        net(np.ones((3, 5)))


def test_gather_with_out_of_range_index_raises_index_error():
    x = onp.arange(12, dtype='float32').reshape(3, 4)
    idx = onp.array([0, 2], 'int64')
    _, got, exe = compile_graph(lambda a, i: np.getitem(a, i) * 1, [x, idx])
    onp.testing.assert_array_equal(got[0], x[[0, 2]])
    with pytest.raises(IndexError, match='index out of range'):
        exe.run([x, onp.array([0, 3], 'int64')])
    onp.testing.assert_array_equal(exe.run([x, onp.array([-1, 1], 'int64')])[0], x[[-1, 1]])


def test_outputs_are_fresh_arrays_every_call():
    net = founding.make_models()['MLP']
    net.hybridize()
    x = np.random.uniform(size=(2, 20))
    a = net(x)
    a_copy = a.asnumpy()
    b = net(x * 2)
    assert a._data is not b._data
    onp.testing.assert_array_equal(a.asnumpy(), a_copy)


# ------------------------------------------------------------------ threads and cache
def test_parallel_kernels_use_openmp_and_match(monkeypatch):
    if not jit.host()[2]:
        pytest.skip('libgomp is not available')
    monkeypatch.setenv('TRACER_NUM_THREADS', '2')
    x = onp.random.default_rng(0).uniform(-1, 1, (512, 1024)).astype('float32')
    w = onp.random.default_rng(1).uniform(-1, 1, (256, 1024)).astype('float32')
    ref, got, exe = compile_graph(
        lambda a, b: (npx.gelu(a) + 1, npx.softmax(a), np.matmul(a, b.T)), [x, w])
    assert 'GOMP_parallel' in exe.ir_text
    # the 1024-long dot products of the matmul round differently (blocked, FMA)
    for r, g, atol in zip(ref, got, (1e-5, 1e-6, 2e-4)):
        onp.testing.assert_allclose(g, r, rtol=1e-4, atol=atol)
    monkeypatch.setenv('TRACER_NUM_THREADS', '1')
    _, _, small = compile_graph(lambda a: a + 1, [onp.ones((4, 4), 'float32')])
    assert 'GOMP_parallel' not in small.ir_text


def test_disk_cache_is_used_by_a_new_process_and_survives_corruption(tmp_path):
    code = '''
import sys, warnings, numpy as onp
sys.path.insert(0, {examples!r})
import founding
from tracer import np
net = founding.make_models()['MLP']
net.hybridize()
x = np.array(onp.ones((2, 20), 'float32'))
net(x)
(entry,) = net._cached.values()
print('CACHE', entry.native.engine.from_cache)
'''.format(examples=os.path.dirname(founding.__file__))
    env = dict(os.environ, TRACER_CACHE_DIR=str(tmp_path))

    def run():
        out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.split('CACHE')[-1].strip(), out.stderr
    assert run()[0] == 'False'
    assert run()[0] == 'True'
    objs = list(tmp_path.rglob('*.o'))
    assert len(objs) == 1
    data = objs[0].read_bytes()
    objs[0].write_bytes(data[:len(data) // 2] + b'garbage')     # truncated and damaged
    used, err = run()
    assert used == 'False' and 'ignoring unusable cached object code' in err
    assert run()[0] == 'True'                 # rewritten after the recompile


def test_training_is_compiled_and_matches_eager():
    net = founding.make_models()['MLP']
    net.hybridize()
    x = np.random.uniform(size=(4, 20))
    net(x)                                     # compiled inference
    with autograd.record():
        net(x).sum().backward()                # compiled forward-with-saved-values + backward
    (entry,) = [e for e in net._cached.values() if e._train]
    (training,) = entry._train.values()
    assert training is not None, entry.native_error
    g = net.out.weight.grad().asnumpy().copy()
    net.hybridize(active=False)
    with autograd.record():
        net(x).sum().backward()
    onp.testing.assert_allclose(g, net.out.weight.grad().asnumpy(), rtol=1e-5, atol=1e-7)


def test_epilogue_members_computed_before_the_anchor():
    """Epilogue inputs the user computes before the matmul/reduction (so they
    sort before the anchor) must still be evaluated as the epilogue."""
    rng = onp.random.default_rng(5)
    a = rng.uniform(-1, 1, (6, 8)).astype('float32')
    w = rng.uniform(-1, 1, (5, 8)).astype('float32')
    c = rng.uniform(-1, 1, (6, 5)).astype('float32')
    r = rng.uniform(-1, 1, (6,)).astype('float32')

    def fn(x, wt, cc, rr):
        mask = cc > 0                      # traced before the matmul it scales
        m2 = rr * 2.0                      # traced before the reduction it shifts
        return np.matmul(x, wt.T) * mask, x.sum(axis=1) + m2, npx.softmax(x) + x * 0 + 1
    ref, got, _ = compile_graph(fn, [a, w, c, r])
    for rf, g in zip(ref, got):
        onp.testing.assert_allclose(g, rf, rtol=1e-5, atol=1e-6)
