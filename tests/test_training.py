"""Losses, Trainer and end-to-end training.

Losses are checked against formulas written in plain NumPy and their
gradients against central finite differences (in float64); optimizers are
checked step by step against hand-written NumPy versions of the same update
rules (MXNet semantics).
"""
import importlib.util
import pathlib

import numpy as onp
import pytest

import tracer
from tracer import autograd, gluon, np
from tracer.gluon import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- helpers

def f64(x):
    return np.array(onp.asarray(x, dtype='float64'), dtype='float64')


def onp_log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - onp.log(onp.exp(x).sum(axis=axis, keepdims=True))


def onp_sigmoid(x):
    return 1.0 / (1.0 + onp.exp(-x))


def loss_and_grad(loss_fn, pred, *args, **kwargs):
    """The per-sample loss and d(sum of the loss)/d(pred), both as NumPy arrays."""
    p = f64(pred)
    p.attach_grad()
    with autograd.record():
        out = loss_fn(p, *args, **kwargs)
    out.backward()
    return out.asnumpy(), p.grad.asnumpy()


def numeric_grad(loss_fn, pred, *args, eps=1e-6, **kwargs):
    """Central differences of sum(loss_fn(pred)) w.r.t. every entry of pred."""
    pred = onp.asarray(pred, dtype='float64')
    grad = onp.zeros_like(pred)
    for i in onp.ndindex(pred.shape):
        hi, lo = pred.copy(), pred.copy()
        hi[i] += eps
        lo[i] -= eps
        grad[i] = (float(loss_fn(f64(hi), *args, **kwargs).asnumpy().sum())
                   - float(loss_fn(f64(lo), *args, **kwargs).asnumpy().sum())) / (2 * eps)
    return grad


# ---------------------------------------------------------------- losses

B, K = 4, 5
_rng = onp.random.default_rng(1234)
PRED = _rng.normal(size=(B, K))
# Keep every entry away from 0 so that |x| (L1) and the softrelu inside the
# sigmoid loss are differentiable at the test points.
PRED[onp.abs(PRED) < 0.1] += 0.3
TARGET = _rng.normal(size=(B, K))
SPARSE = onp.array([0, 3, 4, 1])
DENSE = _rng.dirichlet(onp.ones(K), size=B)            # rows are probabilities
BINARY = (_rng.uniform(size=(B, K)) > 0.5).astype('float64')
PROBS = _rng.uniform(0.05, 0.95, size=(B, K))
SAMPLE_W = _rng.uniform(0.5, 2.0, size=(B, 1))


def _l2(p, y):
    return (0.5 * (p - y) ** 2).mean(axis=1)


def _bce_logits(x, z):
    return (-z * onp.log(onp_sigmoid(x)) - (1 - z) * onp.log(1 - onp_sigmoid(x))).mean(axis=1)


LOSS_CASES = {
    'l2': (lambda: gluon.loss.L2Loss(), PRED, (TARGET,), _l2(PRED, TARGET)),
    'l2_label_reshaped': (lambda: gluon.loss.L2Loss(), PRED[:, :1], (TARGET[:, 0],),
                          0.5 * (PRED[:, 0] - TARGET[:, 0]) ** 2),
    'l2_weight': (lambda: gluon.loss.L2Loss(weight=3.0), PRED, (TARGET,),
                  3.0 * _l2(PRED, TARGET)),
    'l2_sample_weight': (lambda: gluon.loss.L2Loss(), PRED, (TARGET, SAMPLE_W),
                         (SAMPLE_W * 0.5 * (PRED - TARGET) ** 2).mean(axis=1)),
    'l1': (lambda: gluon.loss.L1Loss(), PRED, (TARGET,), onp.abs(PRED - TARGET).mean(axis=1)),
    'l1_weight': (lambda: gluon.loss.L1Loss(weight=2.0), PRED, (TARGET,),
                  2.0 * onp.abs(PRED - TARGET).mean(axis=1)),
    'softmax_ce_sparse': (lambda: gluon.loss.SoftmaxCrossEntropyLoss(), PRED, (SPARSE,),
                          -onp_log_softmax(PRED)[onp.arange(B), SPARSE]),
    'softmax_ce_dense': (lambda: gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False), PRED,
                         (DENSE,), -(DENSE * onp_log_softmax(PRED)).sum(axis=1)),
    'softmax_ce_from_logits': (
        lambda: gluon.loss.SoftmaxCrossEntropyLoss(from_logits=True), PRED, (SPARSE,),
        -PRED[onp.arange(B), SPARSE]),
    'softmax_ce_weight': (lambda: gluon.loss.SoftmaxCrossEntropyLoss(weight=0.5), PRED,
                          (SPARSE,), -0.5 * onp_log_softmax(PRED)[onp.arange(B), SPARSE]),
    'softmax_ce_sample_weight': (
        lambda: gluon.loss.SoftmaxCrossEntropyLoss(), PRED, (SPARSE, SAMPLE_W),
        -SAMPLE_W[:, 0] * onp_log_softmax(PRED)[onp.arange(B), SPARSE]),
    'sigmoid_bce_logits': (lambda: gluon.loss.SigmoidBinaryCrossEntropyLoss(), PRED, (BINARY,),
                           _bce_logits(PRED, BINARY)),
    'sigmoid_bce_sample_weight': (
        lambda: gluon.loss.SigmoidBinaryCrossEntropyLoss(), PRED, (BINARY, SAMPLE_W),
        (SAMPLE_W * (onp.maximum(PRED, 0) - PRED * BINARY
                     + onp.log1p(onp.exp(-onp.abs(PRED))))).mean(axis=1)),
    'sigmoid_bce_from_sigmoid': (
        lambda: gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True), PROBS, (BINARY,),
        (-BINARY * onp.log(PROBS) - (1 - BINARY) * onp.log(1 - PROBS)).mean(axis=1)),
}


