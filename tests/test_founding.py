"""The founding document's models (examples/founding.py, its code with only
the imports changed): shapes, parameter counts, outputs against NumPy and
gradients, including through the while loop."""
import numpy as onp
import pytest

import founding
from tracer import autograd, np
from tracer.errors import DeviceError

SHAPES = {'MLP': (2, 10), 'Sequential': (2, 10), 'MySequential': (2, 10),
          'FixedHiddenMLP': (), 'NestMLP': (2, 16), 'chimera': ()}
# (trainable, total): shared layers count once, the Constant is not trainable
COUNTS = {'MLP': (7946, 7946), 'Sequential': (7946, 7946), 'MySequential': (7946, 7946),
          'FixedHiddenMLP': (420, 820), 'NestMLP': (3952, 3952), 'chimera': (4712, 5112)}


@pytest.fixture
def models():
    return founding.make_models()


@pytest.fixture
def X():
    return np.random.uniform(size=(2, 20))


@pytest.mark.parametrize('name', list(SHAPES))
def test_output_shape_and_parameter_count(models, X, name):
    net = models[name]
    assert net(X).shape == SHAPES[name]
    params = list(net.parameters())
    assert (founding.count(params, True), founding.count(params)) == COUNTS[name]


@pytest.mark.parametrize('name', list(SHAPES))
def test_every_trainable_parameter_gets_a_gradient(models, X, name):
    net = models[name]
    with autograd.record():
        y = net(X).sum()
    y.backward()
    for pname, p in net.collect_params().items():
        if p.grad_req == 'null':
            continue
        assert onp.abs(p.grad().asnumpy()).sum() > 0, f'{name}: {pname} got no gradient'


def _np_dense(p, x, relu):
    y = x @ p['weight'].T + p['bias']
    return onp.maximum(y, 0) if relu else y


def test_mlp_matches_numpy(models, X):
    net = models['MLP']
    out = net(X).asnumpy()
    p = {k: v.data().asnumpy() for k, v in net.collect_params().items()}
    h = onp.maximum(X.asnumpy() @ p['hidden.weight'].T + p['hidden.bias'], 0)
    ref = h @ p['out.weight'].T + p['out.bias']
    onp.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def _fixed_hidden_numpy(W, b, R, x):
    x = onp.maximum(x @ W.T + b, 0)
    x = onp.maximum(x @ R + 1, 0)
    x = onp.maximum(x @ W.T + b, 0)
    while onp.abs(x).sum() > 1:
        x /= 2
    return x.sum()


def test_fixed_hidden_mlp_matches_numpy_and_shares_one_dense(models, X):
    net = models['FixedHiddenMLP']
    out = net(X).item()
    names = list(net.collect_params())
    assert names == ['rand_weight', 'dense.weight', 'dense.bias']
    W, b = net.dense.weight.data().asnumpy(), net.dense.bias.data().asnumpy()
    R = net.rand_weight.data().asnumpy()
    ref = _fixed_hidden_numpy(W, b, R, X.asnumpy())
    onp.testing.assert_allclose(out, ref, rtol=1e-5)


def test_gradient_through_while_loop_matches_finite_differences(models):
    net = models['FixedHiddenMLP']
    X = np.random.uniform(size=(2, 20), dtype='float64')
    net(X.astype('float32'))
    net.cast('float64')
    with autograd.record():
        y = net(X)
    y.backward()
    W = net.dense.weight.data().asnumpy()
    b = net.dense.bias.data().asnumpy()
    R = net.rand_weight.data().asnumpy()
    eps = 1e-6
    rng = onp.random.default_rng(1)
    for _ in range(8):
        i, j = rng.integers(0, 20, size=2)
        Wp, Wm = W.copy(), W.copy()
        Wp[i, j] += eps
        Wm[i, j] -= eps
        fd = (_fixed_hidden_numpy(Wp, b, R, X.asnumpy()) -
              _fixed_hidden_numpy(Wm, b, R, X.asnumpy())) / (2 * eps)
        onp.testing.assert_allclose(net.dense.weight.grad().asnumpy()[i, j], fd,
                                    rtol=1e-5, atol=1e-9)


def test_constant_gets_no_gradient_and_is_not_trainable(models, X):
    net = models['FixedHiddenMLP']
    before = net.rand_weight.data().asnumpy()
    with autograd.record():
        net(X).backward()
    assert net.rand_weight.grad_req == 'null'
    with pytest.raises(RuntimeError, match="grad_req is 'null'"):
        net.rand_weight.grad()
    onp.testing.assert_array_equal(net.rand_weight.data().asnumpy(), before)


def test_my_sequential_children_are_weak_references(models, X):
    net = models['MySequential']
    refs = list(net._children.values())
    assert len(refs) == 2 and all(callable(r) for r in refs)
    assert refs[0]() is net._layers[0]
    onp.testing.assert_allclose(net(X).asnumpy(),
                                net._layers[1](net._layers[0](X)).asnumpy(), rtol=1e-6)


def test_chimera_state_dict_and_devices(models, X):
    net = models['chimera']
    net(X)
    keys = list(net.state_dict())
    assert keys[:2] == ['0.net.0.weight', '0.net.0.bias']
    assert '2.rand_weight' in keys and '2.dense.weight' in keys
    assert net.to('cpu') is net
    with pytest.raises(DeviceError, match=r"'cuda'.*cpu\(0\)"):
        net.to('cuda')
