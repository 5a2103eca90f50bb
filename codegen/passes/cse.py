"""Dedupe (structural common-subexpression elimination): the same op on the
same inputs with the same attributes is computed once.  Equal small
literal constants merge too; random ops never do."""
import networkx as nx

from tracer import ops
from tracer.graph.ir import arguments, replace_uses

_MAX_CONST_BYTES = 1 << 16


def _key(graph, n):
    d = graph.nodes[n]
    op = d['op']
    if op == 'input':
        return None
    if 'param' in d:
        return ('param', id(d['param']))
    if op == 'constant':
        v = d['value']
        if v.nbytes > _MAX_CONST_BYTES:
            return None
        return ('const', v.dtype.str, v.shape, v.tobytes())
    if ops.get(op).nondeterministic:
        return None
    args = tuple((s, None) if s is not None else (None, repr(v)) for _, s, v in arguments(graph, n))
    return (op, repr(sorted((d.get('attrs') or {}).items())), args)


def run(graph, ctx):
    canon, merged = {}, 0
    for n in list(nx.topological_sort(graph)):
        key = _key(graph, n)
        if key is None:
            continue
        first = canon.get(key)
        if first is None:
            canon[key] = n
            continue
        replace_uses(graph, n, first)
        graph.remove_node(n)
        merged += 1
    return {'changed': bool(merged), 'merged': merged}
