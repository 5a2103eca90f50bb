"""Autograd: modes, grad_req, backward options, in-place updates, control flow."""
import numpy as onp
import pytest

from tracer import autograd, np, npx
from tracer.errors import ShapeError


def test_mode_switches_nest_and_restore():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
            with autograd.train_mode():
                assert autograd.is_training() and not autograd.is_recording()
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
        assert autograd.is_training()
    with autograd.record(train_mode=False):
        assert autograd.is_recording() and not autograd.is_training()
    assert not autograd.is_recording() and not autograd.is_training()


def test_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with autograd.record():
            raise ValueError('boom')
    assert not autograd.is_recording()


def test_grad_req_write_overwrites_and_add_accumulates():
    x = np.array([1.0, 2.0, 3.0])
    x.attach_grad()
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [2, 4, 6])
    x.attach_grad(grad_req='add')
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [4, 8, 12])


def test_out_grad_and_non_scalar_head():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    x.attach_grad()
    with autograd.record():
        y = x * 3
    y.backward(np.array([[1.0, 0.0], [2.0, 1.0]]))
    onp.testing.assert_allclose(x.grad.asnumpy(), [[3, 0], [6, 3]])
    with autograd.record():
        y = x * 3
    y.backward()                       # implicit ones, as in MXNet
    onp.testing.assert_allclose(x.grad.asnumpy(), onp.full((2, 2), 3.0))
    with autograd.record():
        y = x * 3
    with pytest.raises(ShapeError, match=r'\(3,\).*\(2, 2\)'):
        y.backward(np.ones((3,)))


def test_retain_graph():
    x = np.array([2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
    y.backward(retain_graph=True)
    y.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [4.0])
    with pytest.raises(RuntimeError, match='retain_graph=True'):
        y.backward()


def test_backward_without_record_is_a_clear_error():
    x = np.array([1.0])
    x.attach_grad()
    y = x * 2
    with pytest.raises(RuntimeError, match='autograd.record'):
        y.backward()


def test_pause_stops_gradient_flow():
    x = np.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        with autograd.pause():
            c = x * 10
        y = (x * c).sum()
    y.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [10, 20])   # c treated as a constant


def test_detach_cuts_the_graph():
    x = np.array([3.0])
    x.attach_grad()
    with autograd.record():
        y = x * x.detach()
    y.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [3.0])


def test_inplace_updates_flow_gradients():
    x = np.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x * 1
        y += x          # 2x
        y *= x          # 2x^2
        y -= 1
        y /= 2          # x^2 - 0.5
        z = y.sum()
    z.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [2, 4, 6])


def test_inplace_does_not_corrupt_saved_values():
    x = np.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        h = x * 1
        y = h * h       # saves h
        h += 100        # must not change what y's backward sees
        z = (y + h).sum()
    z.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), 2 * onp.array([1.0, 2.0]) + 1)


def test_inplace_on_leaf_while_recording_is_refused():
    x = np.array([1.0])
    x.attach_grad()
    with autograd.record():
        with pytest.raises(RuntimeError, match='attached gradient'):
            x += 1


def test_inplace_outside_recording_is_numpy_inplace():
    x = np.zeros((2, 3))
    row = x[0]
    row += 5
    x[1, 1:] = 7
    onp.testing.assert_array_equal(x.asnumpy(), [[5, 5, 5], [0, 7, 7]])


def test_setitem_gradient_while_recording():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    v = np.array([10.0, 20.0])
    x.attach_grad()
    v.attach_grad()
    with autograd.record():
        y = x * 1
        y[1:3] = v * 2
        z = (y * np.array([1.0, 2.0, 3.0, 4.0])).sum()
    z.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [1, 0, 0, 4])
    onp.testing.assert_allclose(v.grad.asnumpy(), [4, 6])


def test_python_control_flow_on_values():
    x = np.array([0.5, -1.0])
    x.attach_grad()
    with autograd.record():
        y = x
        steps = 0
        while np.abs(y).sum() < 10:
            y = y * 2
            steps += 1
        if y.sum().item() < 0:
            y = -y
        z = y.sum()
    z.backward()
    assert steps == 3
    onp.testing.assert_allclose(x.grad.asnumpy(), [-8, -8])


def test_shared_subexpression_accumulates():
    x = np.array([2.0])
    x.attach_grad()
    with autograd.record():
        a = x * x
        z = a + a * a      # x^2 + x^4
    z.backward()
    onp.testing.assert_allclose(x.grad.asnumpy(), [2 * 2 + 4 * 8])


def test_autograd_grad_returns_without_touching_dot_grad():
    x = np.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (npx.sigmoid(x) * 3).sum()
    (g,) = autograd.grad(y, [x])
    s = 1 / (1 + onp.exp(-onp.array([1.0, 2.0])))
    onp.testing.assert_allclose(g.asnumpy(), 3 * s * (1 - s), rtol=1e-6)
    onp.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])


def test_training_flag_controls_dropout():
    x = np.ones((200, 50))
    with autograd.record():
        y = npx.dropout(x, p=0.5)
    frac = float((y.asnumpy() == 0).mean())
    assert 0.4 < frac < 0.6
    assert set(onp.unique(y.asnumpy())) <= {0.0, 2.0}
    with autograd.record(train_mode=False):
        onp.testing.assert_array_equal(npx.dropout(x, p=0.5).asnumpy(), x.asnumpy())
