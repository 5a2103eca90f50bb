"""Gluon blocks, parameters, layers, state and errors."""
import numpy as onp
import pytest

import tracer
from tracer import autograd, gluon, init, np, npx
from tracer.errors import DeviceError, DTypeError, ParameterFileError, ShapeError
from tracer.gluon import nn
from tracer.gluon.parameter import DeferredInitializationError


def _mlp():
    net = nn.Sequential()
    net.add(nn.Dense(8, activation='relu'), nn.Dense(3))
    net.initialize()
    return net


# ------------------------------------------------------------------ registration
def test_attribute_assignment_registers_children_and_parameters():
    class Net(nn.Block):
        def __init__(self):
            super().__init__()
            self.a = nn.Dense(4)
            self.w = gluon.Parameter('w', shape=(2, 2))
            self.layers = [nn.Dense(2), nn.Dense(3)]

        def forward(self, x):
            return x
    net = Net()
    assert list(net._children) == ['a', 'layers.0', 'layers.1']
    assert list(net.collect_params()) == ['w', 'a.weight', 'a.bias', 'layers.0.weight',
                                          'layers.0.bias', 'layers.1.weight', 'layers.1.bias']


def test_changing_a_registered_attribute_type_is_refused():
    class Net(nn.Block):
        def __init__(self):
            super().__init__()
            self.a = nn.Dense(4)
    net = Net()
    with pytest.raises(TypeError, match="'a'"):
        net.a = gluon.Parameter('x', shape=(1,))


def test_forgetting_super_init_is_explained():
    class Bad(nn.Block):
        def __init__(self):
            self.a = nn.Dense(2)
    with pytest.raises(RuntimeError, match=r'super\(\).__init__\(\)'):
        Bad()


def test_register_child_holds_only_a_weak_reference():
    import gc
    net = nn.Block()
    net.register_child(nn.Dense(3))
    gc.collect()
    assert net._children['0']() is None
    assert list(net.collect_params()) == []


# ------------------------------------------------------------------ Dense
def test_dense_deferred_init_and_numpy_result():
    layer = nn.Dense(5, activation='tanh')
    layer.initialize()
    with pytest.raises(DeferredInitializationError, match='pass one batch'):
        layer.weight.data()
    x = np.random.uniform(size=(4, 3, 2))
    y = layer(x)
    assert layer.weight.shape == (5, 6)
    W, b = layer.weight.data().asnumpy(), layer.bias.data().asnumpy()
    onp.testing.assert_allclose(y.asnumpy(), onp.tanh(x.asnumpy().reshape(4, 6) @ W.T + b),
                                rtol=1e-5, atol=1e-6)


def test_dense_without_flatten_applies_to_last_axis():
    layer = nn.Dense(5, flatten=False, in_units=2, use_bias=False)
    layer.initialize()
    x = np.random.uniform(size=(4, 3, 2))
    y = layer(x)
    assert y.shape == (4, 3, 5)
    assert layer.bias is None
    onp.testing.assert_allclose(y.asnumpy(), x.asnumpy() @ layer.weight.data().asnumpy().T,
                                rtol=1e-5)


def test_forward_before_initialize_gives_gluons_message():
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4))
    with pytest.raises(RuntimeError, match=r'initialize\(\)'):
        net(np.ones((2, 4)))


def test_wrong_input_size_names_block_path_and_expected_shape():
    from founding import make_models
    chimera = make_models()['chimera']
    chimera(np.ones((2, 20)))
    with pytest.raises(ShapeError) as err:
        chimera(np.ones((2, 30)))
    msg = str(err.value)
    assert "0.net.0" in msg and '(batch, 20)' in msg and '(2, 30)' in msg


def test_broadcast_error_inside_a_block_names_the_block():
    class Net(nn.Block):
        def __init__(self):
            super().__init__()
            self.inner = nn.Lambda(lambda x: x + np.ones((7,)))

        def forward(self, x):
            return self.inner(x)
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(7,\).*block 'inner' \(Lambda\)"):
        Net()(np.ones((2, 3)))


def test_unknown_dtype_is_refused():
    with pytest.raises(DTypeError, match='float32'):
        nn.Dense(3, dtype='float99')
    with pytest.raises(DTypeError, match='supported dtypes'):
        np.ones((2,), dtype='complex999')


