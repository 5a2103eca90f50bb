"""Kernel emitters, one per fusion-group kind.  Every kernel has the
signature ``void k(ptr table, i64 begin, i64 end)``: ``table`` holds one
pointer per buffer slot (slot 0 is an i32 status word), and ``[begin,
end)`` is the part of the kernel's parallel extent this call covers.
"""
from llvmlite import ir

from tracer.graph.ir import arguments

from . import scalar_ops
from .irutil import (I32, I64, PTR, VOID, DType, Loop, LoweringError, buffer_ptr, call_intrinsic,
                     const, horizontal, load, stack, store)
from .loopnest import broadcast_strides, coalesce, contiguous_strides, emit_nest, read
from .scalar_ops import Cx


class Kernel:
    """What the module builder needs to know about an emitted kernel."""

    def __init__(self, fn, group_id, kind, extent, work):
        self.fn, self.name = fn, fn.name
        self.group, self.kind = group_id, kind
        self.extent = extent      # size of the parallel range
        self.work = work          # rough element-operations count (threading threshold)


def new_function(module, name):
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
    # called once per group, shared by repeated layers: never inline into run()
    fn.attributes.add('noinline')
    fn.args[0].name, fn.args[1].name, fn.args[2].name = 'table', 'begin', 'end'
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    return fn, b


def _dtype(graph, n):
    return DType(graph.nodes[n]['dtype'])


def _shape(graph, n):
    return tuple(graph.nodes[n]['shape'])


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def evaluate(cx, graph, members, leaf):
    """Values of elementwise ``members`` (in order); ``leaf(src)`` gives
    ``(value, DType)`` for a source outside ``members``."""
    vals = {}
    for n in members:
        d = graph.nodes[n]
        args = []
        for _, s, v in arguments(graph, n):
            if s is None:
                args.append((v, None))
            elif s in vals:
                args.append((vals[s], _dtype(graph, s)))
            else:
                args.append(leaf(s))
        vals[n] = scalar_ops.emit(cx, d['op'], _dtype(graph, n), args, d.get('attrs') or {})
    return vals


def split_members(graph, group):
    """(prologue, epilogue) of an anchored group, each in topological order:
    the prologue feeds the anchor; everything else reads its result."""
    import networkx as nx
    anchor, members = group['anchor'], group['nodes']
    feeds = nx.ancestors(graph, anchor)
    prologue = [n for n in members if n in feeds]
    epilogue = [n for n in members if n != anchor and n not in feeds]
    return prologue, epilogue


def externals(graph, nodes, members):
    """Sources read by ``nodes`` that are not group ``members`` (in order)."""
    inside = set(members)
    return list(dict.fromkeys(s for m in nodes for _, s, _ in arguments(graph, m)
                              if s is not None and s not in inside))


def set_status(b, table, code):
    status = b.load(b.gep(table, [I64(0)], source_etype=PTR), typ=PTR, align=8)
    b.store(I32(code), status, align=4)


# ------------------------------------------------------------------ elementwise
def emit_elementwise(module, name, graph, gid, group, slot_of, W):
    """A fused elementwise group: one loop nest, each input read once per element."""
    root = group['root']
    shape = _shape(graph, root)
    members = group['nodes']
    ext = list(group['inputs'])
    strides = [broadcast_strides(_shape(graph, s), shape) for s in ext] + \
              [contiguous_strides(shape)]
    cshape, cstrides, _ = coalesce(shape, strides)
    fn, b = new_function(module, name)
    table, begin, end = fn.args
    ptrs = [buffer_ptr(b, table, slot_of[s]) for s in ext] + [buffer_ptr(b, table, slot_of[root])]
    out_dt = _dtype(graph, root)

    def body(offs, w, idx):
        cx = Cx(b, w)
        inner = [s[-1] if s else 0 for s in cstrides]

        def leaf(s):
            k = ext.index(s)
            return read(b, ptrs[k], _dtype(graph, s), offs[k], w, inner[k]), _dtype(graph, s)
        vals = evaluate(cx, graph, members, leaf)
        store(b, vals[root], ptrs[-1], out_dt, offs[-1], w)

    extent = cshape[0] if cshape else 1
    emit_nest(b, cshape, cstrides, body, W, begin if cshape else None, end)
    b.ret_void()
    return Kernel(fn, gid, 'elementwise', extent, _size(shape) * len(members))