def _args(args):
    return tuple(f64(a) for a in args)


@pytest.mark.parametrize('case', sorted(LOSS_CASES))
def test_loss_value_matches_numpy(case):
    make, pred, args, expected = LOSS_CASES[case]
    out = make()(f64(pred), *_args(args))
    assert out.shape == (pred.shape[0],)
    onp.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('case', sorted(LOSS_CASES))
def test_loss_gradient_matches_finite_differences(case):
    make, pred, args, _ = LOSS_CASES[case]
    loss_fn = make()
    out, grad = loss_and_grad(loss_fn, pred, *_args(args))
    assert grad.shape == pred.shape
    onp.testing.assert_allclose(grad, numeric_grad(loss_fn, pred, *_args(args)),
                                rtol=1e-5, atol=1e-7)


def test_softmax_ce_gradient_is_softmax_minus_onehot():
    # The closed form: d/dx of -log_softmax(x)[y] is softmax(x) - onehot(y).
    _, grad = loss_and_grad(gluon.loss.SoftmaxCrossEntropyLoss(), PRED, f64(SPARSE))
    expected = onp.exp(onp_log_softmax(PRED))
    expected[onp.arange(B), SPARSE] -= 1
    onp.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)


def test_sigmoid_bce_gradient_is_sigmoid_minus_label():
    _, grad = loss_and_grad(gluon.loss.SigmoidBCELoss(), PRED, f64(BINARY))
    onp.testing.assert_allclose(grad, (onp_sigmoid(PRED) - BINARY) / K, rtol=1e-9, atol=1e-12)


def test_sigmoid_bce_gradient_at_zero_logit():
    # A zero logit is common: e.g. an output layer initialized to zeros.
    pred = onp.zeros((2, 1))
    label = onp.array([[1.0], [0.0]])
    _, grad = loss_and_grad(gluon.loss.SigmoidBCELoss(), pred, f64(label))
    onp.testing.assert_allclose(grad, [[-0.5], [0.5]], atol=1e-12)


def test_sigmoid_bce_large_logits_stay_finite():
    x = onp.array([[100.0, -100.0, 100.0, -100.0]]).T      # (4, 1)
    z = onp.array([[1.0, 0.0, 0.0, 1.0]]).T
    for dtype in ('float32', 'float64'):
        p = np.array(x, dtype=dtype)
        p.attach_grad()
        with autograd.record():
            out = gluon.loss.SigmoidBCELoss()(p, np.array(z, dtype=dtype))
        out.backward()
        loss, grad = out.asnumpy(), p.grad.asnumpy()
        assert onp.isfinite(loss).all() and onp.isfinite(grad).all()
        # Right answers: ~0 for confident correct logits, ~|x| for confident wrong ones.
        onp.testing.assert_allclose(loss, [0.0, 0.0, 100.0, 100.0], atol=1e-6)
        onp.testing.assert_allclose(grad[:, 0], onp_sigmoid(x[:, 0]) - z[:, 0], atol=1e-6)


