"""Each pass alone on hand-written graphs, checked against the reference
interpreter; then the whole pipeline on the founding models and a
transformer block."""
import networkx as nx
import numpy as onp
import pytest

import founding
import tracer
from codegen import passes
from codegen.passes import PassContext, PassError, cse, dce, fold, fusion, memory, simplify
from tracer import gluon, np, npx, ops
from tracer.graph.interpreter import run_graph
from tracer.graph.trace import Trace, tracing
from tracer.gluon import nn

RTOL, ATOL = 1e-6, 1e-7


def build(fn, *shapes, dtype='float32'):
    """Trace ``fn`` on inputs of these shapes into a graph with inputs/outputs set."""
    t = Trace()
    syms = [t.input(f'data{i}', s, dtype) for i, s in enumerate(shapes)]
    with tracing(t):
        out = fn(*syms)
    outs = out if isinstance(out, (list, tuple)) else [out]
    t.graph.graph.update(inputs=list(t.inputs), outputs=[o.node for o in outs], updates=[])
    return t.graph


def values(*shapes, dtype='float32', seed=0):
    rng = onp.random.default_rng(seed)
    return [rng.uniform(-2, 2, s).astype(dtype) for s in shapes]


def run(g, xs):
    return run_graph(g, g.graph['inputs'], g.graph['outputs'], xs)


def apply(pass_module, g, ctx=None):
    from tracer.graph.ir import copy_graph
    h = copy_graph(g)
    stats = pass_module.run(h, ctx or PassContext())
    from tracer.graph.ir import check
    check(h)
    return h, stats


def same_results(g, h, xs):
    for a, b in zip(run(g, xs), run(h, xs)):
        onp.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


def ops_of(g):
    return sorted(d['op'] for _, d in g.nodes(data=True))


# ------------------------------------------------------------------ folding
def test_fold_computes_constant_subgraphs_once():
    c = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = build(lambda x: x + ops.exp(c * 2).sum() + ops.tanh(c), (2, 2))
    h, stats = apply(fold, g)
    assert stats['folded'] == 0            # computed eagerly at trace time already
    # a graph whose constants only meet inside it: build by hand
    g2 = build(lambda x: x * 1.5, (2, 2))
    (mul,) = [n for n, d in g2.nodes(data=True) if d['op'] == 'multiply']
    k1 = max(g2.nodes) + 1
    g2.add_node(k1, op='constant', value=onp.full((2, 2), 3.0, 'float32'), shape=(2, 2),
                dtype='float32', attrs={}, scope='', source='')
    k2 = k1 + 1
    g2.add_node(k2, op='exp', shape=(2, 2), dtype='float32', attrs={}, scalars={}, scope='',
                source='')
    g2.add_edge(k1, k2, pos=0)
    k3 = k2 + 1
    g2.add_node(k3, op='add', shape=(2, 2), dtype='float32', attrs={}, scalars={}, scope='',
                source='')
    g2.add_edge(mul, k3, pos=0)
    g2.add_edge(k2, k3, pos=1)
    g2.graph['outputs'] = [k3]
    h2, stats = apply(fold, g2)
    assert stats['folded'] == 1 and 'exp' not in ops_of(h2)
    same_results(g2, h2, values((2, 2)))


def test_fixed_hidden_mlp_constant_work_is_folded_and_params_are_not():
    class UsesConstant(nn.Block):
        def __init__(self):
            super().__init__()
            self.rand_weight = gluon.Constant(np.random.uniform(size=(20, 20)))
            self.dense = nn.Dense(20, in_units=20)

        def forward(self, x):
            return self.dense(np.dot(x, self.rand_weight.data().T * 2))
    net = UsesConstant()
    net.initialize()
    x = np.random.uniform(size=(2, 20))
    ref = net(x).asnumpy()
    ex = tracer.explain(net, x)
    fold_report = next(r for r in ex.passes if r.name == 'fold')
    assert fold_report.stats['folded'] == 2           # transpose and *2 of the Constant
    remaining = ops_of(ex.graph)
    assert remaining.count('transpose') == 1           # the Dense weight's: a parameter
    onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=1e-5, atol=1e-7)


