"""Fusion grouping: mark the groups the code generator emits as one loop nest.

Walking consumers before producers, a node joins the group of its readers
when all its readers are in that one group (so nothing is computed twice)
and the group can absorb it:

- an elementwise node into an elementwise member of the same shape (one
  iteration space: no recomputation under broadcasting), or as the
  *prologue* of a reduction/normalization (feeding its data operand);
- a matmul or reduction into an elementwise-only group of its output
  shape, becoming the group's anchor with that group as its *epilogue*
  (bias, activation, residual add; ``sum(...) > 1``);
- a transpose of the last two axes into the matmul that reads it as its
  right operand (the kernel reads that operand transposed).

Groups are trees rooted at their one output, hence convex.  Every group
gets a structural hash (networkx Weisfeiler-Lehman over ops, attributes,
shapes and the argument wiring): groups with equal hashes are the same
kernel, which is how repeated layers (a transformer stack) compile once.
"""
import warnings

import networkx as nx

from tracer import ops
from tracer.graph.ir import SOURCE_OPS, arguments, consumers, roots
from tracer.ops.registry import Kind

ANCHORS = (Kind.MATMUL, Kind.REDUCTION)


def _kind(d):
    return ops.get(d['op']).kind


def _swaps_last_two(d):
    axes = (d.get('attrs') or {}).get('axes')
    k = len(d['shape'])
    axes = tuple(reversed(range(k))) if axes is None else tuple(a % k for a in axes)
    return k >= 2 and axes == tuple(range(k - 2)) + (k - 1, k - 2)


def _can_join(graph, n, c, group):
    d, cd = graph.nodes[n], graph.nodes[c]
    kind, ckind = _kind(d), _kind(cd)
    if kind == Kind.ELEMENTWISE:
        if ckind == Kind.ELEMENTWISE:
            return d['shape'] == cd['shape']
        if ckind == Kind.REDUCTION and c == group['anchor']:
            positions = {e['pos'] for _, _, e in graph.out_edges(n, data=True)}
            return positions == {0}
        return False
    if kind in ANCHORS:            # only into an elementwise group, as its epilogue
        return group['anchor'] is None and group['kind'] == Kind.ELEMENTWISE.value and \
            d['shape'] == graph.nodes[group['root']]['shape']
    if d['op'] == 'transpose' and ckind == Kind.MATMUL and c == group['anchor']:
        positions = {e['pos'] for _, _, e in graph.out_edges(n, data=True)}
        return positions == {1} and _swaps_last_two(d)     # read as trans_b
    return False


def run(graph, ctx):
    order = list(nx.topological_sort(graph))
    rank = {n: i for i, n in enumerate(order)}
    exits = set(roots(graph))
    member, groups = {}, {}
    for n in reversed(order):
        d = graph.nodes[n]
        if d['op'] in SOURCE_OPS:
            continue
        kind = _kind(d)
        readers = consumers(graph, n)
        gids = {member.get(c) for c in readers}
        target = None
        if readers and n not in exits and len(gids) == 1 and None not in gids:
            gid = gids.pop()
            anchor = groups[gid]['anchor']
            # a prologue value feeds only its anchor (the kernel computes it inside
            # the anchor's loops, where the epilogue cannot see it)
            prologue_only = anchor not in readers or readers == [anchor]
            if prologue_only and all(_can_join(graph, n, c, groups[gid]) for c in readers):
                target = gid
        if target is None:
            target = len(groups)
            groups[target] = {'root': n, 'anchor': None, 'kind': kind.value, 'nodes': []}
        g = groups[target]
        g['nodes'].append(n)
        if kind in ANCHORS and g['anchor'] is None:
            g['anchor'], g['kind'] = n, kind.value
        member[n] = target
    # number groups in execution order (by their root's topological rank)
    ordered = sorted(groups.values(), key=lambda g: rank[g['root']])
    table = {}
    for i, g in enumerate(ordered):
        g['nodes'].sort(key=rank.get)
        g['inputs'] = sorted({s for m in g['nodes'] for s, _ in graph.in_edges(m)
                              if s not in g['nodes']}, key=rank.get)
        for m in g['nodes']:
            graph.nodes[m]['group'] = i
        table[i] = g
    kernels = _kernel_hashes(graph, table)
    graph.graph['groups'] = table
    fused = sum(len(g['nodes']) for g in table.values())
    return {'changed': True, 'groups': len(table), 'nodes_in_groups': fused,
            'multi_node_groups': sum(len(g['nodes']) > 1 for g in table.values()),
            'distinct_kernels': len(set(kernels.values()))}


def _kernel_hashes(graph, table):
    """Structural hash per group; equal hashes = one kernel to compile."""
    out = {}
    for i, g in table.items():
        h = nx.DiGraph()
        for s in g['inputs']:
            d = graph.nodes[s]
            h.add_node(s, label=f"in {d['shape']} {d['dtype']}")
        for m in g['nodes']:
            d = graph.nodes[m]
            h.add_node(m, label=f"{d['op']} {sorted((d.get('attrs') or {}).items())!r} "
                                f"{d['shape']} {d['dtype']} {sorted(d.get('scalars', {}).items())!r}"
                                f"{' root' if m == g['root'] else ''}")
            for pos, s, _ in arguments(graph, m):
                if s is not None:
                    prev = h.edges[s, m]['label'] + ',' if h.has_edge(s, m) else ''
                    h.add_edge(s, m, label=f'{prev}{pos}')
        with warnings.catch_warnings():
            # networkx warns that directed hashes changed in 3.5; ours are
            # only compared within one process
            warnings.simplefilter('ignore', UserWarning)
            g['kernel'] = nx.weisfeiler_lehman_graph_hash(h, node_attr='label',
                                                          edge_attr='label', iterations=3)
        out[i] = g['kernel']
    return out
