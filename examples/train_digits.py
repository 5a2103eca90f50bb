"""Train a small MLP to recognise handwritten digits.

The data is scikit-learn's bundled ``digits`` set: 1,797 grayscale images of
8x8 pixels, each labelled 0-9.  It ships with scikit-learn, so nothing is
downloaded.  The script shows the usual Gluon training loop:

    with autograd.record():           # record the forward pass ...
        loss = loss_fn(net(x), y)
    loss.backward()                   # ... differentiate it ...
    trainer.step(batch_size)          # ... and update the parameters

Run it with::

    pip install -e '.[examples]'      # installs scikit-learn
    python examples/train_digits.py

It reaches about 97% test accuracy in a couple of seconds on one CPU core.
"""
import sys
import time

import numpy as onp

from tracer import autograd, gluon, np
from tracer.gluon import nn

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
except ImportError:  # pragma: no cover - depends on the environment
    load_digits = None


def load_data(seed=0):
    """Standardized ``(X_train, y_train, X_test, y_test)`` as NumPy arrays."""
    X, y = load_digits(return_X_y=True)            # X: (1797, 64) pixels in 0..16
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y)
    # Fit the scaling on the training set only, then apply it to both sets.
    scaler = StandardScaler().fit(X_train)
    X_train = scaler.transform(X_train).astype('float32')
    X_test = scaler.transform(X_test).astype('float32')
    return X_train, y_train.astype('int64'), X_test, y_test.astype('int64')


def build_net():
    """64 pixels -> 128 hidden units (ReLU) -> 10 class scores (logits)."""
    net = nn.Sequential()
    net.add(nn.Dense(128, activation='relu'),
            nn.Dropout(0.2),
            nn.Dense(10))
    net.initialize()          # the input size (64) is inferred on the first batch
    return net


def accuracy(net, X, y):
    """Fraction of rows of ``X`` whose highest-scoring class is ``y``."""
    logits = net(np.array(X))                    # outside record(): Dropout is off
    return float((logits.argmax(axis=1) == np.array(y)).mean())


def main(epochs=20, batch_size=32, learning_rate=1e-3, seed=0, verbose=True):
    """Train on digits and return the final test accuracy (a float in [0, 1])."""
    if load_digits is None:
        print("This example needs scikit-learn. Install it with:\n"
              "    pip install -e '.[examples]'", file=sys.stderr)
        sys.exit(1)

    # Seed both generators: tracer's (weight init, Dropout masks) and
    # NumPy's (the order of the minibatches).
    np.random.seed(seed)
    rng = onp.random.default_rng(seed)

    X_train, y_train, X_test, y_test = load_data(seed)
    net = build_net()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()   # takes logits and class indices
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': learning_rate})

    n = len(X_train)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)                   # reshuffle every epoch
        total_loss = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            x, y = np.array(X_train[idx]), np.array(y_train[idx])
            with autograd.record():                  # training mode: Dropout is on
                loss = loss_fn(net(x), y)            # one loss value per sample
            loss.backward()
            trainer.step(len(idx))                   # gradients are divided by the batch size
            total_loss += float(loss.sum())
        if verbose:
            print(f'epoch {epoch:2d}  loss {total_loss / n:.4f}  '
                  f'train acc {accuracy(net, X_train, y_train):.4f}  '
                  f'test acc {accuracy(net, X_test, y_test):.4f}')

    test_acc = accuracy(net, X_test, y_test)
    if verbose:
        print(f'final test accuracy: {test_acc:.4f} '
              f'({time.perf_counter() - start:.1f} s of training)')
    return test_acc


if __name__ == '__main__':
    main()