# ------------------------------------------------------------------ other layers
def test_activation_identity_lambda_hybridlambda():
    x = np.array([[-1.0, 0.5, 2.0]])
    onp.testing.assert_allclose(nn.Activation('sigmoid')(x).asnumpy(),
                                1 / (1 + onp.exp(-x.asnumpy())), rtol=1e-6)
    assert nn.Identity()(x) is x
    onp.testing.assert_allclose(nn.Lambda('relu')(x).asnumpy(), [[0, 0.5, 2]])
    onp.testing.assert_allclose(nn.Lambda(lambda v: v * 2)(x).asnumpy(), [[-2, 1, 4]])
    onp.testing.assert_allclose(nn.HybridLambda(lambda F, v: F.relu(v) + 1)(x).asnumpy(),
                                [[1, 1.5, 3]])
    with pytest.raises(ValueError, match='unknown activation'):
        nn.Activation('swishy')


def test_layer_norm_matches_numpy_and_infers_channels():
    ln = nn.LayerNorm()
    ln.initialize()
    x = np.random.normal(size=(3, 6))
    y = ln(x).asnumpy()
    xn = x.asnumpy()
    ref = (xn - xn.mean(-1, keepdims=True)) / onp.sqrt(xn.var(-1, keepdims=True) + 1e-5)
    onp.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    assert ln.gamma.shape == (6,)


def test_batch_norm_training_updates_running_stats_inference_uses_them():
    bn = nn.BatchNorm(in_channels=2, momentum=0.5)
    bn.initialize()
    assert bn.running_mean.grad_req == 'null'
    assert 'running_var' in ''.join(bn.collect_params())
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    with autograd.record():
        y = bn(x)
    onp.testing.assert_allclose(y.asnumpy(), [[-1, -1], [1, 1]], atol=1e-4)
    onp.testing.assert_allclose(bn.running_mean.data().asnumpy(), [1.0, 10.0])   # 0.5*0 + 0.5*mean
    onp.testing.assert_allclose(bn.running_var.data().asnumpy(), [0.5 + 0.5 * 2, 0.5 + 0.5 * 200])
    y2 = bn(x).asnumpy()   # inference: running statistics
    rm, rv = bn.running_mean.data().asnumpy(), bn.running_var.data().asnumpy()
    onp.testing.assert_allclose(y2, (x.asnumpy() - rm) / onp.sqrt(rv + 1e-5), rtol=1e-5)


def test_embedding_lookup_and_gradient():
    emb = nn.Embedding(5, 3)
    emb.initialize()
    idx = np.array([[0, 4], [4, 1]], dtype='int64')
    with autograd.record():
        y = emb(idx)
        y.sum().backward()
    W = emb.weight.data().asnumpy()
    onp.testing.assert_array_equal(y.asnumpy(), W[idx.asnumpy()])
    onp.testing.assert_array_equal(emb.weight.grad().asnumpy()[:, 0], [1, 1, 0, 0, 2])
    with pytest.raises(IndexError, match='input_dim=5'):
        emb(np.array([5], dtype='int64'))


def test_dropout_follows_training_mode_and_train_eval():
    d = nn.Dropout(0.5)
    x = np.ones((100, 100))
    onp.testing.assert_array_equal(d(x).asnumpy(), x.asnumpy())
    with autograd.record():
        assert (d(x).asnumpy() == 0).mean() > 0.3
    d.train()
    assert (d(x).asnumpy() == 0).mean() > 0.3
    d.eval()
    with autograd.record():
        onp.testing.assert_array_equal(d(x).asnumpy(), x.asnumpy())


# ------------------------------------------------------------------ parameters and init
def test_initializers():
    p = gluon.Parameter('w', shape=(200, 300))
    p.initialize()                          # default Uniform(0.07)
    w = p.data().asnumpy()
    assert w.dtype == onp.float32 and -0.07 <= w.min() < -0.06 and 0.06 < w.max() <= 0.07
    p.initialize(init.Normal(2.0), force_reinit=True)
    assert 1.9 < p.data().asnumpy().std() < 2.1
    p.initialize(init.Xavier(), force_reinit=True)
    bound = onp.sqrt(3 / ((200 + 300) / 2))
    assert onp.abs(p.data().asnumpy()).max() <= bound
    assert onp.abs(p.data().asnumpy()).max() > 0.9 * bound
    for ini, val in ((init.Zero(), 0), (init.One(), 1), (init.Constant(3.5), 3.5), ('zeros', 0)):
        p.initialize(ini, force_reinit=True)
        onp.testing.assert_array_equal(p.data().asnumpy(), val)