def test_sigmoid_bce_from_sigmoid_saturated_probabilities_stay_finite():
    p = onp.array([[0.0], [1.0], [0.0], [1.0]])
    z = onp.array([[0.0], [1.0], [1.0], [0.0]])
    out = gluon.loss.SigmoidBCELoss(from_sigmoid=True)(f64(p), f64(z)).asnumpy()
    assert onp.isfinite(out).all()
    onp.testing.assert_allclose(out[:2], 0.0, atol=1e-9)
    assert (out[2:] > 20).all()                           # -log(eps): large but finite


def test_loss_rejects_mismatched_label_size():
    with pytest.raises(tracer.errors.ShapeError):
        gluon.loss.L2Loss()(f64(PRED), f64(TARGET[:, :2]))


# ---------------------------------------------------------------- Trainer

N_IN, N_OUT, BATCH = 4, 3, 5


def _linear_problem(seed=0):
    """Parameters W (3, 4) and b (3,) in float64, and three minibatches."""
    rng = onp.random.default_rng(seed)
    W = gluon.Parameter('W', shape=(N_OUT, N_IN), dtype='float64')
    b = gluon.Parameter('b', shape=(N_OUT,), dtype='float64')
    W.initialize()
    b.initialize()
    W.set_data(rng.normal(size=(N_OUT, N_IN)))
    b.set_data(rng.normal(size=(N_OUT,)))
    batches = [(rng.normal(size=(BATCH, N_IN)), rng.normal(size=(BATCH, N_OUT)))
               for _ in range(3)]
    return W, b, batches


def _backward(W, b, X, Y):
    """Forward a linear model with L2Loss and backward; returns nothing."""
    with autograd.record():
        pred = np.matmul(f64(X), W.data().T) + b.data()
        loss = gluon.loss.L2Loss()(pred, f64(Y))
    loss.backward()


def _numpy_grads(W, b, X, Y):
    """Summed-over-the-batch gradients of the same loss, by hand."""
    dpred = (X @ W.T + b - Y) / N_OUT          # L2Loss averages over the N_OUT outputs
    return dpred.T @ X, dpred.sum(axis=0)


def _sgd_reference(lr, momentum, wd, mults=None):
    mults = mults or {}

    def update(name, w, g, state):
        lr_mult, wd_mult = mults.get(name, (1.0, 1.0))
        g = g / BATCH + wd * wd_mult * w
        if momentum:
            state[name] = momentum * state.get(name, 0.0) - lr * lr_mult * g
            return w + state[name]
        return w - lr * lr_mult * g
    return update


def _adam_reference(lr, beta1, beta2, eps, wd):
    """MXNet's Adam: Kingma & Ba with the step size corrected instead of m and v."""
    def update(name, w, g, state):
        g = g / BATCH + wd * w
        m, v, t = state.get(name, (0.0, 0.0, 0))
        t += 1
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        state[name] = (m, v, t)
        lr_t = lr * onp.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        return w - lr_t * m / (onp.sqrt(v) + eps)
    return update


def _adam_textbook(lr, beta1, beta2, eps, wd):
    """Algorithm 1 of Kingma & Ba (bias-corrected m-hat and v-hat)."""
    def update(name, w, g, state):
        g = g / BATCH + wd * w
        m, v, t = state.get(name, (0.0, 0.0, 0))
        t += 1
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        state[name] = (m, v, t)
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        return w - lr * m_hat / (onp.sqrt(v_hat) + eps)
    return update


def _run_against_reference(optimizer, params, reference, rtol=1e-12, atol=1e-14, mults=None):
    W, b, batches = _linear_problem()
    for p, name in ((W, 'W'), (b, 'b')):
        if mults and name in mults:
            p.lr_mult, p.wd_mult = mults[name]
    trainer = gluon.Trainer([W, b], optimizer, params)
    w_ref, b_ref = W.data().asnumpy(), b.data().asnumpy()
    state = {}
    for X, Y in batches:
        gW, gb = _numpy_grads(w_ref, b_ref, X, Y)
        _backward(W, b, X, Y)
        onp.testing.assert_allclose(W.grad().asnumpy(), gW, rtol=1e-12, atol=1e-14)
        trainer.step(BATCH)
        w_ref = reference('W', w_ref, gW, state)
        b_ref = reference('b', b_ref, gb, state)
        onp.testing.assert_allclose(W.data().asnumpy(), w_ref, rtol=rtol, atol=atol)
        onp.testing.assert_allclose(b.data().asnumpy(), b_ref, rtol=rtol, atol=atol)
    return W, b


