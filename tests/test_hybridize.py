"""hybridize(): tracing, caching, graph breaks, gradients, debug-eager."""
import warnings

import numpy as onp
import pytest

import founding
import tracer
from tracer import autograd, gluon, np, npx
from tracer.errors import ShapeError
from tracer.gluon import nn
from runtime.hybrid import FullGraphError, GraphBreakWarning

RTOL, ATOL = 1e-5, 1e-6     # float32, same NumPy kernels in a different grouping

NAMES = ['MLP', 'Sequential', 'MySequential', 'FixedHiddenMLP', 'NestMLP', 'chimera']


def _grads(net):
    return {k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()
            if p.grad_req != 'null'}


def _entry_kinds(net):
    return [e.kind for e in net._cached.values()]


@pytest.mark.filterwarnings('ignore::runtime.hybrid.GraphBreakWarning')
@pytest.mark.parametrize('name', NAMES)
def test_founding_models_hybridize_to_eager_results(name):
    net = founding.make_models()[name]
    xa, xb = np.random.uniform(size=(2, 20)), np.random.uniform(size=(5, 20))
    ref_a, ref_b = net(xa).asnumpy(), net(xb).asnumpy()
    net.hybridize()
    for x, ref in ((xa, ref_a), (xa, ref_a), (xb, ref_b), (xa, ref_a)):
        onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=RTOL, atol=ATOL)
    assert len(net._cached) == 2        # one entry per input shape


