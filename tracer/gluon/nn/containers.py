"""Containers: Sequential / HybridSequential (run children in order) and
PyTorch's ModuleList (hold children, no forward)."""
from ..block import Block, HybridBlock


class _Stack:
    """Shared list behaviour: strong references in ``_layers`` plus
    ``register_child`` (whose weak references alone would not keep a
    block alive)."""

    def _init_stack(self):
        object.__setattr__(self, '_layers', [])

    def add(self, *blocks):
        """Append blocks; they run in the order added."""
        for block in blocks:
            if not isinstance(block, Block):
                raise TypeError(f'{type(self).__name__}.add expects Blocks, got '
                                f'{type(block).__name__}')
            self._layers.append(block)
            self.register_child(block)
        return self

    def __getitem__(self, key):
        if isinstance(key, slice):
            new = type(self)()
            new.add(*self._layers[key])
            return new
        return self._layers[key]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)


class Sequential(_Stack, Block):
    """Run children in sequence: ``net.add(nn.Dense(256, activation='relu'), nn.Dense(10))``."""

    def __init__(self, *blocks, prefix=None, params=None):
        Block.__init__(self)
        self._init_stack()
        self.add(*blocks)

    def forward(self, x, *args):
        for block in self._layers:
            x = block(x, *args)
            args = ()
            if isinstance(x, (tuple, list)):
                x, *args = x
        return x if not args else (x, *args)


class HybridSequential(_Stack, HybridBlock):
    """A Sequential whose children are all HybridBlocks."""

    def __init__(self, *blocks, prefix=None, params=None):
        HybridBlock.__init__(self)
        self._init_stack()
        self.add(*blocks)

    forward = Sequential.forward


class ModuleList(_Stack, Block):
    """PyTorch-style list of blocks: registered for parameters, no forward."""

    def __init__(self, modules=()):
        Block.__init__(self)
        self._init_stack()
        self.add(*modules)

    def append(self, block):
        return self.add(block)

    def extend(self, blocks):
        return self.add(*blocks)

    def forward(self, *args):
        raise NotImplementedError('ModuleList has no forward(): iterate over it in your '
                                  "block's forward")
