"""The hybridized call path: one entry per input signature.

``call(block, args, kwargs)`` looks the signature up in the block's cache;
a miss traces ``forward`` into a graph (``GraphEntry``), or, when the trace
hits a graph break, records the break and runs ``forward`` eagerly with
every child still hybridized (``EagerEntry``).  A Sequential whose trace
breaks is split into maximal runs of traceable children, each compiled as
one unit (``SegmentedEntry``).

Graphs run on the reference interpreter for now.  Under
``autograd.record()`` a graph call is one tape node per output, whose
backward runs the backward graph built from the registry's gradient rules.
"""
import warnings

import numpy as _onp

from codegen.passes import PassContext, optimize
from tracer import autograd, config, scope
from tracer.errors import TracerError
from tracer.graph.backward import build_backward
from tracer.graph.interpreter import Program
from tracer.graph.trace import GraphBreak, Symbol, Trace, tracing
from tracer.ndarray import NDArray, wrap

MAX_RECOMPILES = 8
_warned_sites = set()


class FullGraphError(TracerError):
    """``hybridize(fullgraph=True)`` and the forward has a graph break."""


class GraphBreakWarning(UserWarning):
    """A hybridized forward needed an array's value; that block runs eagerly."""


# ------------------------------------------------------------------ signatures
def flatten(obj, leaves):
    """Structure of ``obj`` with arrays replaced by slots appended to ``leaves``."""
    if isinstance(obj, (NDArray, _onp.ndarray)):
        leaves.append(obj)
        return '*'
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(flatten(o, leaves) for o in obj))
    if isinstance(obj, dict):
        return ('dict', tuple((k, flatten(v, leaves)) for k, v in sorted(obj.items())))
    try:
        hash(obj)
    except TypeError:
        raise TracerError(f'hybridized blocks take arrays, tuples, lists, dicts and hashable '
                          f'constants as arguments, not {type(obj).__name__}') from None
    return ('const', obj)


def unflatten(tree, leaves):
    it = iter(leaves)

    def build(t):
        if t == '*':
            return next(it)
        kind, body = t
        if kind == 'const':
            return body
        if kind == 'dict':
            return {k: build(v) for k, v in body}
        items = [build(b) for b in body]
        return tuple(items) if kind == 'tuple' else items
    return build(tree)


def _mode_key():
    from tracer.gluon.block import mode_version
    return (autograd.is_training(), autograd.is_recording(), mode_version[0])


def signature(args, kwargs):
    leaves = []
    tree = flatten((args, kwargs), leaves)
    specs = tuple((tuple(a.shape), a.dtype.str) for a in leaves)
    return (tree, specs, _mode_key()), leaves


def _describe_change(old, new):
    (t0, s0, m0), (t1, s1, m1) = old, new
    if t0 != t1:
        return 'the structure or constant arguments of the inputs'
    if m0 != m1:
        return 'training/recording mode'
    for i, (a, b) in enumerate(zip(s0, s1)):
        if a != b:
            return f'input {i}: shape/dtype {a} -> {b}'
    return 'input signature'


# ------------------------------------------------------------------ entries
class StaleGraph(Exception):
    """A value folded into the graph changed: the signature must retrace."""


class GuardFailed(Exception):
    """A speculated branch went the other way for these inputs."""


MAX_VARIANTS = 8