# ------------------------------------------------------------------ reductions
_IDENTITY = {'sum': 0, 'prod': 1}


def _identity(op, dtype):
    if op in _IDENTITY:
        return _IDENTITY[op]
    big = float('inf') if dtype.is_float else None
    if big is None:
        info = __import__('numpy').iinfo(dtype.np) if dtype.kind != 'b' else None
        if info is None:
            return 0 if op == 'max' else 1
        return info.min if op == 'max' else info.max
    return -big if op == 'max' else big


def _combine(b, op, dtype, a, c):
    if op == 'sum':
        return b.fadd(a, c) if dtype.is_float else (b.or_(a, c) if dtype.kind == 'b' else b.add(a, c))
    if op == 'prod':
        return b.fmul(a, c) if dtype.is_float else (b.and_(a, c) if dtype.kind == 'b' else b.mul(a, c))
    if dtype.is_float:
        return call_intrinsic(b, 'maximum' if op == 'max' else 'minimum', a, c)
    if dtype.kind == 'b':
        return b.or_(a, c) if op == 'max' else b.and_(a, c)
    pred = '>' if op == 'max' else '<'
    cmp = b.icmp_signed if dtype.signed else b.icmp_unsigned
    return b.select(cmp(pred, a, c), a, c)


def _hreduce(b, op, dtype, v):
    if dtype.is_float:
        name = {'sum': 'fadd', 'prod': 'fmul', 'max': 'fmaximum', 'min': 'fminimum'}[op]
    elif dtype.kind == 'b':
        name = {'sum': 'or', 'prod': 'and', 'max': 'or', 'min': 'and'}[op]
    else:
        s = 's' if dtype.signed else 'u'
        name = {'sum': 'add', 'prod': 'mul', 'max': f'{s}max', 'min': f'{s}min'}[op]
    return horizontal(b, name, v)


def _alloc_temp(b, module, dtype, count):
    """Stack for small scratch, heap (freed by the caller) otherwise."""
    nbytes = count * dtype.itemsize
    if nbytes <= 1 << 16:
        return stack(b, dtype.mem, max(count, 1), 'scratch'), None
    malloc = module.globals.get('malloc') or ir.Function(
        module, ir.FunctionType(PTR, [I64]), 'malloc')
    p = b.call(malloc, [I64(nbytes)])
    return p, p


def _free(b, module, p):
    if p is not None:
        free = module.globals.get('free') or ir.Function(module, ir.FunctionType(VOID, [PTR]), 'free')
        b.call(free, [p])


