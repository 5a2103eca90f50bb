"""Gluon: blocks, parameters, layers, losses and trainers.

>>> from tracer import gluon
>>> from tracer.gluon import nn
"""
import types as _types

from .. import npx as _npx
from .. import numpy as _np
from .block import Block, HookHandle, HybridBlock
from .parameter import Constant, DeferredInitializationError, Parameter
from . import nn
from . import loss
from .trainer import Trainer
from .symbol_block import SymbolBlock


def _make_F():
    """The array namespace handed to Gluon 1 style ``hybrid_forward(F, ...)``."""
    ns = _types.SimpleNamespace()
    for mod in (_np, _npx):
        for name in dir(mod):
            if not name.startswith('_'):
                setattr(ns, name, getattr(mod, name))
    ns.np, ns.npx = _np, _npx
    return ns


F = _make_F()

__all__ = ['Block', 'HybridBlock', 'Parameter', 'Constant', 'DeferredInitializationError',
           'nn', 'loss', 'Trainer', 'HookHandle', 'SymbolBlock']