class GraphEntry:
    """A traced and optimized graph for one signature, run by the interpreter."""
    kind = 'graph'

    def __init__(self, block, trace, out_tree, out_nodes, updates):
        self.block_name = type(block).__name__
        traced = trace.graph
        traced.graph.update(inputs=list(trace.inputs), outputs=list(out_nodes),
                            updates=[n for _, n in updates],
                            guards=[n for n, _, _ in trace.guards])
        self.guard_values = [v for _, v, _ in trace.guards]
        self.guard_sources = [s for _, _, s in trace.guards]
        self.traced = traced
        self.folded = []                # (Parameter, version) baked into constants
        ctx = PassContext(freeze=block._freeze and not autograd.is_recording(),
                          param_value=self._param_value, disabled=block._disabled_passes)
        self.graph, self.reports = optimize(traced, ctx)
        g = self.graph.graph
        self.inputs, self.outputs = list(g['inputs']), list(g['outputs'])
        self.out_tree = out_tree
        self.updates = [(p, n) for (p, _), n in zip(updates, g['updates'])]
        self.params = [(d['param'], n) for n, d in self.graph.nodes(data=True)
                       if 'param' in d]
        self.program = Program(self.graph, self.inputs,
                               self.outputs + list(g['updates']) + list(g['guards']))
        self._backward = {}
        self.native, self.native_error = None, None
        self._train = {}
        if config.native_enabled():
            self._compile_native(block)

    def _compile_native(self, block):
        from codegen.lower.irutil import LoweringError

        from .executable import Executable
        try:
            self.native = Executable(self.graph, name=type(block).__name__.lower())
        except LoweringError as e:            # an op or form without a lowering yet
            self.native_error = str(e)
        except Exception as e:                # a code generator bug must not stop the user
            self.native_error = f'{type(e).__name__}: {e}'
            warnings.warn(f'native compilation of {type(block).__name__} failed, running its '
                          f'graph on the interpreter: {self.native_error}', stacklevel=6)

    def _param_value(self, d):
        p = d['param']
        self.folded.append((p, p._version))
        return p.data()._data

    def run(self, block, args, kwargs, leaves):
        for p, version in self.folded:
            if p._version != version:
                raise StaleGraph(p)
        values = [a._data if isinstance(a, NDArray) else _onp.asarray(a) for a in leaves]
        recording = autograd.is_recording()
        tracked = recording and (
            any(isinstance(a, NDArray) and a._node is not None for a in leaves) or
            any(p._data is not None and p._data._node is not None for p, _ in self.params))
        if tracked:
            training = self._training(self._wrt_nodes())
            if training is not None:
                outs, env = training.forward(values)
            else:
                outs, env = self.program.run(values, keep_env=True)
                env = _ProgramEnv(self.program.slot, env)
        elif self.native is not None:
            outs, env = self._run_native(values), None
        else:
            outs, env = self.program.run(values), None
        nout = len(self.outputs)
        if self.guard_values:
            for v, expected in zip(outs[nout + len(self.updates):], self.guard_values):
                if bool(v) != expected:
                    raise GuardFailed()
        for (p, _), v in zip(self.updates, outs[nout:]):
            p._data._data[...] = v
        results = [wrap(o) for o in outs[:nout]]
        if tracked:
            self._record(leaves, env, results)
        return unflatten(self.out_tree, results)

    def fast_path(self):
        """A closure for ``call_fast``, or None when this entry needs the full path
        (no native code, state updates, non-array outputs, folded parameters)."""
        exe = self.native
        if exe is None or self.updates or self.folded or exe.gather_is_trivial is False:
            return None
        if self.out_tree != '*' and not (isinstance(self.out_tree, tuple) and
                                         self.out_tree[0] == 'tuple' and
                                         all(t == '*' for t in self.out_tree[1])):
            return None
        single = self.out_tree == '*'
        call_native, specs, params = exe.call, exe.out_specs, exe.params
        empty = _onp.empty
        from tracer.gluon.parameter import data_epoch
        cached = [data_epoch[0], [p._data._data for p in params]]
        nout = len(self.outputs)
        guards = list(enumerate(self.guard_values, nout))
        if single and len(self.inputs) == 1 and not guards:
            shape, dtype = specs[0]

            def fast1(args):                       # the common case, kept minimal
                if cached[0] != data_epoch[0]:
                    cached[0], cached[1] = data_epoch[0], [p._data._data for p in params]
                out = empty(shape, dtype)
                try:
                    call_native(args[0]._data, *cached[1], out)
                except ValueError:
                    return None
                r = _new(NDArray)
                r._data = out
                r._node = None
                return r
            return fast1

        def fast(args):
            if cached[0] != data_epoch[0]:
                cached[0], cached[1] = data_epoch[0], [p._data._data for p in params]
            outs = [empty(s, d) for s, d in specs]
            try:
                call_native(*[a._data for a in args], *cached[1], *outs)
            except ValueError:
                return None                      # e.g. a non-contiguous view: full path
            for k, expected in guards:
                if bool(outs[k]) != expected:
                    return None                  # another branch: the full path retraces
            res = []
            for o in outs[:nout]:
                r = _new(NDArray)
                r._data, r._node = o, None
                res.append(r)
            return res[0] if single else tuple(res)
        return fast

    def _run_native(self, values):
        try:
            return self.native.run(values)
        except ValueError:
            # the native entry refused an array: a non-contiguous or misaligned view
            # is copied; anything else gets an error naming the block
            fixed = [_onp.ascontiguousarray(v) for v in values]
            try:
                return self.native.run(fixed)
            except ValueError as e:
                from tracer.errors import ShapeError
                raise ShapeError(f'{self.block_name}{scope.where()}: {e}') from None

    # ------------------------------------------------------------ autograd
    def _wrt_nodes(self):
        return list(self.inputs) + [n for _, n in self.params]

    def _training(self, wrt_nodes):
        """Native forward-with-saved-values and backward executables (None:
        no native code; the interpreter and the backward graph's Program run)."""
        if self.native is None:
            return None
        key = tuple(wrt_nodes)
        if key not in self._train:
            try:
                self._train[key] = _Training(self, wrt_nodes)
            except Exception as e:                 # LoweringError or a code generator bug
                self._train[key] = None
                self.native_error = f'training: {type(e).__name__}: {e}'
        return self._train[key]

    def _record(self, leaves, env, results):
        wrt_arrays = [a for a in leaves] + [p._data for p, _ in self.params]
        wrt_nodes = self._wrt_nodes()
        parents = tuple(a._node if isinstance(a, NDArray) else None for a in wrt_arrays)
        if not any(p is not None for p in parents):
            return
        for k, r in enumerate(results):
            if r.dtype.kind != 'f':
                continue
            r._node = autograd.Node(_GraphGrad(self, env, k, wrt_nodes, parents), {}, (),
                                    r._data, parents)

    def backward_graph(self, wrt_nodes, k):
        """The backward graph of output ``k`` alone: outputs the loss does not
        use get no (zero) cotangent, which could turn into 0 * inf = NaN."""
        key = (tuple(wrt_nodes), k)
        bwd = self._backward.get(key)
        if bwd is None:
            bwd = build_backward(self.graph, [self.outputs[k]], wrt_nodes)
            live = [n for n in bwd.outputs if n is not None]
            bwd.graph.graph.update(inputs=list(bwd.inputs), outputs=live, updates=[])
            bwd.graph, bwd.reports = optimize(bwd.graph, PassContext())
            bwd.program = Program(bwd.graph, bwd.inputs, bwd.graph.graph['outputs'])
            self._backward[key] = bwd
        return bwd


