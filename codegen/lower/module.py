"""Lower an optimized graph (fusion groups + memory plan) to one LLVM module.

The module holds one kernel per fusion group, a ``run(table)`` function
that calls them in order (through OpenMP's ``GOMP_parallel`` for kernels
with enough work), and a CPython ``METH_FASTCALL`` entry that validates
every argument array natively, fills the buffer table and calls ``run``:
one hybridized forward is one native call.

Buffer table: slot 0 points at an i32 status word; the other slots hold
the data pointers of inputs, parameters, outputs (arguments of the entry),
literal constants, workspace buffers and the host callback (statics, taken
from the ``self`` array the runtime binds to the entry, so the object code
holds no process-specific address and can be cached on disk).
"""
import re
from dataclasses import dataclass, field

import numpy as _onp
from llvmlite import ir

from tracer.graph.ir import arguments, roots
from tracer.ops.registry import Kind

from .irutil import I8, I32, I64, PTR, VOID, Loop, LoweringError, stack
from .kernels import Kernel, emit_elementwise, emit_reduction
from .movement import emit_movement, emit_opaque

# Static slots after the buffers: objects from the host process.
HOST_SYMBOLS = ('ndarray_type', 'PyErr_SetString', 'PyExc_ValueError', 'PyExc_IndexError')
# Work below which a kernel runs on one thread (waking a thread costs ~10-50 us):
# element-operations for loops, floating-point operations for matmuls.
PARALLEL_WORK = {'matmul': 1 << 23}
PARALLEL_WORK_DEFAULT = 1 << 18


@dataclass
class Layout:
    n_slots: int = 1
    slot_of: dict = field(default_factory=dict)      # node -> slot
    args: list = field(default_factory=list)         # (slot, role, node) in entry order
    constants: list = field(default_factory=list)    # (slot, node)
    workspace: list = field(default_factory=list)    # (slot, offset, nbytes)
    workspace_bytes: int = 0
    callback_slot: int = None
    host_slots: dict = field(default_factory=dict)   # HOST_SYMBOLS name -> slot
    passthrough: list = field(default_factory=list)  # output positions copied by the host

    def new_slot(self):
        self.n_slots += 1
        return self.n_slots - 1


@dataclass
class Lowered:
    module: ir.Module
    name: str
    kernels: list
    layout: Layout
    run_name: str
    fast_name: str


def vector_width(features):
    """f32 lanes per vector register on this CPU."""
    return 16 if features.get('avx512f') else 8 if features.get('avx2') else 4


def plan_layout(graph):
    if 'groups' not in graph.graph or 'memory' not in graph.graph:
        raise LoweringError('native code needs the fusion and memory passes (disabled)')
    layout = Layout()
    groups = graph.graph['groups']
    mem = graph.graph['memory']
    gg = graph.graph
    for n in gg['inputs']:
        s = layout.slot_of[n] = layout.new_slot()
        layout.args.append((s, 'input', n))
    for n, d in sorted(graph.nodes(data=True)):
        if 'param' in d:
            s = layout.slot_of[n] = layout.new_slot()
            layout.args.append((s, 'param', n))
    for n, d in sorted(graph.nodes(data=True)):
        if d['op'] == 'constant' and 'value' in d:
            s = layout.slot_of[n] = layout.new_slot()
            layout.constants.append((s, n))
    buf_slot = {}
    offset = 0
    for b, size in enumerate(mem['buffers']):
        s = buf_slot[b] = layout.new_slot()
        layout.workspace.append((s, offset, size))
        offset += (size + 63) // 64 * 64
    layout.workspace_bytes = offset
    group_roots = {g['root'] for g in groups.values()}
    seen_out = set()
    for i, n in enumerate(roots(graph)):
        if n in group_roots and n not in seen_out and mem['assign'][n][0] == 'output':
            s = layout.slot_of[n] = layout.new_slot()
            layout.args.append((s, 'output', n))
            seen_out.add(n)
        else:
            layout.passthrough.append(i)
    for g in groups.values():                  # workspace and alias roots
        r = g['root']
        kind, ref = mem['assign'][r]
        if kind == 'workspace':
            layout.slot_of[r] = buf_slot[ref]
    for g in groups.values():
        r = g['root']
        kind, ref = mem['assign'][r]
        if kind == 'alias':
            layout.slot_of[r] = layout.slot_of[ref]
    if any(g['kind'] == Kind.OPAQUE.value for g in groups.values()):
        layout.callback_slot = layout.new_slot()
    for name in HOST_SYMBOLS:
        layout.host_slots[name] = layout.new_slot()
    return layout


