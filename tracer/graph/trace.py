"""Symbolic tracing: run ordinary Python (a block's ``forward``) on
:class:`Symbol` arrays and record every op application in a networkx graph.

A Symbol carries shape and dtype only.  Ops reach :func:`Trace.hook`
through the one dispatcher, which adds a node whose attributes are

    op      registry name ('add'), or 'input' / 'param' / 'constant'
    attrs   the op's static keyword arguments
    shape, dtype
    scope   block path where it was created ('0.net.1')
    source  user file:line that created it
    scalars {argument position: Python scalar} for literal operands

and edges ``src -> dst`` with attribute ``pos`` (argument position; a
``MultiDiGraph`` so ``x * x`` has two edges).  Concrete arrays that meet a
symbol become ``constant`` nodes; parameters become ``param`` nodes keyed
by the Parameter object, so a layer used twice shares one weight node.

Using a symbol's *value* in Python (``bool()``, ``float()``, ``.item()``,
``.asnumpy()``, ``if``/``while`` on it) raises :class:`GraphBreak`, which
records the user's file and line; it is never silently frozen.
"""
import os
import sys

import networkx as nx
import numpy as _onp

from .. import dispatch, scope
from ..errors import ShapeError, TracerError
from ..ndarray import NDArray
from ..ops.registry import Spec

# Frames in these packages are library code; sources name the user's line.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIB_DIRS = tuple(os.path.join(_ROOT, d) + os.sep for d in ('tracer', 'runtime', 'codegen'))


def user_source(depth=1):
    """'file:line' of the innermost frame outside this library."""
    f = sys._getframe(depth)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_LIB_DIRS) and not fn.startswith('<frozen'):
            return f'{fn}:{f.f_lineno}'
        f = f.f_back
    return '<unknown>'


class GraphBreak(TracerError):
    """Python needed a traced value: the traced forward cannot be one graph."""

    def __init__(self, reason, source=None, where=None):
        self.reason = reason
        self.source = source or user_source(2)
        self.scope = scope.current_path() if where is None else where
        self.stack = list(scope._stack)     # blocks running when it broke
        super().__init__(str(self))

    def __str__(self):
        at = f" in block '{self.scope}'" if self.scope else ''
        return f'graph break at {self.source}{at}: {self.reason}'


class SymRef:
    """What a Symbol holds in place of data."""
    __slots__ = ('node', 'shape', 'dtype', 'trace')

    def __init__(self, node, shape, dtype, trace):
        self.node, self.shape, self.dtype, self.trace = node, tuple(shape), _onp.dtype(dtype), trace


class Symbol(NDArray):
    """A traced array: shape and dtype, no values.  Same layout as NDArray
    (the ref lives in ``_data``) so in-place updates can rebind either way."""
    __slots__ = ()

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        n = 1
        for d in self._data.shape:
            n *= d
        return n

    @property
    def ndim(self):
        return len(self._data.shape)

    @property
    def node(self):
        return self._data.node

    def __len__(self):
        if not self._data.shape:
            raise TypeError('len() of a 0-d array')
        return self._data.shape[0]

    def _break(self, what):
        raise GraphBreak(f'{what} needs the value of a traced array '
                         f'(shape {self.shape}, {self.dtype})', user_source(3))

    def __bool__(self):
        trace = self._data.trace
        if trace.speculate and self.size == 1:
            return trace.guard(self._data.node, user_source(2))
        self._break('bool() (an `if` or `while` on an array)')

    def __float__(self):
        self._break('float()')

    def __int__(self):
        self._break('int()')

    def __index__(self):
        self._break('using an array as an index')

    def item(self):
        self._break('.item()')

    def asnumpy(self):
        self._break('.asnumpy()')

    def tolist(self):
        self._break('.tolist()')

    def __array__(self, dtype=None, copy=None):
        self._break('conversion to a NumPy array')

    def __repr__(self):
        return f'<Symbol node {self._data.node}: shape={self.shape}, dtype={self.dtype}>'

    __str__ = __repr__

    def attach_grad(self, grad_req='write', stype=None):
        raise TracerError('attach_grad() on a traced array: attach gradients to the '
                          'inputs outside the hybridized block')

    def detach(self):
        from .. import ops
        return ops.stop_gradient(self)