@pytest.mark.parametrize('momentum, wd', [(0.0, 0.0), (0.9, 0.0), (0.0, 0.1), (0.9, 0.01)])
def test_sgd_matches_numpy_reference(momentum, wd):
    lr = 0.1
    W, _ = _run_against_reference('sgd', {'learning_rate': lr, 'momentum': momentum, 'wd': wd},
                                  _sgd_reference(lr, momentum, wd))
    assert W.data().dtype == onp.float64


def test_sgd_respects_lr_mult_and_wd_mult():
    mults = {'W': (2.0, 1.0), 'b': (0.5, 0.0)}
    _run_against_reference('sgd', {'learning_rate': 0.1, 'momentum': 0.5, 'wd': 0.1},
                           _sgd_reference(0.1, 0.5, 0.1, mults), mults=mults)


@pytest.mark.parametrize('wd', [0.0, 0.05])
def test_adam_matches_numpy_reference(wd):
    cfg = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, wd=wd)
    params = {'learning_rate': 0.01, 'beta1': 0.9, 'beta2': 0.999, 'epsilon': 1e-8, 'wd': wd}
    _run_against_reference('adam', params, _adam_reference(**cfg))


def test_adam_is_the_paper_algorithm_up_to_epsilon():
    # MXNet's form equals Algorithm 1 of the paper with epsilon replaced by
    # eps / sqrt(1 - beta2**t); with a negligible epsilon the two coincide.
    cfg = dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-14, wd=0.01)
    params = {'learning_rate': 0.01, 'beta1': 0.8, 'beta2': 0.99, 'epsilon': 1e-14, 'wd': 0.01}
    _run_against_reference('adam', params, _adam_textbook(**cfg), rtol=1e-9, atol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    # A property of Adam's bias correction: the first step is -lr * sign(grad).
    W, b, batches = _linear_problem()
    before = W.data().asnumpy()
    _backward(W, b, *batches[0])
    g = W.grad().asnumpy()
    gluon.Trainer([W, b], 'adam', {'learning_rate': 0.01, 'epsilon': 1e-14}).step(BATCH)
    onp.testing.assert_allclose(W.data().asnumpy() - before, -0.01 * onp.sign(g), rtol=1e-6)


class _PartlyFrozen(gluon.Block):
    def __init__(self):
        super().__init__()
        self.scale = gluon.Constant(onp.full((3, 3), 0.5, dtype='float32'))
        self.frozen = nn.Dense(3, in_units=3)
        self.head = nn.Dense(1, in_units=3)

    def forward(self, x):
        return self.head(self.frozen(np.matmul(x, self.scale.data())))


@pytest.mark.parametrize('optimizer, params', [
    ('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 0.1}),
    ('adam', {'learning_rate': 0.1, 'wd': 0.1}),
])
def test_constants_and_frozen_parameters_are_never_updated(optimizer, params):
    np.random.seed(0)
    net = _PartlyFrozen()
    net.initialize()
    for p in net.frozen.collect_params().values():
        p.grad_req = 'null'
    all_params = net.collect_params()
    assert 'scale' in all_params                  # the Trainer does see the Constant
    before = {k: p.data().asnumpy() for k, p in all_params.items()}
    trainer = gluon.Trainer(all_params, optimizer, params)
    x = np.array(onp.random.default_rng(0).normal(size=(8, 3)).astype('float32'))
    for _ in range(3):
        with autograd.record():
            loss = gluon.loss.L2Loss()(net(x), np.ones((8, 1)))
        loss.backward()
        trainer.step(8)
    trainer.zero_grad()
    for name in ('scale', 'frozen.weight', 'frozen.bias'):
        onp.testing.assert_array_equal(all_params[name].data().asnumpy(), before[name])
    # ...while the trainable layer did move (so step() really ran).
    assert not onp.allclose(all_params['head.weight'].data().asnumpy(), before['head.weight'])


def test_unknown_optimizer_raises_value_error_naming_known_ones():
    W, _, _ = _linear_problem()
    with pytest.raises(ValueError) as info:
        gluon.Trainer([W], 'adamw_typo')
    msg = str(info.value)
    assert 'adamw_typo' in msg and 'sgd' in msg and 'adam' in msg


@pytest.mark.parametrize('params', [
    [np.ones((3,))],
    {'w': onp.ones(3)},
    ['weight'],
])
def test_trainer_rejects_non_parameters(params):
    with pytest.raises(TypeError, match='Parameter'):
        gluon.Trainer(params, 'sgd')


# ---------------------------------------------------------------- grad_req

def test_grad_req_add_accumulates_and_zero_grad_resets():
    W, b, batches = _linear_problem()
    W.grad_req = b.grad_req = 'add'
    w0, b0 = W.data().asnumpy(), b.data().asnumpy()
    (X1, Y1), (X2, Y2), (X3, Y3) = batches
    _backward(W, b, X1, Y1)
    _backward(W, b, X2, Y2)
    g1, g2 = _numpy_grads(w0, b0, X1, Y1), _numpy_grads(w0, b0, X2, Y2)
    onp.testing.assert_allclose(W.grad().asnumpy(), g1[0] + g2[0], rtol=1e-12)
    onp.testing.assert_allclose(b.grad().asnumpy(), g1[1] + g2[1], rtol=1e-12)

    W.zero_grad()
    b.zero_grad()
    assert not W.grad().asnumpy().any() and not b.grad().asnumpy().any()
    _backward(W, b, X3, Y3)
    onp.testing.assert_allclose(W.grad().asnumpy(), _numpy_grads(w0, b0, X3, Y3)[0],
                                rtol=1e-12)

    gluon.Trainer([W, b], 'sgd').zero_grad()          # the Trainer can reset them too
    assert not W.grad().asnumpy().any() and not b.grad().asnumpy().any()


def test_grad_req_write_overwrites():
    W, b, batches = _linear_problem()
    w0, b0 = W.data().asnumpy(), b.data().asnumpy()
    for X, Y in batches[:2]:
        _backward(W, b, X, Y)
    onp.testing.assert_allclose(W.grad().asnumpy(), _numpy_grads(w0, b0, *batches[1])[0],
                                rtol=1e-12)


def test_grad_req_add_two_half_batches_equal_one_full_batch_step():
    (X1, Y1), (X2, Y2), _ = _linear_problem()[2]
    W_add, b_add, _ = _linear_problem()
    W_add.grad_req = b_add.grad_req = 'add'
    _backward(W_add, b_add, X1, Y1)
    _backward(W_add, b_add, X2, Y2)
    gluon.Trainer([W_add, b_add], 'sgd', {'learning_rate': 0.5}).step(2 * BATCH)

    W_full, b_full, _ = _linear_problem()
    _backward(W_full, b_full, onp.concatenate([X1, X2]), onp.concatenate([Y1, Y2]))
    gluon.Trainer([W_full, b_full], 'sgd', {'learning_rate': 0.5}).step(2 * BATCH)
    onp.testing.assert_allclose(W_add.data().asnumpy(), W_full.data().asnumpy(), rtol=1e-12)
    onp.testing.assert_allclose(b_add.data().asnumpy(), b_full.data().asnumpy(), rtol=1e-12)


# ---------------------------------------------------------------- end to end

def _load_example(name):
    path = ROOT / 'examples' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'example_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_digits_example_reaches_95_percent():
    pytest.importorskip('sklearn')
    example = _load_example('train_digits')
    accuracy = example.main(epochs=10, verbose=False)
    assert 0.95 <= accuracy <= 1.0


@pytest.mark.parametrize('optimizer, params', [
    ('sgd', {'learning_rate': 0.05, 'momentum': 0.9}),
    ('adam', {'learning_rate': 0.01}),
])
def test_training_a_small_model_decreases_the_loss(optimizer, params):
    np.random.seed(0)
    rng = onp.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(256, 3)).astype('float32')
    y = (onp.sin(X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3]).astype('float32')
    X, y = np.array(X), np.array(y)

    net = nn.Sequential()
    net.add(nn.Dense(32, activation='tanh'), nn.Dense(1))
    net.initialize(tracer.init.Xavier())
    loss_fn = gluon.loss.L2Loss()
    trainer = gluon.Trainer(net.collect_params(), optimizer, params)

    def full_loss():
        return float(loss_fn(net(X), y).mean())

    initial = full_loss()
    for _ in range(150):
        idx = rng.choice(256, size=32, replace=False)
        with autograd.record():
            loss = loss_fn(net(X[idx]), y[idx])
        loss.backward()
        trainer.step(32)
    final = full_loss()
    assert onp.isfinite(final)
    assert final < 0.25 * initial, (initial, final)