def _codegen_version():
    """A digest of this package's source: cached object code from another
    version of the code generator is never reused."""
    import hashlib
    import pathlib
    h = hashlib.sha256()
    for f in sorted(pathlib.Path(__file__).parent.glob('*.py')):
        h.update(f.read_bytes())
    return h.hexdigest()


CODEGEN_VERSION = _codegen_version()


def describe_graph(graph, name, features, threads):
    """Everything the emitted code depends on, as text (the disk-cache key):
    nodes, edges, fusion groups, the memory plan, vector width and threads.
    Constants and parameters are buffers, not code, so their values are not
    part of it."""
    nodes = [(n, d['op'], repr(sorted((d.get('attrs') or {}).items())), tuple(d['shape']),
              d['dtype'], repr(sorted(d.get('scalars', {}).items())), 'param' in d,
              'value' in d) for n, d in sorted(graph.nodes(data=True))]
    edges = sorted((u, v, e['pos']) for u, v, e in graph.edges(data=True))
    groups = [(i, g['kind'], g['root'], g['anchor'], tuple(g['nodes']), tuple(g['inputs']))
              for i, g in sorted(graph.graph['groups'].items())]
    mem = graph.graph['memory']
    plan = (tuple(mem['buffers']), tuple(sorted((k, repr(v)) for k, v in mem['assign'].items())))
    io = (tuple(graph.graph['inputs']), tuple(graph.graph['outputs']),
          tuple(graph.graph['updates']))
    return repr((CODEGEN_VERSION, name, vector_width(features or {}), threads, nodes, edges,
                 groups, plan, io))


def lower(graph, name='graph', features=None, threads=1):
    """The LLVM module for ``graph`` (after the fusion and memory passes)."""
    if 'groups' not in graph.graph or 'memory' not in graph.graph:
        raise LoweringError('lowering needs the fusion and memory passes')
    features = features or {}
    W = vector_width(features)
    module = ir.Module(name=name)
    layout = plan_layout(graph)
    kernels, seen, by_desc = [], {}, {}
    mem = graph.graph['memory']
    for gid in sorted(graph.graph['groups']):
        g = graph.graph['groups'][gid]
        if mem['assign'][g['root']][0] == 'alias':
            continue                             # a reshape view: no code
        desc = _describe(graph, g)
        twin = by_desc.get(desc)
        if twin is not None:                     # a repeated layer: reuse its kernel
            k = Kernel(twin.fn, gid, twin.kind, twin.extent, twin.work)
            k.operands = [0] + [layout.slot_of[n] for n in list(g['inputs']) + [g['root']]]
            if g['kind'] == Kind.OPAQUE.value:
                k.operands.append(layout.callback_slot)
            kernels.append(k)
            continue
        k = _emit_group(module, f'{name}_k{len(kernels)}', graph, gid, g, layout, W)
        by_desc[desc] = k
        # identical kernels (repeated layers) compile once: compare the IR text
        fns = [f for f in module.functions if f.name == k.name or f.name.startswith(k.name + '_')]
        text = _METADATA.sub('!M', '\n'.join(str(f) for f in fns).replace(k.name, 'K'))
        first = seen.get(text)
        if first is None:
            seen[text] = k
        else:
            for f in fns:
                del module.globals[f.name]
            k.fn, k.name = first.fn, first.name
        kernels.append(k)
    run_name = f'{name}_run'
    _emit_run(module, run_name, kernels, threads)
    fast_name = f'{name}_fast'
    _emit_fast_entry(module, fast_name, run_name, graph, layout)
    return Lowered(module, name, kernels, layout, run_name, fast_name)