def test_freeze_folds_parameters_and_detects_updates():
    net = nn.Dense(4, in_units=3)
    net.initialize()
    x = np.random.uniform(size=(2, 3))
    net.hybridize(freeze=True)
    y = net(x).asnumpy()
    ex = tracer.explain(net, x)
    # the transposed weight is computed at compile time; the bias stays a parameter input
    assert 'transpose' not in ops_of(ex.graph) and ops_of(ex.graph).count('param') == 1
    net.weight.set_data(np.ones((4, 3)))
    with pytest.warns(UserWarning, match=r"'weight' changed after hybridize\(freeze=True\)"):
        y2 = net(x).asnumpy()
    onp.testing.assert_allclose(y2, x.asnumpy().sum(1, keepdims=True) + 0 * y, rtol=1e-5, atol=1e-6)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 1.0})
    net.weight.data().grad[:] = 1
    trainer.step(1)
    with pytest.warns(UserWarning, match='changed after'):
        y3 = net(x).asnumpy()
    onp.testing.assert_allclose(y3, y2 - x.asnumpy().sum(1, keepdims=True), rtol=1e-5)


# ------------------------------------------------------------------ simplification
@pytest.mark.parametrize('fn,rule', [
    (lambda x: x * 1, 'multiply'), (lambda x: 1 * x, 'multiply'),
    (lambda x: x + 0, 'add'), (lambda x: 0 + x, 'add'), (lambda x: x - 0, 'subtract'),
    (lambda x: x / 1, 'divide'), (lambda x: -(-x), 'negative'),
    (lambda x: npx.relu(npx.relu(x)), 'relu'), (lambda x: x.T.T, 'transpose'),
    (lambda x: x.reshape(3, 2).reshape(6).reshape(2, 3), 'reshape'),
    (lambda x: x.astype('float32'), 'astype'), (lambda x: np.broadcast_to(x, (2, 3)), 'broadcast_to'),
])
def test_each_simplification_rule(fn, rule):
    g = build(lambda x: ops.exp(fn(x)), (2, 3))
    h, stats = apply(simplify, g)
    assert any(k.startswith(rule) for k in stats['rules']), stats
    assert rule not in [d['op'] for _, d in h.nodes(data=True)] or rule == 'relu'
    if rule == 'relu':
        assert ops_of(h).count('relu') == 1
    same_results(g, h, values((2, 3)))


def test_transpose_chain_composes():
    g = build(lambda x: ops.exp(x.transpose(1, 2, 0).transpose(0, 2, 1)), (2, 3, 4))
    h, stats = apply(simplify, g)
    assert ops_of(h).count('transpose') == 1
    same_results(g, h, values((2, 3, 4)))


def test_rules_only_fire_when_exact():
    g = build(lambda x: x - x, (3,))                          # float: inf - inf is nan
    h, stats = apply(simplify, g)
    assert stats['rules'] == {}
    gi = build(lambda x: x - x, (3,), dtype='int32')          # integers: exactly zero
    hi, stats = apply(simplify, gi)
    assert 'subtract:self_subtract' in stats['rules']
    onp.testing.assert_array_equal(run(hi, [onp.array([1, -5, 7], 'int32')])[0], [0, 0, 0])
    gm = build(lambda x: x * 1.0, (3,), dtype='int32')         # int * 1.0 is a float array
    hm, stats = apply(simplify, gm)
    assert stats['rules'] == {}


# ------------------------------------------------------------------ dedupe, dead code
def test_cse_merges_identical_work_only():
    def fn(x, y):
        a = ops.exp(x) + y
        b = ops.exp(x) + y                 # identical: merged
        c = ops.exp(x) * y                 # different op
        d = x.sum(axis=0) + x.sum(axis=1).sum()   # different attrs
        r1 = np.random.uniform(size=(2, 3)) + x
        r2 = np.random.uniform(size=(2, 3)) + x   # random: never merged
        return a + b + c + d.sum() + r1 + r2
    g = build(fn, (2, 3), (2, 3))
    h, stats = apply(cse, g)
    assert stats['merged'] == 3            # the second and third exp, the second add
    assert ops_of(h).count('random_uniform') == 2
    xs = values((2, 3), (2, 3))
    tracer.np.random.seed(1)
    a = run(g, xs)[0]
    tracer.np.random.seed(1)
    b = run(h, xs)[0]
    onp.testing.assert_allclose(a, b, rtol=RTOL)


