"""The versioned JSON form of a graph (the export format; docs/export-format.md).

Node and edge attributes go through a small codec so tuples, slices,
``...``, index placeholders and arrays survive JSON.  ``verify`` re-runs
every op's shape rule, so a damaged or hand-edited file is rejected with
the node that does not check out.
"""
import networkx as nx
import numpy as _onp

from .. import ops
from ..errors import TracerError
from ..ops.movement import IndexArg
from .interpreter import SOURCE_OPS, arguments

FORMAT = 'tracer-symbol'
VERSION = 1


class GraphFileError(TracerError, ValueError):
    """A symbol file that cannot be read: truncated, not JSON, wrong version,
    unknown ops, or a graph whose shapes do not check out."""


# ------------------------------------------------------------------ value codec
def encode(v):
    if isinstance(v, IndexArg):
        return {'index_arg': v.pos}
    if isinstance(v, tuple):
        return {'tuple': [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, dict):
        return {'dict': [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, slice):
        return {'slice': [encode(v.start), encode(v.stop), encode(v.step)]}
    if v is Ellipsis:
        return {'ellipsis': True}
    if isinstance(v, _onp.ndarray):
        return {'array': {'dtype': v.dtype.name, 'shape': list(v.shape),
                          'data': v.ravel().tolist()}}
    if isinstance(v, _onp.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f'cannot serialize {type(v).__name__} value {v!r}')


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) != 1:
        raise GraphFileError(f'malformed value {v!r}')
    (tag, body), = v.items()
    if tag == 'tuple':
        return tuple(decode(x) for x in body)
    if tag == 'dict':
        return {decode(k): decode(x) for k, x in body}
    if tag == 'slice':
        return slice(*[decode(x) for x in body])
    if tag == 'ellipsis':
        return Ellipsis
    if tag == 'index_arg':
        return IndexArg(int(body))
    if tag == 'array':
        return _onp.asarray(body['data'], dtype=body['dtype']).reshape(body['shape'])
    raise GraphFileError(f'unknown value tag {tag!r}')


_NODE_KEYS = ('op', 'attrs', 'shape', 'dtype', 'scope', 'source', 'scalars', 'name', 'kind',
              'value')


def graph_to_json(graph, param_names):
    """node-link data with encoded attributes; ``param`` objects become names."""
    g = nx.MultiDiGraph()
    for n, d in graph.nodes(data=True):
        out = {k: encode(d[k]) for k in _NODE_KEYS if k in d and k != 'kind'}
        if 'scalars' in d:
            out['scalars'] = [[pos, encode(v)] for pos, v in d['scalars'].items()]
        if 'param' in d:
            p = d['param']
            out['name'] = param_names[id(p)]
            out['kind'] = 'arg' if p.grad_req != 'null' else 'aux'
        g.add_node(n, **out)
    for u, v, k, e in graph.edges(keys=True, data=True):
        g.add_edge(u, v, key=k, pos=e['pos'])
    return nx.node_link_data(g, edges='edges')


def graph_from_json(data):
    try:
        g = nx.node_link_graph(data, directed=True, multigraph=True, edges='edges')
    except Exception as e:
        raise GraphFileError(f'the graph is not valid node-link data: {e}') from None
    for n, d in g.nodes(data=True):
        for key in ('op', 'shape', 'dtype'):
            if key not in d:
                raise GraphFileError(f'node {n} has no {key!r}')
        d['shape'] = tuple(decode(d['shape']))
        d['attrs'] = decode(d.get('attrs', {})) or {}
        d['scalars'] = {int(pos): decode(v) for pos, v in d.get('scalars', [])}
        if 'value' in d:
            d['value'] = decode(d['value'])
        if d['op'] not in SOURCE_OPS and d['op'] not in ops.OPS:
            raise GraphFileError(f"node {n} uses unknown op {d['op']!r}; this tracer knows: "
                                 f"{', '.join(sorted(ops.OPS))}")
    return g


def verify(graph):
    """Check a loaded graph; failures are GraphFileErrors."""
    from .ir import check
    check(graph, GraphFileError)