_METADATA = re.compile(r'!\d+')


def _describe(graph, g):
    """Everything a group's kernel depends on, with node ids replaced by
    positions: equal descriptions emit identical code."""
    members = {n: j for j, n in enumerate(g['nodes'])}
    inputs = {n: j for j, n in enumerate(g['inputs'])}
    parts = [('in', tuple(graph.nodes[n]['shape']), graph.nodes[n]['dtype']) for n in g['inputs']]
    for n in g['nodes']:
        d = graph.nodes[n]
        args = tuple(('lit', repr(v)) if s is None else
                     ('m', members[s]) if s in members else ('x', inputs[s])
                     for _, s, v in arguments(graph, n))
        parts.append((d['op'], repr(sorted((d.get('attrs') or {}).items())), tuple(d['shape']),
                      d['dtype'], args, n == g['root'], n == g['anchor']))
    return repr((g['kind'], parts))


def _emit_group(module, kname, graph, gid, g, layout, W):
    """Emit one group's kernel against a *local* operand table: entry 0 is the
    status word, then the group's inputs and its output (and the callback),
    so repeated layers produce identical kernels."""
    operands = list(g['inputs']) + [g['root']]
    local = {n: i + 1 for i, n in enumerate(operands)}
    kind = g['kind']
    if kind == Kind.ELEMENTWISE.value:
        k = emit_elementwise(module, kname, graph, gid, g, local, W)
    elif kind == Kind.REDUCTION.value:
        k = emit_reduction(module, kname, graph, gid, g, local, W)
    elif kind == Kind.MATMUL.value:
        from .matmul_group import emit_matmul_group
        k = emit_matmul_group(module, kname, graph, gid, g, local, W)
    elif kind == Kind.MOVEMENT.value:
        k = emit_movement(module, kname, graph, gid, g, local, W)
    elif kind == Kind.OPAQUE.value:
        k = emit_opaque(module, kname, graph, gid, g, local, W, len(operands) + 1)
    else:
        raise LoweringError(f'no lowering for group kind {kind!r}')
    k.operands = [0] + [layout.slot_of[n] for n in operands]
    if kind == Kind.OPAQUE.value:
        k.operands.append(layout.callback_slot)
    return k


# ------------------------------------------------------------------ run()
def _emit_run(module, name, kernels, threads):
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR]), name)
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    table = fn.args[0]
    gomp = None
    workers = {}
    for k in kernels:
        local = stack(b, PTR, len(k.operands), f'{k.name}.operands')
        for i, slot in enumerate(k.operands):
            p = b.load(b.gep(table, [I64(slot)], source_etype=PTR), typ=PTR, align=8)
            b.store(p, b.gep(local, [I64(i)], source_etype=PTR), align=8)
        if threads > 1 and k.extent >= threads and \
                k.work >= PARALLEL_WORK.get(k.kind, PARALLEL_WORK_DEFAULT):
            if gomp is None:
                gomp = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I32, I32]),
                                   'GOMP_parallel')
            if k.name not in workers:
                workers[k.name] = _emit_worker(module, k)
            b.call(gomp, [workers[k.name], local, I32(threads), I32(0)])
        else:
            b.call(k.fn, [local, I64(0), I64(k.extent)])
    b.ret_void()
    return fn


def _emit_worker(module, k):
    """``worker(table)``: this OpenMP thread's share of the kernel's range."""
    tid_fn = module.globals.get('omp_get_thread_num') or ir.Function(
        module, ir.FunctionType(I32, []), 'omp_get_thread_num')
    nt_fn = module.globals.get('omp_get_num_threads') or ir.Function(
        module, ir.FunctionType(I32, []), 'omp_get_num_threads')
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR]), f'{k.name}_worker')
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    tid = b.sext(b.call(tid_fn, []), I64)
    nt = b.sext(b.call(nt_fn, []), I64)
    n = I64(k.extent)
    chunk = b.udiv(b.add(n, b.sub(nt, I64(1))), nt)
    if k.kind == 'elementwise' and k.extent >= 64:        # keep vector bodies whole
        chunk = b.and_(b.add(chunk, I64(15)), I64(-16))
    lo = b.mul(tid, chunk)
    hi = b.add(lo, chunk)
    lo = b.select(b.icmp_signed('<', lo, n), lo, n)
    hi = b.select(b.icmp_signed('<', hi, n), hi, n)
    with b.if_then(b.icmp_signed('<', lo, hi)):
        b.call(k.fn, [fn.args[0], lo, hi])
    b.ret_void()
    return fn


