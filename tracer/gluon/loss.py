"""Losses (``gluon.loss``).  Each returns one value per sample: the
elementwise loss averaged over every axis but ``batch_axis``."""
from .. import npx, ops
from ..numpy import _api as np
from .block import HybridBlock


class Loss(HybridBlock):
    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__()
        self._weight, self._batch_axis = weight, batch_axis

    def _finish(self, loss, sample_weight):
        if sample_weight is not None:
            loss = ops.multiply(loss, sample_weight)
        if self._weight is not None:
            loss = ops.multiply(loss, float(self._weight))
        axes = tuple(i for i in range(loss.ndim) if i != self._batch_axis % max(loss.ndim, 1))
        return np.mean(loss, axis=axes) if axes else loss

    def __repr__(self):
        return f'{type(self).__name__}(batch_axis={self._batch_axis}, w={self._weight})'


def _like(label, pred):
    return label if tuple(label.shape) == tuple(pred.shape) else np.reshape(label, pred.shape)


class L2Loss(Loss):
    """``0.5 * weight * (pred - label)**2``."""

    def __init__(self, weight=1.0, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis)

    def forward(self, pred, label, sample_weight=None):
        d = ops.subtract(pred, _like(label, pred))
        return self._finish(ops.multiply(ops.multiply(d, d), 0.5), sample_weight)


class L1Loss(Loss):
    """``weight * |pred - label|``."""

    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis)

    def forward(self, pred, label, sample_weight=None):
        return self._finish(ops.abs(ops.subtract(pred, _like(label, pred))), sample_weight)


class SoftmaxCrossEntropyLoss(Loss):
    """Cross entropy of ``softmax(pred)`` against class indices
    (``sparse_label=True``) or probabilities; ``from_logits=True`` means
    ``pred`` already holds log-probabilities."""

    def __init__(self, axis=-1, sparse_label=True, from_logits=False, weight=None,
                 batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis)
        self._axis, self._sparse, self._from_logits = axis, sparse_label, from_logits

    def forward(self, pred, label, sample_weight=None):
        logp = pred if self._from_logits else npx.log_softmax(pred, axis=self._axis)
        if self._sparse:
            loss = ops.negative(npx.pick(logp, label, axis=self._axis, keepdims=True))
        else:
            loss = ops.negative(np.sum(ops.multiply(logp, _like(label, logp)), axis=self._axis,
                                       keepdims=True))
        return self._finish(loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class SigmoidBinaryCrossEntropyLoss(Loss):
    """Binary cross entropy; ``pred`` are logits unless ``from_sigmoid=True``."""

    def __init__(self, from_sigmoid=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis)
        self._from_sigmoid = from_sigmoid

    def forward(self, pred, label, sample_weight=None):
        label = _like(label, pred)
        if not self._from_sigmoid:
            # max(x, 0) - x*z + log(1 + exp(-|x|)), stable for large |x|
            loss = ops.subtract(npx.softrelu(pred), ops.multiply(pred, label))
        else:
            eps = 1e-12
            loss = ops.negative(ops.add(
                ops.multiply(ops.log(ops.add(pred, eps)), label),
                ops.multiply(ops.log(ops.add(ops.subtract(1.0, pred), eps)),
                             ops.subtract(1.0, label))))
        return self._finish(loss, sample_weight)


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss
