"""tracer: a Gluon/PyTorch-style module library on a NumPy-compatible array
with autograd, whose models compile to native code with ``hybridize()``.

This package owns what users import: ``NDArray``, ``np``, ``npx``,
``autograd``, ``init``, ``gluon``, the op registry (``tracer.ops``) and,
later, symbolic tracing and the graph IR.

>>> from tracer import np, npx, autograd, gluon
>>> from tracer.gluon import nn
"""
from . import errors
from .device import Device, as_device, cpu, gpu
from .ndarray import NDArray
from . import dispatch  # noqa: F401  (installs the dispatcher into the registry)
from . import ops
from . import numpy as np
from . import npx
from . import autograd
from .ndarray import _install_methods

_install_methods()
del _install_methods

from . import init  # noqa: E402
from . import gluon  # noqa: E402
from .config import debug_eager, is_debug_eager, set_debug_eager  # noqa: E402
from .explain import explain  # noqa: E402

from . import device as context  # noqa: E402  (MXNet name)
Context = Device
num_gpus = lambda: 0  # noqa: E731

__version__ = '0.1.0'
__all__ = ['np', 'npx', 'autograd', 'gluon', 'init', 'ops', 'cpu', 'gpu', 'Device',
           'NDArray', 'errors', 'explain', 'debug_eager', 'set_debug_eager', 'is_debug_eager']