class _GraphGrad:
    """Tape op for output ``k`` of a graph call: runs the backward graph."""
    name = 'hybridized_graph'
    nondiff = ()

    def __init__(self, entry, env, k, wrt_nodes, parents):
        self.entry, self.env, self.k = entry, env, k
        self.wrt_nodes, self.parents = wrt_nodes, parents

    def grad(self, ctx, g):
        entry = self.entry
        bwd = entry.backward_graph(self.wrt_nodes, self.k)
        values = [self.env[ref] if kind == 'saved' else g._data for kind, ref in bwd.input_keys]
        training = entry._training(self.wrt_nodes)
        outs = iter(training.bwd[self.k].run(values) if training is not None
                    else bwd.program.run(values))
        grads = []
        for n, parent in zip(bwd.outputs, self.parents):
            grads.append(wrap(next(outs)) if n is not None else None)
        return tuple(grads)


def graph_entries(block):
    """Every compiled graph a block's calls use: its own entries, the
    specializations of guarded ones, the segments of a split Sequential and,
    below a forward that runs eagerly, its children's."""
    for _, b in block._walk():
        for e in b._cached.values():
            stack = [e]
            while stack:
                e = stack.pop()
                if e.kind == 'graph':
                    yield e
                elif e.kind == 'variants':
                    stack.extend(e.entries)
                for step in getattr(e, 'plan', None) or []:
                    if type(step) is _Run:
                        stack.extend(step._cached.values())