def emit_reduction(module, name, graph, gid, group, slot_of, W):
    """sum/prod/max/min over axes with an elementwise prologue (computed on the
    fly) and epilogue (applied once per output element)."""
    anchor = group['anchor']
    d = graph.nodes[anchor]
    op = d['op']
    if op in ('argmax', 'argmin'):
        return _emit_arg_reduction(module, name, graph, gid, group, slot_of)
    if op not in ('sum', 'prod', 'max', 'min'):
        return _emit_normalization(module, name, graph, gid, group, slot_of, W)
    members = group['nodes']
    root = group['root']
    prologue, epilogue = split_members(graph, group)
    (_, src, _), = arguments(graph, anchor)
    in_shape = _shape(graph, src)
    rdt = _dtype(graph, anchor)
    axes = d['attrs'].get('axis')
    axes = tuple(range(len(in_shape))) if axes is None else tuple(axes)
    if _size(in_shape) == 0 and op in ('max', 'min'):
        raise LoweringError(f'{op} of an empty array (NumPy raises)')
    kept_shape = tuple(1 if i in axes else n for i, n in enumerate(in_shape))
    acc_strides = tuple(0 if i in axes else s
                        for i, s in enumerate(contiguous_strides(kept_shape)))
    pro_ext = externals(graph, prologue + [anchor], members)
    fn, b = new_function(module, name)
    table = fn.args[0]
    out_size = _size(_shape(graph, anchor))
    direct = not epilogue and root == anchor
    if direct:
        acc, heap = buffer_ptr(b, table, slot_of[root]), None
    else:
        acc, heap = _alloc_temp(b, module, rdt, out_size)
    # 1. acc = identity
    ident = const(rdt.reg, _identity(op, rdt), 1)
    emit_nest(b, (out_size,), [(1,)], lambda offs, w, idx: store(
        b, const(rdt.reg, _identity(op, rdt), w), acc, rdt, offs[0], w), W)
    # 2. accumulate over the input, prologue computed on the fly
    strides = [broadcast_strides(_shape(graph, s), in_shape) for s in pro_ext] + [acc_strides]
    reduced = {i for i in range(len(in_shape)) if i in axes}
    cshape, cstrides, origin = coalesce(in_shape, strides, keep=reduced)
    ptrs = [buffer_ptr(b, table, slot_of[s]) for s in pro_ext]

    def value(offs, w):
        cx = Cx(b, w)

        def leaf(s):
            k = pro_ext.index(s)
            inner = cstrides[k][-1] if cstrides[k] else 0
            return read(b, ptrs[k], _dtype(graph, s), offs[k], w, inner), _dtype(graph, s)
        if src in prologue:
            vals = evaluate(cx, graph, prologue, leaf)
            v, vd = vals[src], _dtype(graph, src)
        else:
            v, vd = leaf(src)
        return scalar_ops.cast(cx, v, vd, rdt)

    if not cshape:
        v = value([I64(0)] * len(pro_ext), 1)
        store(b, _combine(b, op, rdt, load(b, acc, rdt, I64(0)), v), acc, rdt, I64(0))
    elif cstrides[-1][-1] == 0 and origin[-1][0] in reduced:
        _reduce_inner(b, op, rdt, cshape, cstrides, value, acc, W, ident)
    else:
        def body(offs, w, idx):
            v = value(offs[:-1], w)
            cur = load(b, acc, rdt, offs[-1], w)
            store(b, _combine(b, op, rdt, cur, v), acc, rdt, offs[-1], w)
        emit_nest(b, cshape, cstrides, body, W)
    # 3. epilogue over the output
    if not direct:
        out_shape = _shape(graph, root)
        epi_ext = externals(graph, epilogue, members)
        estrides = [broadcast_strides(_shape(graph, s), out_shape) for s in epi_ext] + \
                   [contiguous_strides(out_shape), contiguous_strides(out_shape)]
        ecshape, ecstrides, _ = coalesce(out_shape, estrides)
        eptrs = [buffer_ptr(b, table, slot_of[s]) for s in epi_ext]
        out = buffer_ptr(b, table, slot_of[root])

        def ebody(offs, w, idx):
            cx = Cx(b, w)

            def leaf(s):
                if s == anchor:
                    return load(b, acc, rdt, offs[-2], w), rdt
                k = epi_ext.index(s)
                inner = ecstrides[k][-1] if ecstrides[k] else 0
                return read(b, eptrs[k], _dtype(graph, s), offs[k], w, inner), _dtype(graph, s)
            vals = evaluate(cx, graph, epilogue, leaf) if epilogue else {root: leaf(anchor)[0]}
            store(b, vals[root], out, _dtype(graph, root), offs[-1], w)
        emit_nest(b, ecshape, ecstrides, ebody, W)
        _free(b, module, heap)
    b.ret_void()
    return Kernel(fn, gid, 'reduction', 1, _size(in_shape) * (len(prologue) + 1))


