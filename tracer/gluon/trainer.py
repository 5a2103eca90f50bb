"""``Trainer``: applies an optimizer to a set of parameters after
``backward``.  Updates work on the parameters' NumPy storage in place, so
no autograd history is created; Constants and ``grad_req='null'``
parameters are never touched."""
import numpy as _onp

from .parameter import Parameter


class Optimizer:
    def __init__(self, learning_rate=0.01, wd=0.0, rescale_grad=1.0, clip_gradient=None, **kw):
        if kw:
            raise TypeError(f'{type(self).__name__}: unknown options {sorted(kw)}')
        self.learning_rate, self.wd = learning_rate, wd
        self.rescale_grad, self.clip_gradient = rescale_grad, clip_gradient
        self.states = {}

    def _grad(self, param):
        g = param._data.grad._data * self.rescale_grad
        if self.clip_gradient is not None:
            g = _onp.clip(g, -self.clip_gradient, self.clip_gradient)
        if self.wd and param.wd_mult:
            g = g + (self.wd * param.wd_mult) * param._data._data
        return g

    def update(self, key, param):
        raise NotImplementedError


class SGD(Optimizer):
    """``w -= lr * (grad + wd*w)``, with optional momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, **kw):
        super().__init__(learning_rate, **kw)
        self.momentum = momentum

    def update(self, key, param):
        lr = self.learning_rate * param.lr_mult
        g = self._grad(param)
        w = param._data._data
        if self.momentum:
            m = self.states.get(key)
            m = -lr * g if m is None else self.momentum * m - lr * g
            self.states[key] = m
            w += m.astype(w.dtype, copy=False)
        else:
            w -= (lr * g).astype(w.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as MXNet implements it."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, **kw):
        super().__init__(learning_rate, **kw)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def update(self, key, param):
        g = self._grad(param)
        w = param._data._data
        m, v, t = self.states.get(key, (_onp.zeros_like(w), _onp.zeros_like(w), 0))
        t += 1
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (1 - self.beta2) * g * g
        self.states[key] = (m, v, t)
        lr = self.learning_rate * param.lr_mult * _onp.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        w -= (lr * m / (_onp.sqrt(v) + self.epsilon)).astype(w.dtype, copy=False)


OPTIMIZERS = {'sgd': SGD, 'adam': Adam}


class Trainer:
    """``Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})``;
    call ``step(batch_size)`` after ``loss.backward()``."""

    def __init__(self, params, optimizer, optimizer_params=None, kvstore=None):
        if isinstance(params, dict):
            params = list(params.values())
        params = list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f'Trainer expects Parameters (e.g. net.collect_params()), got '
                                f'{type(p).__name__}')
        self._params = params
        if isinstance(optimizer, Optimizer):
            self._optimizer = optimizer
        else:
            try:
                cls = OPTIMIZERS[optimizer.lower()]
            except (KeyError, AttributeError):
                raise ValueError(f'unknown optimizer {optimizer!r}; known: '
                                 f'{", ".join(sorted(OPTIMIZERS))}') from None
            self._optimizer = cls(**(optimizer_params or {}))

    @property
    def optimizer(self):
        return self._optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr):
        self._optimizer.learning_rate = lr

    def step(self, batch_size, ignore_stale_grad=False):
        """One update, with gradients scaled by ``1 / batch_size``."""
        self._optimizer.rescale_grad = 1.0 / batch_size
        self.update(batch_size, ignore_stale_grad)

    def update(self, batch_size=None, ignore_stale_grad=False):
        for i, p in enumerate(self._params):
            if p.grad_req == 'null':
                continue
            if p._data is None:
                p._check_initialized()
            self._optimizer.update(i, p)
            p._version += 1

    def zero_grad(self):
        for p in self._params:
            p.zero_grad()