class _ProgramEnv:
    """Forward values kept by the interpreter, looked up by node."""

    def __init__(self, slot, env):
        self.slot, self.env = slot, env

    def __getitem__(self, node):
        return self.env[self.slot[node]]


class _Training:
    """Compiled training for one entry: a forward that also returns the values
    the backward graph reads, and the compiled backward graph."""

    def __init__(self, entry, wrt_nodes):
        from tracer.graph.interpreter import SOURCE_OPS
        from tracer.graph.ir import copy_graph

        from .executable import Executable
        g = entry.graph
        bwds = [entry.backward_graph(wrt_nodes, k)
                if _onp.dtype(g.nodes[o]['dtype']).kind == 'f' else None   # as _record
                for k, o in enumerate(entry.outputs)]
        saved = list(dict.fromkeys(ref for bwd in bwds if bwd is not None
                                   for kind, ref in bwd.input_keys if kind == 'saved'))
        self.sources = [n for n in saved if g.nodes[n]['op'] in SOURCE_OPS]
        self.computed = [n for n in saved if n not in self.sources]
        fwd = copy_graph(g)
        for key in ('groups', 'memory'):
            fwd.graph.pop(key, None)
        self.n_out = len(g.graph['outputs'])
        fwd.graph['outputs'] = list(g.graph['outputs']) + self.computed
        keep_nodes = frozenset({'fold', 'simplify', 'cse', 'dce'})   # node ids must stay
        fwd, _ = optimize(fwd, PassContext(disabled=keep_nodes))
        name = entry.block_name.lower()
        self.fwd = Executable(fwd, name=f'{name}_train')
        self.bwd = [Executable(bwd.graph, name=f'{name}_grad{k}') if bwd is not None else None
                    for k, bwd in enumerate(bwds)]
        self.inputs = list(g.graph['inputs'])
        self.graph = g

    def forward(self, values):
        outs = self.fwd.run(values)
        n, k = self.n_out, len(self.computed)
        env = dict(zip(self.computed, outs[n:n + k]))
        for node in self.sources:
            d = self.graph.nodes[node]
            if node in self.inputs:
                env[node] = values[self.inputs.index(node)]
            elif 'param' in d:
                env[node] = d['param']._data._data
            else:
                env[node] = d['value']
        return outs[:n] + outs[n + k:], env


class Variants:
    """Graphs specialized on the branches the data took (guards), most
    recently used first.  A call whose guards all hold uses that graph; when
    none fits, the forward is traced again along the new path (up to
    MAX_VARIANTS graphs, then it runs eagerly)."""
    kind = 'variants'

    def __init__(self, entry):
        self.entries = [entry]
        self.exhausted = False

    def run(self, block, args, kwargs, leaves):
        for i, entry in enumerate(self.entries):
            try:
                out = entry.run(block, args, kwargs, leaves)
            except GuardFailed:
                continue
            if i:
                self.entries.insert(0, self.entries.pop(i))
            return out
        if not self.exhausted and len(self.entries) < MAX_VARIANTS:
            entry = _trace_entry(block, args, kwargs, leaves, push=False)
            if entry.kind == 'graph' and entry.guard_values:
                self.entries.insert(0, entry)
                return entry.run(block, args, kwargs, leaves)
        if not self.exhausted:
            self.exhausted = True
            warnings.warn(f'{type(block).__name__}: the branches its forward takes vary too much '
                          f'({len(self.entries)} specialized graphs); inputs that fit none of '
                          f'them run the forward eagerly', stacklevel=5)
        return block.forward(*args, **kwargs)


