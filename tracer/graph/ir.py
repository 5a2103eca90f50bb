"""Small helpers on the graph IR shared by passes and the runtime.

A graph is a ``networkx.MultiDiGraph``; ``graph.graph`` holds ``inputs``
(input node ids in call order), ``outputs`` (node ids, in output order)
and ``updates`` (node ids whose values are written back to state).
"""
import networkx as nx

from .interpreter import SOURCE_OPS, arguments  # noqa: F401  (re-exported)


def roots(graph):
    """Nodes whose values leave the graph: outputs, updates and guards."""
    gg = graph.graph
    return list(gg.get('outputs', [])) + list(gg.get('updates', [])) + list(gg.get('guards', []))


def new_id(graph):
    return max(graph.nodes, default=-1) + 1


def consumers(graph, n):
    """Distinct nodes that read ``n``."""
    return list(dict.fromkeys(v for _, v in graph.out_edges(n)))


def replace_uses(graph, old, new):
    """Make every reader of ``old`` (and the output lists) read ``new``."""
    for _, v, k, e in list(graph.out_edges(old, keys=True, data=True)):
        graph.remove_edge(old, v, key=k)
        graph.add_edge(new, v, pos=e['pos'])
    for key in ('outputs', 'updates', 'guards'):
        if key in graph.graph:
            graph.graph[key] = [new if x == old else x for x in graph.graph[key]]


def prune(graph):
    """Remove nodes no root depends on (inputs are kept: they are the signature)."""
    keep = set(graph.graph.get('inputs', []))
    for r in roots(graph):
        keep.add(r)
        keep |= nx.ancestors(graph, r)
    dead = [n for n in graph.nodes if n not in keep]
    graph.remove_nodes_from(dead)
    return dead


def copy_graph(graph):
    g = graph.copy()
    g.graph = {k: (list(v) if isinstance(v, list) else v) for k, v in graph.graph.items()}
    return g


def nbytes(d):
    import numpy as _onp
    n = _onp.dtype(d['dtype']).itemsize
    for s in d['shape']:
        n *= s
    return n


class GraphError(Exception):
    """The graph breaks an IR invariant (a pass bug or a damaged file)."""


def check(graph, error=GraphError):
    """The IR invariants: a DAG; every op registered; argument positions
    0..n-1 filled exactly once; every node's shape and dtype equal what
    its op's shape rule gives; outputs and inputs exist."""
    from .. import ops
    from .trace import spec_of_node
    if not nx.is_directed_acyclic_graph(graph):
        raise error('the graph has a cycle')
    for key in ('inputs', 'outputs', 'updates', 'guards'):
        for n in graph.graph.get(key, []):
            if n not in graph:
                raise error(f'{key} refers to node {n}, which is not in the graph')
    for n in nx.topological_sort(graph):
        d = graph.nodes[n]
        if d['op'] in SOURCE_OPS:
            continue
        if d['op'] not in ops.OPS:
            raise error(f"node {n} uses unknown op {d['op']!r}")
        try:
            args = [spec_of_node(graph, s) if s is not None else v
                    for _, s, v in arguments(graph, n)]
        except KeyError:
            raise error(f"node {n} ({d['op']}) has missing or repeated argument "
                        f"positions") from None
        try:
            spec = ops.get(d['op']).spec(*args, **(d.get('attrs') or {}))
        except Exception as e:
            raise error(f"node {n} ({d['op']}) does not check out: {e}") from None
        if tuple(spec.shape) != tuple(d['shape']) or spec.dtype.name != d['dtype']:
            raise error(f"node {n} ({d['op']}) records shape {d['shape']} "
                        f"{d['dtype']} but its inputs give {spec.shape} {spec.dtype}")
