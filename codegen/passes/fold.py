"""Constant folding: a node whose inputs are all constants is computed once,
at compile time, with the op's NumPy reference, and becomes a constant.

Constants are literal arrays, Python scalars and parameter-backed
constants (``gluon.Constant``).  Trainable parameters count as constants
only when the context says the graph is frozen for inference.  Random ops
are never folded.
"""
import networkx as nx
import numpy as _onp

from tracer import ops
from tracer.graph.ir import SOURCE_OPS, arguments, prune


def _is_constant(d, ctx):
    if d['op'] != 'constant' and not (d['op'] == 'param' and ctx.freeze):
        return False
    return 'value' in d or ctx.param_value is not None


def _value(d, ctx):
    return d['value'] if 'value' in d else ctx.param_value(d)


def run(graph, ctx):
    folded = 0
    for n in list(nx.topological_sort(graph)):
        d = graph.nodes[n]
        if d['op'] in SOURCE_OPS:
            continue
        op = ops.get(d['op'])
        if op.nondeterministic:
            continue
        args = arguments(graph, n)
        if not all(s is None or _is_constant(graph.nodes[s], ctx) for _, s, _ in args):
            continue
        values = [_value(graph.nodes[s], ctx) if s is not None else v for _, s, v in args]
        with _onp.errstate(all='ignore'):
            value = _onp.asarray(op.impl(*values, **(d.get('attrs') or {})))
        value = _onp.array(value, dtype=d['dtype'], order='C')    # keeps 0-d shapes
        graph.remove_edges_from(list(graph.in_edges(n, keys=True)))
        d.update(op='constant', value=value, attrs={}, scalars={})
        folded += 1
    removed = prune(graph) if folded else []
    return {'changed': bool(folded), 'folded': folded, 'removed': len(removed)}
