"""The founding document's models (../shared/seeds/), with only the import
lines changed from mxnet to tracer.  Run it to see each model's output and
parameter count:  python examples/founding.py
"""
from tracer import np, npx
from tracer.gluon import nn
npx.set_np()
from tracer import gluon  # noqa: E402
import numpy as onp  # noqa: E402


class MLP(nn.Block):
    def __init__(self):
        # Call the constructor of the MLP parent class nn.Block to perform
        # the necessary initialization
        super().__init__()
        self.hidden = nn.Dense(256, activation='relu')
        self.out = nn.Dense(10)

    # Define the forward propagation of the model, that is, how to return the
    # required model output based on the input X
    def forward(self, X):
        return self.out(self.hidden(X))


class MySequential(nn.Block):
    def __init__(self):
        super().__init__()
        # Keep strong refs ourselves: _children in Gluon 2.0 holds weakrefs,
        # so we'd otherwise lose blocks to GC right after add() returns.
        self._layers = []

    def add(self, block):
        # block is an instance of a Block subclass. register_child tracks it
        # for parameter discovery; the strong ref in self._layers keeps it
        # alive (matches the upstream nn.Sequential pattern).
        self._layers.append(block)
        self.register_child(block)

    def forward(self, X):
        # _children.values() yields weakrefs; call them to dereference.
        for block in self._children.values():
            X = block()(X)
        return X


class FixedHiddenMLP(nn.Block):
    def __init__(self):
        super().__init__()
        # Random weight parameters wrapped in gluon.Constant are not updated
        # during training (i.e., constant parameters)
        self.rand_weight = gluon.Constant(np.random.uniform(size=(20, 20)))
        self.dense = nn.Dense(20, activation='relu')

    def forward(self, X):
        X = self.dense(X)
        # Use the created constant parameters, as well as the relu and dot
        # functions
        X = npx.relu(np.dot(X, self.rand_weight.data()) + 1)
        # Reuse the fully connected layer. This is equivalent to sharing
        # parameters with two fully connected layers
        X = self.dense(X)
        # Control flow
        while np.abs(X).sum() > 1:
            X /= 2
        return X.sum()


class NestMLP(nn.Block):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential()
        self.net.add(nn.Dense(64, activation='relu'),
                     nn.Dense(32, activation='relu'))
        self.dense = nn.Dense(16, activation='relu')

    def forward(self, X):
        return self.dense(self.net(X))


def make_models():
    """Each founding-document model, initialized (name -> block)."""
    seq = nn.Sequential()
    seq.add(nn.Dense(256, activation='relu'), nn.Dense(10))
    myseq = MySequential()
    myseq.add(nn.Dense(256, activation='relu'))
    myseq.add(nn.Dense(10))
    chimera = nn.Sequential()
    chimera.add(NestMLP(), nn.Dense(20), FixedHiddenMLP())
    models = {'MLP': MLP(), 'Sequential': seq, 'MySequential': myseq,
              'FixedHiddenMLP': FixedHiddenMLP(), 'NestMLP': NestMLP(), 'chimera': chimera}
    for m in models.values():
        m.initialize()
    return models


def count(params, trainable_only=False):
    return sum(p.size for p in params if not trainable_only or p.grad_req != 'null')


if __name__ == '__main__':
    import warnings

    import tracer
    warnings.simplefilter('ignore', UserWarning)      # graph breaks are shown by explain
    np.random.seed(0)
    X = np.random.uniform(size=(2, 20))
    for name, net in make_models().items():
        y = net(X)
        params = list(net.parameters())
        print(f'== {name}: output shape {y.shape}, {count(params)} parameters '
              f'({count(params, True)} trainable)')
        print(net)
        print('eager output:', y)
        net.hybridize()
        diff = float(onp.abs(net(X).asnumpy() - y.asnumpy()).max())
        report = tracer.explain(net, X)
        print(f'hybridized: max |difference| to eager = {diff:.2e}; '
              f'{sum(g.number_of_nodes() for _, g in report.graphs)} graph nodes, '
              f'{len(report.breaks)} graph break(s)')
        for b in report.breaks:
            print(f"  break at {b['source']}: {b['reason']}")
        print()
    print(tracer.explain(make_models()['MLP'], X))