def test_layer_initializer_wins_over_global_and_bias_is_zero():
    layer = nn.Dense(3, in_units=4, weight_initializer=init.One())
    layer.initialize(init.Normal(5.0))
    onp.testing.assert_array_equal(layer.weight.data().asnumpy(), 1)
    onp.testing.assert_array_equal(layer.bias.data().asnumpy(), 0)


def test_parameter_set_data_zero_grad_and_grad_req():
    p = gluon.Parameter('w', shape=(2, -1), allow_deferred_init=True)
    p.set_data(onp.ones((2, 3)))
    assert p.shape == (2, 3)
    with pytest.raises(ShapeError, match=r'\(2, 3\)'):
        p.set_data(onp.ones((3, 3)))
    with autograd.record():
        (p.data() * 2).sum().backward()
    onp.testing.assert_array_equal(p.grad().asnumpy(), 2)
    p.zero_grad()
    onp.testing.assert_array_equal(p.grad().asnumpy(), 0)
    p.grad_req = 'null'
    with pytest.raises(RuntimeError, match="'null'"):
        p.grad()


def test_collect_params_select_and_pytorch_views():
    net = _mlp()
    assert list(net.collect_params('.*weight')) == ['0.weight', '1.weight']
    assert [n for n, _ in net.named_parameters()] == ['0.weight', '0.bias', '1.weight', '1.bias']
    assert len(list(net.parameters())) == 4


def test_share_parameters():
    a, b = nn.Dense(3, in_units=2), nn.Dense(3, in_units=2)
    a.initialize()
    b.share_parameters(a.collect_params())
    with pytest.warns(UserWarning, match='already initialized'):
        b.initialize()
    x = np.ones((1, 2))
    onp.testing.assert_array_equal(a(x).asnumpy(), b(x).asnumpy())
    assert b.weight is a.weight


# ------------------------------------------------------------------ state
def test_save_and_load_parameters_round_trip(tmp_path):
    net = _mlp()
    x = np.ones((2, 5))
    y = net(x).asnumpy()
    path = str(tmp_path / 'net.params')
    net.save_parameters(path)
    other = _mlp()
    other.load_parameters(path)
    onp.testing.assert_array_equal(other(x).asnumpy(), y)
    with onp.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ['0.bias', '0.weight', '1.bias', '1.weight']


def _assert_unchanged(net, before):
    for k, v in net.collect_params().items():
        onp.testing.assert_array_equal(v.data().asnumpy(), before[k])


def test_load_parameters_errors_leave_model_untouched(tmp_path):
    net = _mlp()
    net(np.ones((2, 5)))
    before = {k: v.data().asnumpy() for k, v in net.collect_params().items()}
    good = {k: v * 0 for k, v in before.items()}

    def write(name, arrays):
        path = str(tmp_path / name)
        with open(path, 'wb') as f:
            onp.savez(f, **arrays)
        return path

    missing = dict(good)
    del missing['1.bias']
    with pytest.raises(ParameterFileError, match=r"missing parameters \['1.bias'\]"):
        net.load_parameters(write('missing', missing))
    extra = dict(good, **{'2.weight': onp.ones(3)})
    with pytest.raises(ParameterFileError, match='2.weight'):
        net.load_parameters(write('extra', extra))
    wrong = dict(good, **{'0.weight': onp.ones((8, 4))})
    with pytest.raises(ParameterFileError, match=r"'0.weight' has shape \(8, 5\).*\(8, 4\)"):
        net.load_parameters(write('wrong', wrong))
    _assert_unchanged(net, before)
    corrupt = tmp_path / 'corrupt'
    corrupt.write_bytes(b'PK\x03\x04 not really a zip file')
    with pytest.raises(ParameterFileError, match='not a valid parameter file'):
        net.load_parameters(str(corrupt))
    pickled = tmp_path / 'pickled'
    with open(pickled, 'wb') as f:
        onp.savez(f, **dict(good, **{'0.bias': onp.array([object()], dtype=object)}))
    with pytest.raises(ParameterFileError):
        net.load_parameters(str(pickled))
    _assert_unchanged(net, before)
    net.load_parameters(write('extra2', extra), ignore_extra=True)
    net.load_parameters(write('missing2', missing), allow_missing=True)
    onp.testing.assert_array_equal(net[0].weight.data().asnumpy(), 0)