class Trace:
    """One recording in progress."""

    def __init__(self):
        self.graph = nx.MultiDiGraph()
        self._next = 0
        self.params = {}       # id(Parameter) -> (Parameter, Symbol, original node)
        self._consts = {}      # id(array) -> node
        self._keep = []        # keeps constant arrays alive while ids are keys
        self.inputs = []       # input node ids, in call order
        # Speculation: with the concrete inputs known, ``bool(symbol)`` takes the
        # branch the data takes now and records a guard (node, value, source);
        # the compiled graph computes the guard too and is only trusted when
        # every guard comes out the same.
        self.speculate = False
        self.input_values = None
        self.guards = []
        self._values = {}

    def guard(self, node, source):
        if any(ops_nondeterministic(self.graph.nodes[a]['op'])
               for a in nx.ancestors(self.graph, node) | {node}):
            raise GraphBreak('a branch on a random value', source)
        value = bool(self.evaluate(node))
        self.guards.append((node, value, source))
        return value

    def evaluate(self, node):
        """The concrete value of ``node`` for the inputs being traced (memoized)."""
        from .interpreter import arguments
        vals = self._values
        if node in vals:
            return vals[node]
        for n in nx.topological_sort(self.graph.subgraph(nx.ancestors(self.graph, node) | {node})):
            if n in vals:
                continue
            d = self.graph.nodes[n]
            if d['op'] == 'input':
                vals[n] = self.input_values[self.inputs.index(n)]
            elif 'param' in d:
                vals[n] = d['param']._data._data
            elif d['op'] == 'constant':
                vals[n] = d['value']
            else:
                from .. import ops
                args = [vals[s] if s is not None else v for _, s, v in arguments(self.graph, n)]
                vals[n] = _onp.asarray(ops.get(d['op']).impl(*args, **(d.get('attrs') or {})))
        return vals[node]

    # ---------------------------------------------------------------- nodes
    def _add(self, op, shape, dtype, **attrs):
        n = self._next
        self._next += 1
        self.graph.add_node(n, op=op, shape=tuple(int(d) for d in shape),
                            dtype=_onp.dtype(dtype).name, scope=scope.current_path(),
                            source=user_source(3), **attrs)
        return n

    def symbol(self, node):
        d = self.graph.nodes[node]
        s = Symbol.__new__(Symbol)
        s._data = SymRef(node, d['shape'], d['dtype'], self)
        s._node = None
        return s

    def input(self, name, shape, dtype):
        n = self._add('input', shape, dtype, name=name, attrs={})
        self.inputs.append(n)
        return self.symbol(n)

    def param(self, p):
        """The symbol for a Parameter (one node per Parameter per trace)."""
        entry = self.params.get(id(p))
        if entry is None:
            from ..gluon.parameter import Constant
            kind = 'constant' if isinstance(p, Constant) else 'param'
            data = p._data
            n = self._add(kind, data.shape, data.dtype, param=p, name=p.name, attrs={})
            entry = (p, self.symbol(n), n)
            self.params[id(p)] = entry
        return entry[1]

    def constant(self, value):
        arr = value._data if isinstance(value, NDArray) else _onp.asarray(value)
        n = self._consts.get(id(arr))
        if n is None:
            n = self._add('constant', arr.shape, arr.dtype, value=arr, attrs={})
            self._consts[id(arr)] = n
            self._keep.append(arr)
        return n

    # ---------------------------------------------------------------- the hook
    def hook(self, op, args, attrs):
        if not any(type(a) is Symbol for a in args) and not op.nondeterministic:
            return NotImplemented          # all concrete: compute now (a constant)
        if op.name in ('getitem', 'setitem') and any(
                type(a) is Symbol and a.dtype == _onp.bool_ for a in args[1:]):
            raise GraphBreak('boolean-mask indexing has a data-dependent shape',
                             user_source(3))
        try:
            spec = op.spec(*args, **attrs)
        except ShapeError as e:
            raise type(e)(f'{e}{scope.where()}') from None
        edges, scalars = [], {}
        for pos, a in enumerate(args):
            if type(a) is Symbol:
                if a._data.trace is not self:
                    raise TracerError(f'{op.name}: an array traced in another hybridized call '
                                      f'leaked into this one (stored on a block during forward?)')
                edges.append((a._data.node, pos))
            elif isinstance(a, (NDArray, _onp.ndarray, list, tuple)):
                edges.append((self.constant(a), pos))
            else:
                scalars[pos] = a
        n = self._add(op.name, spec.shape, spec.dtype, attrs=dict(attrs), scalars=scalars)
        for src, pos in edges:
            self.graph.add_edge(src, n, pos=pos)
        return self.symbol(n)


# ------------------------------------------------------------------ activation
current = None


class tracing:
    """``with tracing(trace):`` routes every op on symbols into ``trace``."""

    def __init__(self, trace):
        self.trace = trace

    def __enter__(self):
        global current
        self._saved = current, dispatch.trace_hook
        current = self.trace
        dispatch.trace_hook = self.trace.hook
        return self.trace

    def __exit__(self, *exc):
        global current
        current, dispatch.trace_hook = self._saved


def ops_nondeterministic(name):
    from .. import ops
    return name in ops.OPS and ops.OPS[name].nondeterministic


def spec_of_node(graph, n):
    d = graph.nodes[n]
    return Spec(d['shape'], _onp.dtype(d['dtype']))
