"""Graphviz DOT text for a graph (no graphviz package needed to produce it).
Nodes are grouped into clusters by fusion group when the graph has been
through the fusion pass, otherwise by block scope."""
from collections import defaultdict

_COLORS = {'input': '#cde8ff', 'param': '#ffe9b3', 'constant': '#eeeeee'}


def _label(n, d):
    shape = 'x'.join(str(s) for s in d['shape']) or 'scalar'
    head = d['op'] if d['op'] not in ('input', 'param') else f"{d['op']} {d.get('name', '')}"
    return f"{head}\\n{shape} {d['dtype']}\\n#{n}"


def to_dot(graph, name='graph'):
    lines = [f'digraph "{name}" {{', '  rankdir=TB;', '  node [shape=box, style=filled, '
             'fillcolor=white, fontname="Helvetica", fontsize=10];']
    clusters = defaultdict(list)
    by_group = 'groups' in graph.graph
    for n, d in graph.nodes(data=True):
        if by_group:
            g = d.get('group')
            grp = graph.graph['groups'].get(g)
            key = '' if grp is None else \
                f"group {g}: {grp['kind']} ({graph.nodes[grp['root']].get('scope') or '-'})"
        else:
            key = d.get('scope', '')
        clusters[key].append(n)
    for i, (scope, nodes) in enumerate(sorted(clusters.items())):
        indent = '  '
        if scope:
            lines.append(f'  subgraph cluster_{i} {{')
            lines.append(f'    label="{scope}"; style=dashed;')
            indent = '    '
        for n in nodes:
            d = graph.nodes[n]
            color = _COLORS.get(d['op'], 'white')
            lines.append(f'{indent}n{n} [label="{_label(n, d)}", fillcolor="{color}"];')
        if scope:
            lines.append('  }')
    for u, v, e in graph.edges(data=True):
        many = graph.in_degree(v) + len(graph.nodes[v].get('scalars', {})) > 1
        label = f' [label="{e["pos"]}"]' if many else ''
        lines.append(f'  n{u} -> n{v}{label};')
    lines.append('}')
    return '\n'.join(lines) + '\n'