class EagerEntry:
    """The forward broke: run Python eagerly (children stay hybridized)."""
    kind = 'eager'

    def __init__(self, brk):
        self.brk = brk

    def run(self, block, args, kwargs, leaves):
        return block.forward(*args, **kwargs)


class SegmentedEntry:
    """A Sequential whose trace broke: maximal runs of children compiled as
    one unit each, around the child that breaks (which runs its own
    hybridized call, so its children stay compiled).  A run that breaks
    later splits the same way."""
    kind = 'segmented'

    def __init__(self, brk, k):
        self.brk, self.k = brk, k
        self.plan = None

    def run(self, seq, args, kwargs, leaves):
        if self.plan is None:
            layers, k = seq._layers, self.k
            owner = getattr(seq, 'owner', seq)
            self.plan = ([_Run(owner, layers[:k])] if k > 0 else []) + [layers[k]] + \
                ([_Run(owner, layers[k + 1:])] if k + 1 < len(layers) else [])
        x = args
        for step in self.plan:
            x = call(step, x, {}, push=False) if type(step) is _Run else step(*x)
            x = (x,)
        return x[0]


def _broken_child(brk, seq):
    """Index in ``seq._layers`` of the child whose forward broke, or None."""
    owner = getattr(seq, 'owner', seq)
    stack = brk.stack
    for i, b in enumerate(stack[:-1]):
        if b is owner:
            child = stack[i + 1]
            for j, layer in enumerate(seq._layers):
                if layer is child:
                    return j
    return None


class _Run:
    """A slice of a Sequential's children, compiled as one unit."""

    def __init__(self, owner, layers):
        self.owner, self._layers = owner, list(layers)
        self._cached = {}
        self._fullgraph = owner._fullgraph
        self._freeze = owner._freeze
        self._disabled_passes = owner._disabled_passes
        self._recompiles = 0

    def forward(self, *x):
        for layer in self._layers:
            x = (layer(*x),)
        return x[0]


# ------------------------------------------------------------------ the call path
_new = object.__new__
_state = autograd.state
_mode_version = None


def call_fast(block, args):
    """The per-call path for the common case: array arguments, not
    recording, a native graph already compiled for this signature.  A key
    of shapes and dtypes, one dict lookup, one native call that validates
    every array, fresh outputs wrapped as NDArrays.  Anything else (first
    call, recording, hooks, odd arguments, a refused array) takes ``call``."""
    global _mode_version
    if _mode_version is None:
        from tracer.gluon.block import mode_version
        _mode_version = mode_version
    try:
        if len(args) == 1:
            d = args[0]._data
            last = block._last                   # one-entry cache: the usual steady state
            if last is not None and last[0] == d.shape and last[1] is d.dtype and \
                    last[2] is _state.training and last[3] == _mode_version[0]:
                out = last[4](args)
                if out is not None:
                    return out
            key = (d.shape, d.dtype, _state.training, _mode_version[0])
        else:
            key = (_state.training, _mode_version[0]) + tuple(
                [(a._data.shape, a._data.dtype) for a in args])
        fast = block._fast.get(key)
    except (AttributeError, TypeError):          # not all NDArrays
        return call(block, args, {})
    if fast is None:
        out = call(block, args, {})
        entry = block._cached.get(signature(args, {})[0])
        if entry is not None:
            if entry.kind == 'variants':
                entry = entry.entries[0]
            fast = entry.fast_path() if entry.kind == 'graph' else None
            block._fast[key] = False if fast is None else fast    # False: always the full path
        return out
    if fast is False:
        return call(block, args, {})
    if len(args) == 1:
        object.__setattr__(block, '_last', key + (fast,))
    out = fast(args)
    return call(block, args, {}) if out is None else out


