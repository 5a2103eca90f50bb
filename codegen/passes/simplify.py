"""Algebraic simplification: a table of local rewrite rules.

Each rule sees one node and returns the node that should replace it (or
None).  A rule only fires when the replacement has exactly the node's shape
and dtype, so it never changes results: ``x*1``, ``x+0``, ``x-0``, ``x/1``,
``x-x`` (integers only: for floats inf-inf is nan), double negation,
``relu(relu(x))``, transpose and reshape chains, and identity casts,
reshapes, transposes and broadcasts.
"""
import networkx as nx
import numpy as _onp

from tracer.graph.ir import SOURCE_OPS, arguments, new_id, prune, replace_uses


def _same(graph, n, src):
    a, b = graph.nodes[n], graph.nodes[src]
    return src if (a['shape'] == b['shape'] and a['dtype'] == b['dtype']) else None


def _scalar_identity(value):
    def rule(graph, n, args):
        if len(args) != 2:
            return None
        (_, s0, v0), (_, s1, v1) = args
        if s0 is not None and s1 is None and v1 == value and not isinstance(v1, bool):
            return _same(graph, n, s0)
        return None
    return rule


def _commuted_identity(value):
    def rule(graph, n, args):
        if len(args) != 2:
            return None
        (_, s0, v0), (_, s1, v1) = args
        if s1 is not None and s0 is None and v0 == value and not isinstance(v0, bool):
            return _same(graph, n, s1)
        return None
    return rule


def _self_subtract(graph, n, args):
    (_, s0, _), (_, s1, _) = args
    d = graph.nodes[n]
    if s0 is not None and s0 == s1 and _onp.dtype(d['dtype']).kind in 'iub':
        z = new_id(graph)
        graph.add_node(z, **{**d, 'op': 'constant', 'attrs': {}, 'scalars': {},
                             'value': _onp.zeros(d['shape'], d['dtype'])})
        return z
    return None


def _involution(op):
    def rule(graph, n, args):
        (_, s, _), = args
        if s is not None and graph.nodes[s]['op'] == op:
            (_, inner, _), = arguments(graph, s)
            return _same(graph, n, inner) if inner is not None else None
        return None
    return rule


def _idempotent(op):
    def rule(graph, n, args):
        (_, s, _), = args
        if s is not None and graph.nodes[s]['op'] == op:
            return _same(graph, n, s)
        return None
    return rule


def _identity_view(graph, n, args):
    """reshape/broadcast_to/astype to what the input already is."""
    return _same(graph, n, args[0][1]) if args[0][1] is not None else None


def _axes(d):
    axes = (d.get('attrs') or {}).get('axes')
    k = len(d['shape'])
    return tuple(reversed(range(k))) if axes is None else tuple(a % max(k, 1) for a in axes)


def _transpose(graph, n, args):
    (_, s, _), = args
    d = graph.nodes[n]
    outer = _axes(d)
    if outer == tuple(range(len(outer))):
        return _same(graph, n, s)
    if graph.nodes[s]['op'] != 'transpose':
        return None
    inner = _axes(graph.nodes[s])
    composed = tuple(inner[a] for a in outer)
    (_, x, _), = arguments(graph, s)
    if composed == tuple(range(len(composed))):
        return _same(graph, n, x)
    return _rewire(graph, n, s, x, {'axes': composed})


def _reshape(graph, n, args):
    (_, s, _), = args
    if graph.nodes[s]['shape'] == graph.nodes[n]['shape']:
        return _same(graph, n, s)
    if graph.nodes[s]['op'] != 'reshape':
        return None
    (_, x, _), = arguments(graph, s)
    if graph.nodes[x]['shape'] == graph.nodes[n]['shape']:
        return _same(graph, n, x)
    return _rewire(graph, n, s, x, None)


def _rewire(graph, n, old_src, new_src, attrs):
    """Make ``n`` read ``new_src`` instead of ``old_src`` (in place)."""
    for _, _, k, e in list(graph.in_edges(n, keys=True, data=True)):
        graph.remove_edge(old_src, n, key=k)
        graph.add_edge(new_src, n, pos=e['pos'])
    if attrs is not None:
        graph.nodes[n]['attrs'] = {**graph.nodes[n]['attrs'], **attrs}
    return n


RULES = {
    'multiply': [_scalar_identity(1), _commuted_identity(1)],
    'add': [_scalar_identity(0), _commuted_identity(0)],
    'subtract': [_scalar_identity(0), _self_subtract],
    'divide': [_scalar_identity(1)],
    'negative': [_involution('negative')],
    'relu': [_idempotent('relu')],
    'transpose': [_transpose],
    'reshape': [_reshape],
    'broadcast_to': [_identity_view],
    'astype': [_identity_view],
}


def run(graph, ctx):
    fired = {}
    for n in list(nx.topological_sort(graph)):
        if n not in graph:
            continue
        d = graph.nodes[n]
        if d['op'] in SOURCE_OPS:
            continue
        for rule in RULES.get(d['op'], ()):
            new = rule(graph, n, arguments(graph, n))
            if new is None:
                continue
            name = f"{d['op']}:{rule.__name__.strip('_')}"
            fired[name] = fired.get(name, 0) + 1
            if new != n:
                replace_uses(graph, n, new)
                break
    removed = prune(graph) if fired else []
    return {'changed': bool(fired), 'rules': fired, 'removed': len(removed)}
