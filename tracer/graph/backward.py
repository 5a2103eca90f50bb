"""Backward graphs: reverse-mode differentiation of a traced graph, built by
tracing the registry's gradient rules on symbols.

The backward graph's inputs are ``saved:<n>`` (the forward value of node
``n``) and ``grad:<k>`` (the gradient of forward output ``k``); its outputs
are the gradients of the requested ``wrt`` nodes, in order.  Because the
rules are the same functions eager autograd calls, compiled and eager
gradients agree by construction.
"""
import networkx as nx
import numpy as _onp

from .. import autograd, ops
from ..ops.registry import GradCtx
from .interpreter import SOURCE_OPS, arguments
from .trace import Symbol, Trace, tracing


class BackwardGraph:
    def __init__(self, graph, inputs, input_keys, outputs):
        self.graph = graph
        self.inputs = inputs            # backward input nodes
        self.input_keys = input_keys    # ('saved', fwd node) or ('grad', k) per input
        self.outputs = outputs          # backward node per wrt (None: no gradient)


def build_backward(fwd, outputs, wrt):
    """Differentiate ``outputs`` (forward nodes) w.r.t. ``wrt`` (forward nodes)."""
    trace = Trace()
    keys = []
    saved = {}

    def value(n):
        s = saved.get(n)
        if s is None:
            d = fwd.nodes[n]
            s = saved[n] = trace.input(f'saved:{n}', d['shape'], d['dtype'])
            keys.append(('saved', n))
        return s

    # nodes whose value depends on something we differentiate with respect to
    live = set(wrt)
    for w in wrt:
        live |= nx.descendants(fwd, w)

    grads = {}

    def accumulate(n, g):
        if not isinstance(g, Symbol):           # a rule produced a constant
            g = trace.symbol(trace.constant(_onp.broadcast_to(
                _onp.asarray(g._data if hasattr(g, '_data') else g), fwd.nodes[n]['shape'])))
        grads[n] = g if n not in grads else ops.add(grads[n], g)

    with tracing(trace), autograd.pause():
        for k, o in enumerate(outputs):
            d = fwd.nodes[o]
            g = trace.input(f'grad:{k}', d['shape'], d['dtype'])
            keys.append(('grad', k))
            if o in live:
                accumulate(o, g)
        needed = set(outputs)
        for o in outputs:
            needed |= nx.ancestors(fwd, o)
        order = [n for n in nx.topological_sort(fwd) if n in needed and n in live]
        for n in reversed(order):
            d = fwd.nodes[n]
            if d['op'] in SOURCE_OPS or n not in grads:
                continue
            op = ops.get(d['op'])
            if op.grad is None:
                continue
            args = arguments(fwd, n)
            inputs = tuple(value(s) if s is not None else v for _, s, v in args)
            needs = tuple(s is not None and s in live and pos not in op.nondiff
                          for pos, s, _ in args)
            if not any(needs):
                continue
            in_grads = op.grad(GradCtx(inputs, value(n), d.get('attrs') or {}, needs), grads[n])
            for (pos, s, _), ig, need in zip(args, in_grads, needs):
                if need and ig is not None:
                    accumulate(s, ig)
    out_nodes = [grads[w].node if w in grads else None for w in wrt]
    return BackwardGraph(trace.graph, trace.inputs, keys, out_nodes)