def call(block, args, kwargs, push=True):
    """Run a hybridized block (or a _Run) on concrete inputs."""
    key, leaves = signature(args, kwargs)
    entry = block._cached.get(key)
    if entry is None:
        entry = _trace(block, args, kwargs, key, leaves, push)
    if push:
        scope.push(block)
    try:
        return entry.run(block, args, kwargs, leaves)
    except StaleGraph as stale:
        p = stale.args[0]
        if p.grad_req != 'null':
            warnings.warn(f'parameter {p.name!r} changed after hybridize(freeze=True) folded it '
                          f'into the graph; re-tracing (hybridize() again without freeze to '
                          f'train)', stacklevel=3)
        del block._cached[key]
        block._fast.clear()
        object.__setattr__(block, '_last', None)
        return call(block, args, kwargs, push=False) if push else call(block, args, kwargs, push)
    finally:
        if push:
            scope.pop()


def _input_names(n):
    return ['data'] if n == 1 else [f'data{i}' for i in range(n)]


def _trace(block, args, kwargs, key, leaves, push):
    """Trace ``block.forward`` for this signature and cache the entry."""
    cache = block._cached
    if cache:
        block._recompiles += 1
        if block._recompiles == MAX_RECOMPILES:
            last = next(reversed(cache))
            warnings.warn(f'{type(block).__name__} has been traced {MAX_RECOMPILES + 1} times; '
                          f'the last change was {_describe_change(last, key)}. It keeps working, '
                          f'but each new signature costs a trace.', stacklevel=4)
    entry = _trace_entry(block, args, kwargs, leaves, push)
    if entry.kind == 'graph' and entry.guard_values:
        entry = Variants(entry)
    cache[key] = entry
    return entry


def _trace_entry(block, args, kwargs, leaves, push):
    trace = Trace()
    trace.speculate = not block._fullgraph and config.speculation_enabled()
    trace.input_values = [a._data if isinstance(a, NDArray) else _onp.asarray(a) for a in leaves]
    names = _input_names(len(leaves))
    syms = [trace.input(nm, a.shape, a.dtype) for nm, a in zip(names, leaves)]
    sargs, skw = unflatten(flatten((args, kwargs), []), syms)
    if push:
        scope.push(block)
    try:
        with tracing(trace):
            out = block.forward(*sargs, **skw)
    except GraphBreak as brk:
        return _fallback(block, brk)
    finally:
        if push:
            scope.pop()
    return _graph_entry(block, trace, out)


def _graph_entry(block, trace, out):
    out_leaves = []
    out_tree = flatten(out, out_leaves)
    out_nodes = []
    for o in out_leaves:
        if type(o) is not Symbol:
            o = trace.symbol(trace.constant(o))
        out_nodes.append(o.node)
    updates = [(p, sym.node) for p, sym, orig in trace.params.values() if sym.node != orig]
    return GraphEntry(block, trace, out_tree, out_nodes, updates)


def _fallback(block, brk):
    name = type(block.owner if type(block) is _Run else block).__name__
    if block._fullgraph:
        raise FullGraphError(f'{name} was hybridized with fullgraph=True but its forward has '
                             f'a {brk}') from None
    if hasattr(block, '_layers') and hasattr(block, 'forward'):
        k = _broken_child(brk, block)
        if k is not None and _is_sequential(block):
            return SegmentedEntry(brk, k)
    if brk.source not in _warned_sites:
        _warned_sites.add(brk.source)
        filename, _, line = brk.source.rpartition(':')
        warnings.warn_explicit(f'{brk}; {name}.forward runs eagerly there (its hybridized '
                               f'children stay compiled). hybridize(fullgraph=True) makes this '
                               f'an error.', GraphBreakWarning, filename or '<unknown>',
                               int(line) if line.isdigit() else 0)
    return EagerEntry(brk)


def _is_sequential(block):
    if type(block) is _Run:
        return True
    from tracer.gluon.nn.containers import HybridSequential, Sequential
    return type(block).forward in (Sequential.forward, HybridSequential.forward)