@pytest.mark.filterwarnings('ignore::runtime.hybrid.GraphBreakWarning')
@pytest.mark.parametrize('name', NAMES)
def test_hybridized_gradients_equal_eager_gradients(name):
    net = founding.make_models()[name]
    x = np.random.uniform(size=(3, 20))
    with autograd.record():
        net(x).sum().backward()
    eager = _grads(net)
    net.hybridize()
    for _ in range(2):                  # first call traces, second runs the cached graph
        net.zero_grad()
        with autograd.record():
            net(x).sum().backward()
        for k, g in _grads(net).items():
            onp.testing.assert_allclose(g, eager[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_graph_structure_params_shared_and_attributes():
    net = founding.make_models()['FixedHiddenMLP']
    dense = nn.Sequential()
    dense.add(net.dense)
    net2 = founding.make_models()['MLP']
    net2.hybridize()
    x = np.random.uniform(size=(2, 20))
    net2(x)
    g = tracer.explain(net2, x).graph
    ops = [d['op'] for _, d in g.nodes(data=True)]
    assert ops.count('param') == 4 and ops.count('matmul') == 2 and ops.count('input') == 1
    for n, d in g.nodes(data=True):
        assert set(d) >= {'op', 'attrs', 'shape', 'dtype', 'scope', 'source'}
        if d['op'] == 'matmul':
            assert d['scope'] in ('hidden', 'out')
            assert d['source'].endswith(f'founding.py:{_line("return self.out(self.hidden(X))")}')
    for u, v, e in g.edges(data=True):
        assert 'pos' in e


def _line(text):
    import inspect
    src = inspect.getsource(founding).splitlines()
    return next(i + 1 for i, ln in enumerate(src) if text in ln)


def test_layer_called_twice_shares_one_weight_node():
    class Twice(nn.Block):
        def __init__(self):
            super().__init__()
            self.dense = nn.Dense(4, in_units=4)

        def forward(self, x):
            return self.dense(self.dense(x))
    net = Twice()
    net.initialize()
    x = np.random.uniform(size=(2, 4))
    ref = net(x).asnumpy()
    g = tracer.explain(net, x).graph
    assert [d['op'] for _, d in g.nodes(data=True)].count('param') == 2
    onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=RTOL)


def test_cached_graph_does_not_rerun_forward():
    calls = []

    class Counting(nn.Block):
        def __init__(self):
            super().__init__()
            self.d = nn.Dense(3, in_units=2)

        def forward(self, x):
            calls.append(1)
            return self.d(x) * 2
    net = Counting()
    net.initialize()
    net.hybridize()
    x = np.ones((1, 2))
    for _ in range(3):
        net(x)
    assert len(calls) == 1
    net(np.ones((4, 2)))                # new signature: traces again
    assert len(calls) == 2


def test_break_warns_once_with_file_and_line_and_fullgraph_raises(monkeypatch):
    monkeypatch.setenv('TRACER_SPECULATE', '0')       # branches are breaks, as in Gluon
    net = founding.make_models()['FixedHiddenMLP']
    net.hybridize()
    x = np.random.uniform(size=(2, 20))
    line = _line('while np.abs(X).sum() > 1')
    with pytest.warns(GraphBreakWarning, match=f'founding.py:{line}'):
        net(x)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        net(np.random.uniform(size=(3, 20)))      # same site: no second warning
    assert _entry_kinds(net) == ['eager', 'eager']
    assert [e.kind for e in net.dense._cached.values()] == ['graph', 'graph']  # child compiled
    monkeypatch.setenv('TRACER_SPECULATE', '1')
    net.hybridize(fullgraph=True)                 # fullgraph: no value-dependent Python at all
    with pytest.raises(FullGraphError, match=f'founding.py:{line}'):
        net(x)


def test_branches_on_values_compile_as_guarded_specializations():
    net = founding.make_models()['FixedHiddenMLP']
    xs = [np.random.uniform(size=(2, 20)) * s for s in (1.0, 4.0, 20.0, 1.0, 60.0, 4.0)]
    refs = [net(x).item() for x in xs]            # eager: the while loop runs 0..n times
    net.hybridize()
    with warnings.catch_warnings():
        warnings.simplefilter('error')            # no graph break, no warning
        outs = [net(x).item() for x in xs]
    onp.testing.assert_allclose(outs, refs, rtol=1e-5)
    (entry,) = net._cached.values()
    assert entry.kind == 'variants' and 1 < len(entry.entries) <= 4
    assert all(e.native is not None for e in entry.entries)
    report = str(tracer.explain(net, xs[0]))
    assert 'guard' in report and 'founding.py' in report
    # gradients through a specialized graph equal eager gradients
    x = xs[2]
    net.zero_grad()
    with autograd.record():
        net(x).backward()
    g = net.dense.weight.grad().asnumpy().copy()
    net.hybridize(active=False)
    net.zero_grad()
    with autograd.record():
        net(x).backward()
    onp.testing.assert_allclose(g, net.dense.weight.grad().asnumpy(), rtol=1e-5, atol=1e-7)


def test_too_many_branch_patterns_fall_back_to_eager():
    class Steps(nn.Block):
        def forward(self, x):
            while x.sum() < 100:
                x = x + 1
            return x
    net = Steps()
    net.hybridize()
    with pytest.warns(UserWarning, match='specialized graphs'):
        outs = [net(np.full((1,), float(v))).item() for v in range(0, 90, 9)]
    assert outs == [100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0]


def test_sequential_compiles_runs_around_the_breaking_child(monkeypatch):
    monkeypatch.setenv('TRACER_SPECULATE', '0')
    chimera = founding.make_models()['chimera']
    chimera.hybridize()
    x = np.random.uniform(size=(2, 20))
    with pytest.warns(GraphBreakWarning):
        chimera(x)
    (entry,) = chimera._cached.values()
    assert entry.kind == 'segmented'
    run, fixed = entry.plan
    assert run._layers == list(chimera._layers[:2]) and fixed is chimera[2]
    assert [e.kind for e in run._cached.values()] == ['graph']
    report = str(tracer.explain(chimera, x))
    assert 'graph break at' in report and 'founding.py' in report


def test_value_reads_are_breaks_or_guards_never_frozen_branches():
    class Branchy(nn.Block):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x * -1
    net = Branchy()
    net.hybridize()
    onp.testing.assert_array_equal(net(np.ones((2,))).asnumpy(), [2, 2])
    onp.testing.assert_array_equal(net(-np.ones((2,))).asnumpy(), [1, 1])   # not frozen
    onp.testing.assert_array_equal(net(np.ones((2,))).asnumpy(), [2, 2])
    (entry,) = net._cached.values()
    assert entry.kind == 'variants' and len(entry.entries) == 2
    for read in (lambda x: float(x.sum()), lambda x: x.sum().item(), lambda x: x.asnumpy()):
        class Reader(nn.Block):
            def forward(self, x, read=read):
                read(x)
                return x
        r = Reader()
        r.hybridize(fullgraph=True)
        with pytest.raises(FullGraphError, match='graph break'):
            r(np.ones((2,)))


def test_inplace_updates_are_functional_in_traces():
    class InPlace(nn.Block):
        def forward(self, x):
            y = x * 1
            y += 1
            y[0] = 5
            y /= 2
            return y
    net = InPlace()
    x = np.array([1.0, 2.0, 3.0])
    ref = net(x).asnumpy()
    net.hybridize(fullgraph=True)
    onp.testing.assert_allclose(net(x).asnumpy(), ref)
    onp.testing.assert_allclose(x.asnumpy(), [1, 2, 3])     # input untouched


def test_recompile_warning_after_eight_signatures():
    net = nn.Dense(2, in_units=3)
    net.initialize()
    net.hybridize()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for b in range(1, 9):
            net(np.ones((b, 3)))
    with pytest.warns(UserWarning, match=r'input 0: shape/dtype'):
        net(np.ones((9, 3)))
    assert net(np.ones((10, 3))).shape == (10, 2)          # keeps working


def test_feature_size_conflict_names_block_path_and_expected_shape():
    chimera = founding.make_models()['chimera']
    chimera.hybridize()
    chimera(np.ones((2, 20)))
    with pytest.raises(ShapeError) as err:
        chimera(np.ones((2, 7)))
    assert "'0.net.0'" in str(err.value) and '(batch, 20)' in str(err.value)


def test_dropout_and_batchnorm_in_traces():
    net = nn.Sequential()
    net.add(nn.Dense(8, in_units=4), nn.BatchNorm(in_channels=8), nn.Dropout(0.5))
    net.initialize()
    net.hybridize(fullgraph=True)
    x = np.random.uniform(size=(16, 4))
    y1, y2 = net(x).asnumpy(), net(x).asnumpy()
    onp.testing.assert_array_equal(y1, y2)                  # inference: deterministic
    with autograd.record():
        a = net(x).asnumpy()
        b = net(x).asnumpy()
    assert (a == 0).mean() > 0.2 and not onp.array_equal(a == 0, b == 0)   # fresh masks
    rm = net[1].running_mean.data().asnumpy()
    assert onp.abs(rm).sum() > 0                            # running stats updated


def test_debug_eager_runs_python_forward_with_print(capsys, monkeypatch):
    class Printing(nn.Block):
        def forward(self, x):
            print('inside forward', x.shape)
            return x * 2
    net = Printing()
    net.hybridize()
    x = np.ones((2,))
    net(x)
    capsys.readouterr()
    net(x)
    assert capsys.readouterr().out == ''                    # compiled: no Python forward
    with tracer.debug_eager():
        net(x)
    assert capsys.readouterr().out == 'inside forward (2,)\n'
    tracer.set_debug_eager(True)
    try:
        net(x)
        assert 'inside forward' in capsys.readouterr().out
    finally:
        tracer.set_debug_eager(False)
    net.hybridize(active=False)
    net(x)
    assert 'inside forward' in capsys.readouterr().out


def test_debug_eager_environment_variable():
    import subprocess
    import sys
    code = ('import tracer\nfrom tracer import np\nfrom tracer.gluon import nn\n'
            'class P(nn.Block):\n    def forward(self, x):\n        print("py"); return x\n'
            'n = P(); n.hybridize(); n(np.ones(1)); n(np.ones(1))\n')
    env = dict(__import__('os').environ, TRACER_DEBUG_EAGER='1')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    assert out.stdout.count('py') == 2, out.stderr


def test_hybrid_forward_and_tuple_outputs():
    class Two(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.w = gluon.Parameter('w', shape=(3,), init='ones')

        def hybrid_forward(self, F, x, w):
            return F.relu(x) * w, {'s': x.sum(), 'list': [x - 1]}
    net = Two()
    net.initialize()
    x = np.array([-1.0, 2.0, 3.0])
    x.attach_grad()
    ref = net(x)
    net.hybridize()
    with autograd.record():
        a, b = net(x)
        (a.sum() + b['s'] * 2 + b['list'][0].sum()).backward()
    onp.testing.assert_allclose(a.asnumpy(), ref[0].asnumpy())
    onp.testing.assert_allclose(x.grad.asnumpy(), [0 + 3, 1 + 3, 1 + 3])
    onp.testing.assert_allclose(net.w.grad().asnumpy(), [0, 2, 3])


def test_explain_and_dot():
    net = founding.make_models()['NestMLP']
    x = np.random.uniform(size=(2, 20))
    ex = tracer.explain(net, x)
    assert ex.breaks == [] and ex.graph.number_of_nodes() == 19
    assert 'NestMLP: graph' in str(ex) and 'matmul' in str(ex)
    dot = net.graph_dot(x)
    assert dot.startswith('digraph') and 'label="group 0: matmul (net.0)"' in dot
    assert dot.count('->') == ex.graph.number_of_edges()