def test_dce_removes_unused_but_keeps_inputs():
    def fn(x, unused):
        ops.exp(x) * 3                     # computed, never used
        return x + 1
    g = build(fn, (2,), (2,))
    h, stats = apply(dce, g)
    assert stats['removed'] == 2
    assert ops_of(h) == ['add', 'input', 'input']


# ------------------------------------------------------------------ fusion
def _groups(h):
    return [[h.nodes[n]['op'] for n in grp['nodes']] for grp in h.graph['groups'].values()]


def _assert_convex(h):
    q = nx.quotient_graph(h.subgraph([n for n in h if 'group' in h.nodes[n]]),
                          lambda a, b: h.nodes[a]['group'] == h.nodes[b]['group'])
    assert nx.is_directed_acyclic_graph(q)


def test_fusion_elementwise_chain_and_reduction_prologue():
    g = build(lambda x: (np.abs(x * 2 + 1).sum() > 1), (4, 5))
    h, stats = apply(fusion, g)
    assert _groups(h) == [['multiply', 'add', 'abs', 'sum', 'greater']]
    _assert_convex(h)


def test_fusion_matmul_epilogue_bias_activation_residual():
    def fn(x, w, b):
        return npx.gelu(np.matmul(x, w.T) + b) + x
    g = build(fn, (8, 16), (16, 16), (16,))
    h, _ = apply(fusion, g)
    groups = _groups(h)
    assert len(groups) == 1 and groups[0][:2] == ['transpose', 'matmul']
    assert 'erf' in groups[0] and groups[0][-1] == 'add'


def test_fusion_never_duplicates_shared_work():
    def fn(x):
        e = ops.exp(x)
        return e.sum(axis=1), e * 2        # e read by two different groups
    g = build(fn, (3, 4))
    h, _ = apply(fusion, g)
    assert ['exp'] in _groups(h)           # materialized once, not fused twice
    _assert_convex(h)


def test_softmax_and_layer_norm_are_one_group_each():
    def fn(x, gamma, beta):
        s = npx.softmax(x * 0.5)
        return npx.layer_norm(s + x, gamma, beta)
    g = build(fn, (4, 8), (8,), (8,))
    h, _ = apply(fusion, g)
    groups = _groups(h)
    assert ['multiply', 'softmax'] in groups and ['add', 'layer_norm'] in groups


def test_transformer_block_fusion_groups_and_kernel_reuse():
    from transformer import encoder_stack
    net = encoder_stack(blocks=3, d_model=32, heads=4, ffn=64)
    x = np.random.normal(size=(2, 5, 32))
    ref = net(x).asnumpy()
    ex = tracer.explain(net, x)
    onp.testing.assert_allclose(net(x).asnumpy(), ref, rtol=1e-5, atol=1e-5)
    kinds = [tuple(ex.graph.nodes[n]['op'] for n in g['nodes']) for g in ex.groups.values()]
    assert ('transpose', 'matmul', 'add') in kinds                          # Dense + bias
    assert ('matmul', 'multiply', 'softmax') not in kinds                   # softmax apart
    assert any(k[-1] == 'softmax' for k in kinds)
    assert any('erf' in k and k[1] == 'matmul' for k in kinds)             # FFN + GELU
    assert any(k[-1] == 'layer_norm' and 'add' in k for k in kinds)        # residual + LN
    fusion_stats = next(r for r in ex.passes if r.name == 'fusion').stats
    one = tracer.explain(encoder_stack(blocks=1, d_model=32, heads=4, ffn=64), x)
    one_stats = next(r for r in one.passes if r.name == 'fusion').stats
    assert fusion_stats['groups'] == 3 * one_stats['groups']
    assert fusion_stats['distinct_kernels'] == one_stats['distinct_kernels']   # compiled once
    _assert_convex(ex.graph)


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_founding_models_fusion_groups():
    ms = founding.make_models()
    x = np.random.uniform(size=(2, 20))
    ex = tracer.explain(ms['MLP'], x)
    assert _groups(ex.graph) == [['transpose', 'matmul', 'add', 'relu'],
                                 ['transpose', 'matmul', 'add']]
    ex = tracer.explain(ms['FixedHiddenMLP'], x)       # specialized on its while loop
    groups = _groups(ex.graph)
    # the shared Dense's transposed weight feeds two matmuls: computed once, not fused twice
    assert groups[0] == ['transpose'] and groups.count(['matmul', 'add', 'relu']) == 3
    assert ['abs', 'sum', 'greater'] in groups            # the loop test: one kernel
    assert ex.guards and all('founding.py' in g['source'] for g in ex.guards)


