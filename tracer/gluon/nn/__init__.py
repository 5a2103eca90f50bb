"""Neural-network layers (``from tracer.gluon import nn``), with PyTorch
aliases (``Module``, ``Linear``, ``ModuleList``) beside the Gluon names."""
from ..block import Block, HybridBlock
from .basic_layers import (Activation, BatchNorm, Dense, Dropout, Embedding, HybridLambda,
                           Identity, Lambda, LayerNorm, Linear)
from .containers import HybridSequential, ModuleList, Sequential

Module = Block

__all__ = ['Block', 'HybridBlock', 'Module', 'Sequential', 'HybridSequential', 'ModuleList',
           'Dense', 'Linear', 'Activation', 'Dropout', 'LayerNorm', 'BatchNorm', 'Embedding',
           'Identity', 'Lambda', 'HybridLambda']