# ------------------------------------------------------------------ CPython entry
# PyArrayObject (numpy 2.x, 64-bit): verified at import by runtime.pyarray.
OB_TYPE, DATA, ND, DIMS, DESCR, FLAGS = 8, 16, 24, 32, 56, 64
DESCR_BYTEORDER, DESCR_TYPE_NUM = 26, 28
C_CONTIGUOUS_ALIGNED, WRITEABLE = 0x101, 0x400


def _field(b, obj, offset, typ):
    p = b.gep(obj, [I64(offset)], source_etype=I8)
    return b.load(p, typ=typ, align=1)


def _emit_fast_entry(module, name, run_name, graph, layout):
    """``PyObject* fast(PyObject* self, PyObject** args, Py_ssize_t nargs)``."""
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR, PTR, I64]), name)
    self_, args, nargs = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    fail = fn.append_basic_block('fail')
    statics = _field(b, self_, DATA, PTR)               # self is a uint64 numpy array

    def static(slot):
        index = I64(slot) if isinstance(slot, int) else slot
        return b.load(b.gep(statics, [index], source_etype=PTR), typ=PTR, align=8)

    errmsg = stack(b, PTR, 1, 'errmsg')
    errtype = stack(b, PTR, 1, 'errtype')
    b.store(static(layout.host_slots['PyExc_ValueError']), errtype, align=8)

    def check(cond, message, kind='PyExc_ValueError'):
        ok = fn.append_basic_block('ok')
        bad = fn.append_basic_block('bad')
        b.cbranch(cond, ok, bad)
        b.position_at_end(bad)
        b.store(_cstring(module, message), errmsg, align=8)
        b.store(static(layout.host_slots[kind]), errtype, align=8)
        b.branch(fail)
        b.position_at_end(ok)

    n_args = len(layout.args)
    check(b.icmp_signed('==', nargs, I64(n_args)),
          f'compiled graph: expected {n_args} arrays')
    tp = stack(b, PTR, layout.n_slots, 'table')
    with Loop(b, 1, layout.n_slots, name='copy') as i:
        b.store(static(i), b.gep(tp, [i], source_etype=PTR), align=8)
    status = stack(b, I32, 1, 'status')
    b.store(I32(0), status, align=4)
    b.store(status, tp, align=8)
    nd_type = static(layout.host_slots['ndarray_type'])
    # Per-argument expectations live in constant tables and one loop checks
    # them all, so the entry's code size does not grow with the argument count.
    specs, dims, msgs = [], [], []
    reasons = ('not an ndarray', 'wrong dtype', 'big-endian', 'wrong ndim', 'wrong shape',
               'not contiguous or not aligned')
    for k, (slot, role, node) in enumerate(layout.args):
        d = graph.nodes[node]
        shape, dtype = tuple(d['shape']), _onp.dtype(d['dtype'])
        need = C_CONTIGUOUS_ALIGNED | (WRITEABLE if role == 'output' else 0)
        specs += [dtype.num, len(shape), need, len(dims), slot]
        dims += list(shape)
        what = f"{role} {k} ({d.get('name', node)}): expected a C-contiguous {dtype.name} " \
               f"array of shape {shape}"
        for r in reasons:
            if r.startswith('not contiguous') and role == 'output':
                r = 'not writeable or not contiguous'
            msgs.append(_cstring(module, f'{what} ({r})'))
    spec_t = _const_array(module, f'{name}.specs', I64, specs)
    dims_t = _const_array(module, f'{name}.dims', I64, dims or [0])
    msg_t = _const_array(module, f'{name}.messages', PTR, msgs or [ir.Constant(PTR, None)])

    def table_at(t, elem, i):
        return b.load(b.gep(t, [i], source_etype=elem), typ=elem, align=8)

    with Loop(b, 0, n_args, name='arg') as k:
        arr = b.load(b.gep(args, [k], source_etype=PTR), typ=PTR, align=8)
        base = b.mul(k, I64(5))
        want_type, want_nd, need, dim_off, slot = (
            table_at(spec_t, I64, b.add(base, I64(f))) for f in range(5))

        def fail_if_not(cond, reason):
            msg = table_at(msg_t, PTR, b.add(b.mul(k, I64(len(reasons))), I64(reason)))
            ok = fn.append_basic_block('ok')
            bad = fn.append_basic_block('bad')
            b.cbranch(cond, ok, bad)
            b.position_at_end(bad)
            b.store(msg, errmsg, align=8)
            b.branch(fail)
            b.position_at_end(ok)
        fail_if_not(b.icmp_unsigned('==', _field(b, arr, OB_TYPE, PTR), nd_type), 0)
        descr = _field(b, arr, DESCR, PTR)
        fail_if_not(b.icmp_signed('==', b.sext(_field(b, descr, DESCR_TYPE_NUM, I32), I64),
                                  want_type), 1)
        fail_if_not(b.icmp_signed('!=', _field(b, descr, DESCR_BYTEORDER, I8), I8(ord('>'))), 2)
        nd = b.sext(_field(b, arr, ND, I32), I64)
        fail_if_not(b.icmp_signed('==', nd, want_nd), 3)
        got_dims = _field(b, arr, DIMS, PTR)
        with Loop(b, 0, nd, name='dim') as i:
            got = b.load(b.gep(got_dims, [i], source_etype=I64), typ=I64, align=8)
            fail_if_not(b.icmp_signed('==', got, table_at(dims_t, I64, b.add(dim_off, i))), 4)
        flags = b.sext(_field(b, arr, FLAGS, I32), I64)
        fail_if_not(b.icmp_signed('==', b.and_(flags, need), need), 5)
        b.store(_field(b, arr, DATA, PTR), b.gep(tp, [slot], source_etype=PTR), align=8)
    run = module.globals[run_name]
    b.call(run, [tp])
    check(b.icmp_signed('==', b.load(status, typ=I32, align=4), I32(0)),
          'index out of range in an indexing operation', 'PyExc_IndexError')
    rc = b.load(self_, typ=I64, align=8)                 # return self, with a new reference
    b.store(b.add(rc, I64(1)), self_, align=8)
    b.ret(self_)
    b.position_at_end(fail)
    seterr_ty = ir.FunctionType(VOID, [PTR, PTR])
    seterr = b.load(b.gep(statics, [I64(layout.host_slots['PyErr_SetString'])], source_etype=PTR),
                    typ=seterr_ty.as_pointer(), align=8)
    b.call(seterr, [b.load(errtype, typ=PTR, align=8), b.load(errmsg, typ=PTR, align=8)])
    b.ret(ir.Constant(PTR, None))
    return fn


def _const_array(module, name, elem, values):
    t = ir.ArrayType(elem, len(values))
    gv = ir.GlobalVariable(module, t, name=name)
    gv.global_constant = True
    gv.linkage = 'internal'
    gv.initializer = ir.Constant(t, [v if isinstance(v, ir.Value) else elem(v) for v in values])
    return gv


def _cstring(module, text):
    data = bytearray(text.encode('utf-8') + b'\0')
    name = f'msg{len([g for g in module.global_values if g.name.startswith("msg")])}'
    gv = ir.GlobalVariable(module, ir.ArrayType(I8, len(data)), name=name)
    gv.global_constant = True
    gv.linkage = 'internal'
    gv.initializer = ir.Constant(ir.ArrayType(I8, len(data)), data)
    return gv
