"""A compiled graph: native code for one signature, called once per forward.

``Executable(graph)`` lowers the optimized graph (``codegen.lower``), JITs
it (``runtime.jit``) and binds the module's CPython entry to a ``self``
array of static pointers (constants, the workspace arena, the random-number
callback, host symbols).  ``run(inputs, params)`` allocates fresh output
arrays (a returned array is never overwritten later), makes one native
call that validates every array before touching it, and returns the
outputs.
"""
import ctypes

import numpy as _onp

from codegen.lower.module import HOST_SYMBOLS, describe_graph, lower, plan_layout
from tracer import ops

from . import jit, pyarray

_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)


class Executable:
    def __init__(self, graph, name='graph', use_cache=True):
        cpu, features, omp = jit.host()
        self.threads = jit.threads() if omp else 1
        self.graph = graph
        self._name, self._features = name, features
        self._lowered = None
        layout = self.layout = plan_layout(graph)
        # the cache key is the graph's description, so a warm cache skips
        # lowering as well as LLVM
        self.engine = jit.Engine(describe_graph(graph, name, features, self.threads),
                                 lambda: self.ir_text, use_cache=use_cache)
        statics = _onp.zeros(layout.n_slots, _onp.uint64)
        self._keep = []
        for slot, node in layout.constants:
            arr = _onp.ascontiguousarray(graph.nodes[node]['value'])
            if arr.size == 0:
                arr = _onp.zeros(1, arr.dtype)
            self._keep.append(arr)
            statics[slot] = arr.ctypes.data
        arena = _onp.zeros(layout.workspace_bytes + 64, _onp.uint8)
        base = arena.ctypes.data
        base += (-base) % 64
        self._keep.append(arena)
        for slot, offset, _ in layout.workspace:
            statics[slot] = base + offset
        if layout.callback_slot is not None:
            self._callback = _CALLBACK(self._random)
            statics[layout.callback_slot] = ctypes.cast(self._callback, ctypes.c_void_p).value
        host = pyarray.host_symbols()
        for sym in HOST_SYMBOLS:
            statics[layout.host_slots[sym]] = host[sym]
        self._statics = statics
        self.call, self._methoddef = jit.fastcall(self.engine, f'{name}_fast', statics)
        self.params = [graph.nodes[n]['param'] for _, role, n in layout.args if role == 'param']
        self.out_specs = [(tuple(graph.nodes[n]['shape']), _onp.dtype(graph.nodes[n]['dtype']))
                          for _, role, n in layout.args if role == 'output']
        roots = list(graph.graph['outputs']) + list(graph.graph['updates']) + \
            list(graph.graph.get('guards', []))
        out_nodes = [n for _, role, n in layout.args if role == 'output']
        self.gather = []          # per graph output: ('out', k) or ('node', n)
        for n in roots:
            self.gather.append(('out', out_nodes.index(n)) if n in out_nodes else ('node', n))
        self.gather_is_trivial = len(self.gather) == len(out_nodes) and all(
            kind == 'out' and k == i for i, (kind, k) in enumerate(self.gather))

    def run(self, inputs, params=None):
        """Outputs (then updates) of the graph for these input arrays."""
        if params is None:
            params = [p._data._data for p in self.params]
        outs = [_onp.empty(shape, dtype) for shape, dtype in self.out_specs]
        self.call(*inputs, *params, *outs)
        if self.gather_is_trivial:
            return outs
        return [outs[ref] if kind == 'out' else self._source_value(ref, inputs, params)
                for kind, ref in self.gather]

    def _source_value(self, n, inputs, params):
        """An output that is an input, a parameter or a constant: a fresh copy."""
        d = self.graph.nodes[n]
        gg = self.graph.graph
        if n in gg['inputs']:
            return _onp.array(inputs[gg['inputs'].index(n)])
        if 'param' in d:
            return _onp.array(d['param']._data._data)
        return _onp.array(d['value'])

    def _random(self, node, address):
        d = self.graph.nodes[node]
        value = _onp.asarray(ops.get(d['op']).impl(**(d.get('attrs') or {})), dtype=d['dtype'])
        if value.size:
            buf = (ctypes.c_char * value.nbytes).from_address(address)
            _onp.frombuffer(buf, dtype=value.dtype).reshape(value.shape)[...] = value

    # ------------------------------------------------------------ introspection
    @property
    def lowered(self):
        """The LLVM module (built on first use when the code came from the cache)."""
        if self._lowered is None:
            self._lowered = lower(self.graph, self._name, self._features, self.threads)
        return self._lowered

    @property
    def ir_text(self):
        return str(self.lowered.module)

    def kernels(self):
        """One dict per kernel: its fusion group, LLVM IR and assembly."""
        asm = self.engine.assembly(self.ir_text)
        out = []
        for k in self.lowered.kernels:
            ir_text = '\n'.join(str(f) for f in self.lowered.module.functions
                                 if f.name == k.name or f.name.startswith(k.name + '_'))
            out.append({'name': k.name, 'group': k.group, 'kind': k.kind, 'extent': k.extent,
                        'ir': ir_text, 'asm': _function_asm(asm, k.name)})
        return out


def _function_asm(asm, name):
    """The assembly of a kernel: its function and the helpers named after it
    (``<name>_mm``...), each from its label to its ``.size`` directive."""
    out, inside = [], False
    for line in asm.splitlines():
        label = line.split(':')[0].strip('"') if line and not line[0].isspace() else None
        if label is not None and (label == name or label.startswith(name + '_')):
            inside = True
        if inside:
            out.append(line)
            if line.strip().startswith('.size'):
                inside = False
    return '\n'.join(out)