def test_state_dict_round_trip_and_strictness():
    net, other = _mlp(), _mlp()
    x = np.ones((2, 5))
    net(x)
    other(x)
    other.load_state_dict(net.state_dict())
    onp.testing.assert_array_equal(other(x).asnumpy(), net(x).asnumpy())
    sd = net.state_dict()
    del sd['0.bias']
    with pytest.raises(ParameterFileError, match='0.bias'):
        other.load_state_dict(sd)
    other.load_state_dict(sd, strict=False)


# ------------------------------------------------------------------ block utilities
def test_zero_grad_apply_cast():
    net = _mlp()
    x = np.ones((2, 5))
    with autograd.record():
        net(x).sum().backward()
    assert onp.abs(net[1].weight.grad().asnumpy()).sum() > 0
    net.zero_grad()
    assert onp.abs(net[1].weight.grad().asnumpy()).sum() == 0
    seen = []
    net.apply(lambda b: seen.append(type(b).__name__))
    assert seen == ['Dense', 'Dense', 'Sequential']
    net.cast('float64')
    assert net(x.astype('float64')).dtype == onp.float64


def test_forward_hooks_and_detach():
    net = _mlp()
    calls = []
    h1 = net.register_forward_pre_hook(lambda b, args: calls.append(('pre', args[0].shape)))
    h2 = net[0].register_forward_hook(lambda b, args, out: calls.append(('post', out.shape)))
    net(np.ones((2, 5)))
    assert calls == [('pre', (2, 5)), ('post', (2, 8))]
    h1.detach()
    h2.detach()
    net(np.ones((2, 5)))
    assert len(calls) == 2


def test_summary_and_repr(capsys):
    net = _mlp()
    text = net.summary(np.ones((2, 5)))
    assert '(2, 8)' in text and 'Dense-2' in text and 'Total params: 75' in text
    assert capsys.readouterr().out.strip() == text.strip()
    assert repr(net) == ('Sequential(\n  (0): Dense(5 -> 8, Activation(relu))\n'
                         '  (1): Dense(8 -> 3, linear)\n)')
    assert repr(nn.Dense(4)) == 'Dense(None -> 4, linear)'


def test_sequential_indexing_and_hybrid_sequential():
    net = _mlp()
    assert len(net) == 2 and isinstance(net[0], nn.Dense)
    head = net[:1]
    assert len(head) == 1 and head[0] is net[0]
    hs = nn.HybridSequential()
    hs.add(nn.Dense(3, in_units=2))
    hs.initialize()
    x = np.ones((1, 2))
    y = hs(x).asnumpy()
    hs.hybridize()
    onp.testing.assert_array_equal(hs(x).asnumpy(), y)


def test_hybrid_forward_gluon1_style():
    class Scale(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.s = gluon.Parameter('s', shape=(1,), init=init.Constant(3.0))

        def hybrid_forward(self, F, x, s):
            return F.relu(x) * s
    blk = Scale()
    blk.initialize()
    onp.testing.assert_array_equal(blk(np.array([-1.0, 2.0])).asnumpy(), [0, 6])


# ------------------------------------------------------------------ devices, aliases
def test_devices():
    assert tracer.cpu() == tracer.Device('cpu', 0)
    net = _mlp()
    assert net.to(tracer.cpu()) is net
    for bad in ('cuda', 'gpu:1', tracer.Device('gpu', 0)):
        with pytest.raises(DeviceError, match=r'Available devices: cpu\(0\)'):
            net.to(bad)
    with pytest.raises(DeviceError):
        tracer.gpu(0)
    with pytest.raises(DeviceError):
        nn.Dense(2).initialize(device='cuda')
    with pytest.raises(DeviceError):
        np.zeros((2,), device='cuda:0')


def test_pytorch_aliases():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 3), nn.Linear(3, 2, bias=False)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    net = Net()
    net.initialize()
    assert net.layers[0].weight.shape == (3, 4)
    assert list(net.state_dict()) == ['layers.0.weight', 'layers.0.bias', 'layers.1.weight']
    assert net(np.ones((5, 4))).shape == (5, 2)
