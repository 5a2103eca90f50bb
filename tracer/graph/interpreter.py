"""The reference interpreter: runs a graph with the registry's NumPy
implementations.  It is the executor until native code lands and stays
the oracle every pass and kernel is checked against.

``Program`` flattens a graph once (topological order, argument slots) so a
call is a loop of NumPy calls.  ``replay`` instead re-issues every node
through the dispatcher, so autograd records it and tracing re-traces it
(how an imported ``SymbolBlock`` runs eagerly).
"""
import networkx as nx
import numpy as _onp

from .. import ops as _ops
from ..errors import TracerError

SOURCE_OPS = ('input', 'param', 'constant')


class GraphExecutionError(TracerError, RuntimeError):
    """An op failed while running a graph; names the node, its block and source."""


def arguments(graph, n):
    """[(position, source node or None, scalar)] of node ``n`` in position order."""
    d = graph.nodes[n]
    args = {pos: (pos, None, v) for pos, v in d.get('scalars', {}).items()}
    for src, _, e in graph.in_edges(n, data=True):
        args[e['pos']] = (e['pos'], src, None)
    return [args[i] for i in range(len(args))]


def describe_node(graph, n):
    d = graph.nodes[n]
    where = f" in block '{d['scope']}'" if d.get('scope') else ''
    return f"node {n} ({d['op']}{list(d['shape'])} {d['dtype']}) created at {d.get('source', '?')}{where}"


class Program:
    """A graph compiled to a flat list of NumPy calls.

    ``inputs``: the graph's input nodes in order; ``outputs``: nodes whose
    values ``run`` returns.  Parameter values are read at every call from
    the Parameter objects on ``param`` nodes (so updates are seen).
    """

    def __init__(self, graph, inputs, outputs):
        self.graph = graph
        order = list(nx.topological_sort(graph))
        self.slot = {n: i for i, n in enumerate(order)}
        self.nslots = len(order)
        self.input_slots = [self.slot[n] for n in inputs]
        self.output_slots = [self.slot[n] for n in outputs]
        self.params = []          # (slot, Parameter)
        template = [None] * len(order)
        self.steps = []
        for n in order:
            d = graph.nodes[n]
            op = d['op']
            if op == 'input':
                continue
            if op in ('param', 'constant') and 'param' in d:
                self.params.append((self.slot[n], d['param']))
            elif op == 'constant':
                template[self.slot[n]] = d['value']
            else:
                impl = _ops.get(op).impl
                srcs = tuple(self.slot[s] if s is not None else _Literal(v)
                             for _, s, v in arguments(graph, n))
                self.steps.append((impl, srcs, d.get('attrs') or {}, self.slot[n], n))
        self.template = template

    def run(self, inputs, keep_env=False):
        env = list(self.template)
        for slot, value in zip(self.input_slots, inputs):
            env[slot] = value
        for slot, p in self.params:
            if p._data is None:
                p._check_initialized()
            env[slot] = p._data._data
        for impl, srcs, attrs, out, n in self.steps:
            args = [env[s] if type(s) is int else s.value for s in srcs]
            try:
                r = impl(*args, **attrs)
            except Exception as e:
                raise GraphExecutionError(f'while executing {describe_node(self.graph, n)}: '
                                          f'{type(e).__name__}: {e}') from e
            env[out] = r if type(r) is _onp.ndarray else _onp.asarray(r)
        outs = [env[s] for s in self.output_slots]
        return (outs, env) if keep_env else outs


class _Literal:
    __slots__ = ('value',)

    def __init__(self, value):
        self.value = value


def run_graph(graph, inputs, outputs, input_values):
    """One-off interpretation (tests, constant folding): NumPy in, NumPy out."""
    return Program(graph, inputs, outputs).run(list(input_values))


def replay(graph, inputs, outputs, input_values, param_value):
    """Re-issue every node through the dispatcher (eager autograd, tracing).

    ``param_value(node_attrs)`` returns the array for a param/constant node.
    """
    env = dict(zip(inputs, input_values))
    for n in nx.topological_sort(graph):
        if n in env:
            continue
        d = graph.nodes[n]
        op = d['op']
        if 'param' in d:
            env[n] = param_value(d)
        elif op == 'constant':
            from ..ndarray import wrap
            env[n] = wrap(d['value'])
        elif op == 'input':
            raise TracerError(f'replay: no value given for input node {n}')
        else:
            args = [env[s] if s is not None else v for _, s, v in arguments(graph, n)]
            env[n] = _ops.get(op)(*args, **(d.get('attrs') or {}))
    return [env[n] for n in outputs]