def _reduce_inner(b, op, rdt, cshape, cstrides, value, acc, W, ident):
    """Innermost dimension reduced: vector accumulator, then one combine per row."""
    n = cshape[-1]
    fn = b.function

    def row(offs, w, idx):
        base = offs
        vec_n = (n // W) * W if W > 1 else 0
        total = ident
        if vec_n:
            pre = b.block
            head, body, done = (fn.append_basic_block(x) for x in ('r.head', 'r.body', 'r.done'))
            b.branch(head)
            b.position_at_end(head)
            i = b.phi(I64)
            accv = b.phi(ir.VectorType(rdt.reg, W))
            i.add_incoming(I64(0), pre)
            accv.add_incoming(const(rdt.reg, _identity(op, rdt), W), pre)
            b.cbranch(b.icmp_signed('<', i, I64(vec_n)), body, done)
            b.position_at_end(body)
            v = value([b.add(o, b.mul(i, I64(s[-1]))) for o, s in zip(base, cstrides[:-1])], W)
            nxt = _combine(b, op, rdt, accv, v)
            i.add_incoming(b.add(i, I64(W)), b.block)
            accv.add_incoming(nxt, b.block)
            b.branch(head)
            b.position_at_end(done)
            total = _hreduce(b, op, rdt, accv)
        if vec_n < n:
            pre = b.block
            head, body, done = (fn.append_basic_block(x) for x in ('t.head', 't.body', 't.done'))
            b.branch(head)
            b.position_at_end(head)
            i = b.phi(I64)
            accs = b.phi(rdt.reg)
            i.add_incoming(I64(vec_n), pre)
            accs.add_incoming(total, pre)
            b.cbranch(b.icmp_signed('<', i, I64(n)), body, done)
            b.position_at_end(body)
            v = value([b.add(o, b.mul(i, I64(s[-1]))) for o, s in zip(base, cstrides[:-1])], 1)
            nxt = _combine(b, op, rdt, accs, v)
            i.add_incoming(b.add(i, I64(1)), b.block)
            accs.add_incoming(nxt, b.block)
            b.branch(head)
            b.position_at_end(done)
            total = accs
        cur = load(b, acc, rdt, offs[-1])
        store(b, _combine(b, op, rdt, cur, total), acc, rdt, offs[-1])

    outer_shape = cshape[:-1]
    emit_nest(b, outer_shape, [s[:-1] for s in cstrides], row, 1)


def _emit_arg_reduction(module, name, graph, gid, group, slot_of):
    """argmax/argmin: scalar, first occurrence wins, NaN wins (as NumPy)."""
    anchor = group['anchor']
    if group['nodes'] != [anchor]:
        raise LoweringError('argmax/argmin with fused neighbours')
    d = graph.nodes[anchor]
    (_, src, _), = arguments(graph, anchor)
    shape = _shape(graph, src)
    if _size(shape) == 0:
        raise LoweringError(f"{d['op']} of an empty array (NumPy raises)")
    sdt, odt = _dtype(graph, src), _dtype(graph, anchor)
    axes = d['attrs'].get('axis')
    fn, b = new_function(module, name)
    table = fn.args[0]
    x, out = buffer_ptr(b, table, slot_of[src]), buffer_ptr(b, table, slot_of[anchor])
    if axes is None:
        outer, n, inner = 1, _size(shape), 1
    else:
        (a,) = axes
        outer, n, inner = _size(shape[:a]), shape[a], _size(shape[a + 1:])
    better = '>' if d['op'] == 'argmax' else '<'
    with Loop(b, 0, outer, name='o') as o:
        with Loop(b, 0, inner, name='j') as j:
            base = b.add(b.mul(o, I64(n * inner)), j)
            best_v = stack(b, sdt.reg)
            best_i = stack(b, I64)
            b.store(load(b, x, sdt, base), best_v)
            b.store(I64(0), best_i)
            with Loop(b, 1, n, name='k') as k:
                v = load(b, x, sdt, b.add(base, b.mul(k, I64(inner))))
                cur = b.load(best_v, typ=sdt.reg)
                if sdt.is_float:
                    win = b.or_(b.fcmp_ordered(better, v, cur),
                                b.and_(b.fcmp_unordered('uno', v, v),
                                       b.fcmp_ordered('ord', cur, cur)))
                elif sdt.kind == 'b':
                    win = b.icmp_unsigned(better, v, cur)
                else:
                    win = (b.icmp_signed if sdt.signed else b.icmp_unsigned)(better, v, cur)
                with b.if_then(win):
                    b.store(v, best_v)
                    b.store(k, best_i)
            store(b, b.load(best_i, typ=I64), out, odt, b.add(b.mul(o, I64(inner)), j))
    b.ret_void()
    return Kernel(fn, gid, 'reduction', 1, _size(shape))


def _emit_normalization(module, name, graph, gid, group, slot_of, W):
    from .normalize import emit_normalization
    return emit_normalization(module, name, graph, gid, group, slot_of, W)