# ------------------------------------------------------------------ memory
def _check_plan(h):
    """Simulate the plan: no buffer holds two values that are live together
    (a reshape alias keeps its base value alive until the alias's last reader)."""
    plan = h.graph['memory']
    order = [h.graph['groups'][i] for i in sorted(h.graph['groups'])]
    root_group = {g['root']: i for i, g in enumerate(order)}
    base = {r: b for r, (kind, b) in plan['assign'].items() if kind == 'alias'}
    last = {}
    for i, g in enumerate(order):
        for s in g['inputs']:
            s = base.get(s, s)
            if s in root_group:
                last[s] = i
    holder = {}
    for i, g in enumerate(order):
        r = g['root']
        kind, b = plan['assign'][r]
        if kind == 'alias':
            assert h.nodes[r]['op'] == 'reshape' and r not in h.graph['outputs']
        elif kind == 'workspace':
            prev = holder.get(b)
            if prev is not None:
                # the previous value must be dead, or read only by this group (in place)
                assert last.get(prev, root_group[prev]) <= i, (prev, r)
                if last.get(prev, -1) == i:
                    assert g['kind'] == 'elementwise' and (r, prev) in plan['inplace']
            holder[b] = r
        else:
            assert r in h.graph['outputs'] or r in h.graph['updates']


def test_memory_plan_reuses_buffers_safely():
    def fn(x, w):
        h = x
        for _ in range(4):
            h = h.reshape(8, 32).reshape(16, 16) * 1.5
            h = npx.softmax(np.matmul(h, w)) * 2.0 + 1.0
            h = npx.relu(h.sum(axis=1, keepdims=True) - h)
        return h
    g = build(fn, (16, 16), (16, 16))
    h, _ = apply(fusion, g)
    h, stats = apply(memory, h)
    _check_plan(h)
    assert stats['peak_bytes_after'] < stats['peak_bytes_before']
    assert stats['buffers'] < len(h.graph['groups'])


def test_pipeline_reports_disables_and_verifies(monkeypatch):
    net = founding.make_models()['MLP']
    x = np.random.uniform(size=(2, 20))
    ex = tracer.explain(net, x)
    assert [r.name for r in ex.passes][-3:] == ['dce', 'fusion', 'memory']
    assert ex.memory['peak_after'] < ex.memory['peak_before']
    assert 'peak_bytes_after' in str(ex)
    net.hybridize(disable_passes=('fusion', 'memory'))
    ex = tracer.explain(net, x)
    assert 'groups' not in ex.graph.graph
    assert {r.name for r in ex.passes if r.stats.get('disabled')} == {'fusion', 'memory'}
    with pytest.raises(ValueError, match='unknown passes'):
        net.hybridize(disable_passes=('nope',))
    monkeypatch.setenv('TRACER_DISABLE_PASSES', 'cse')
    net.hybridize()
    assert any(r.name == 'cse' and r.stats.get('disabled') for r in tracer.explain(net, x).passes)

    def breaks_graph(g, ctx):
        n = next(n for n, d in g.nodes(data=True) if d['op'] == 'matmul')
        g.nodes[n]['shape'] = (99,)
        return {'changed': True}
    monkeypatch.setattr(passes, 'PIPELINE', passes.PIPELINE[:3] + (('broken', breaks_graph),))
    monkeypatch.setenv('TRACER_DISABLE_PASSES', '')
    g = tracer.explain(founding.make_models()['MLP'], x).traced_graph
    with pytest.raises(PassError, match="after pass 'broken'"):
        passes.optimize(g, PassContext(verify=True))


def test_anchor_never_joins_a_movement_group():
    """A square matmul read by a transpose of the same shape stays apart."""
    g = build(lambda x, w: np.matmul(x, w).T * 2, (8, 8), (8, 8))
    h, _ = apply(fusion, g)
    kinds = {tuple(h.nodes[n]['op'] for n in grp['nodes']): grp['kind']
             for grp in h.graph['groups'].values()}
    assert kinds[('matmul',)] == 'matmul' and kinds[('transpose',)] == 'movement'
