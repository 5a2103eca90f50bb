"""Lowering of optimized graphs to LLVM IR.

``module.lower(graph)`` turns a graph that went through the fusion and
memory passes into one LLVM module: a kernel per fusion group
(``kernels.py`` elementwise and reductions, ``normalize.py`` softmax /
log_softmax / layer_norm, ``matmul_group.py`` + ``matmul.py`` matrix
products, ``movement.py`` copies, gathers, scatters and random numbers),
``run(table)`` calling them in order, and a CPython entry.  ``LOWERINGS``
says which emitter handles each registered op; a test fails when an op
has none.
"""
from .scalar_ops import EMITTERS as _EW, NEEDS_ATTRS as _EW_ATTRS

LOWERINGS = {name: 'elementwise' for name in list(_EW) + list(_EW_ATTRS)}
LOWERINGS.update({name: 'reduction' for name in ('sum', 'prod', 'max', 'min', 'argmax',
                                                  'argmin')})
LOWERINGS.update({name: 'normalization' for name in ('softmax', 'log_softmax', 'layer_norm')})
LOWERINGS['matmul'] = 'matmul'
LOWERINGS.update({name: 'movement' for name in ('transpose', 'reshape', 'broadcast_to',
                                                 'concatenate', 'getitem', 'setitem',
                                                 'index_add')})
LOWERINGS.update({name: 'host callback' for name in ('random_uniform', 'random_normal',
                                                      'random_randint')})
