"""Data movement kernels: strided copies (transpose, reshape, broadcast_to,
basic slicing, concatenate), gathers and scatters with one index array
(bounds-checked: an index out of range sets the status word instead of
touching memory), and random numbers through a host callback."""
from llvmlite import ir

from tracer.graph.ir import arguments
from tracer.ops.movement import IndexArg

from .irutil import I64, PTR, VOID, LoweringError, buffer_ptr, load, store
from .kernels import Kernel, _dtype, _shape, _size, new_function, set_status
from .loopnest import broadcast_strides, coalesce, contiguous_strides, emit_nest, read
from .scalar_ops import Cx, cast


def _copy(b, shape, src_ptr, src_dt, src_strides, src_off, dst_ptr, dst_dt, dst_strides,
          dst_off, W, begin=None, end=None, accumulate=False):
    cshape, cstrides, _ = coalesce(shape, [src_strides, dst_strides])

    def body(offs, w, idx):
        v = read(b, src_ptr, src_dt, b.add(offs[0], I64(src_off)), w,
                 cstrides[0][-1] if cstrides[0] else 0)
        v = cast(Cx(b, w), v, src_dt, dst_dt)
        o = b.add(offs[1], I64(dst_off))
        if accumulate:
            cur = load(b, dst_ptr, dst_dt, o, w)
            v = b.fadd(cur, v) if dst_dt.is_float else b.add(cur, v)
        store(b, v, dst_ptr, dst_dt, o, w)
    ok = all(s[-1] == 1 for s in cstrides[1:]) if cshape else True
    emit_nest(b, cshape, cstrides, body, W, begin if cshape else None, end, vector_ok=ok)
    return cshape[0] if cshape else 1


def _basic_view(shape, key):
    """(out shape, element strides, start offset) of a basic-indexing view."""
    cs = contiguous_strides(shape)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    key = list(key)
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key[i:i + 1] = [slice(None)] * (len(shape) - n_real)
    key += [slice(None)] * (len(shape) - sum(1 for k in key if k is not None))
    out_shape, strides, offset, d = [], [], 0, 0
    for k in key:
        if k is None:
            out_shape.append(1)
            strides.append(0)
            continue
        if isinstance(k, slice):
            start, stop, step = k.indices(shape[d])
            n = len(range(start, stop, step))
            out_shape.append(n)
            strides.append(cs[d] * step)
            offset += start * cs[d] if n else 0
        else:
            idx = int(k) + (shape[d] if int(k) < 0 else 0)
            offset += idx * cs[d]
        d += 1
    return tuple(out_shape), tuple(strides), offset


def _array_positions(key, n_arrays):
    """Positions of the index arrays in ``key``: consecutive, after full slices."""
    pos = [i for i, k in enumerate(key) if isinstance(k, IndexArg)]
    if len(pos) != n_arrays or not pos or pos != list(range(pos[0], pos[0] + len(pos))) or \
            Ellipsis in key or None in key or [key[p].pos for p in pos] != list(range(len(pos))):
        raise LoweringError('indexing with index arrays apart from each other, or mixed with '
                            'None or ...')
    if any(not isinstance(k, slice) or k != slice(None) for k in key[:pos[0]]):
        raise LoweringError('index arrays after a non-full slice')
    return pos


def emit_movement(module, name, graph, gid, group, slot_of, W):
    root = group['root']
    if group['nodes'] != [root]:
        raise LoweringError('movement group with fused neighbours')
    d = graph.nodes[root]
    op, attrs = d['op'], d.get('attrs') or {}
    args = arguments(graph, root)
    srcs = [s for _, s, _ in args]
    fn, b = new_function(module, name)
    table, begin, end = fn.args
    out = buffer_ptr(b, table, slot_of[root])
    odt, oshape = _dtype(graph, root), _shape(graph, root)
    work = _size(oshape)
    extent = 1
    if op in ('transpose', 'reshape', 'broadcast_to', 'stop_gradient'):
        x = srcs[0]
        xs = _shape(graph, x)
        if op == 'transpose':
            axes = attrs.get('axes')
            axes = tuple(reversed(range(len(xs)))) if axes is None else tuple(axes)
            st = contiguous_strides(xs)
            src_strides = tuple(st[a] for a in axes)
        elif op == 'broadcast_to':
            src_strides = broadcast_strides(xs, oshape)
        else:
            src_strides = contiguous_strides(oshape)
        extent = _copy(b, oshape, buffer_ptr(b, table, slot_of[x]), _dtype(graph, x), src_strides,
                       0, out, odt, contiguous_strides(oshape), 0, W, begin, end)
    elif op == 'concatenate':
        ax = attrs.get('axis', 0) % len(oshape)
        start = 0
        ost = contiguous_strides(oshape)
        for s in srcs:
            xs = _shape(graph, s)
            _copy(b, xs, buffer_ptr(b, table, slot_of[s]), _dtype(graph, s),
                  contiguous_strides(xs), 0, out, odt, ost, start * ost[ax], W)
            start += xs[ax]
    elif op == 'getitem':
        x, idx = srcs[0], srcs[1:]
        xs = _shape(graph, x)
        key = attrs['key']
        if not idx:
            vshape, vstrides, off = _basic_view(xs, key)
            _copy(b, vshape, buffer_ptr(b, table, slot_of[x]), _dtype(graph, x), vstrides, off,
                  out, odt, contiguous_strides(vshape), 0, W)
        else:
            _gather(b, table, graph, x, idx, key, slot_of, out, odt, xs, scatter=None)
    elif op in ('setitem', 'index_add'):
        key = attrs['key']
        if op == 'setitem':
            x, value, idx = srcs[0], srcs[1], srcs[2:]
            xs = _shape(graph, x)
            _copy(b, xs, buffer_ptr(b, table, slot_of[x]), _dtype(graph, x),
                  contiguous_strides(xs), 0, out, odt, contiguous_strides(xs), 0, W)
        else:
            value, idx = srcs[0], srcs[1:]
            xs = oshape
            _zero(b, out, odt, _size(oshape), W)
        vslot = slot_of[value] if value is not None else None
        scalar = args[1][2] if op == 'setitem' and value is None else None
        if not idx:
            vshape, vstrides, off = _basic_view(xs, key)
            if value is None:
                emit_nest(b, *_const_fill(vshape, vstrides), lambda offs, w, i: store(
                    b, cast(Cx(b, 1), scalar, None, odt), out, odt, b.add(offs[0], I64(off))),
                    1)
            else:
                _copy(b, vshape, buffer_ptr(b, table, vslot), _dtype(graph, value),
                      broadcast_strides(_shape(graph, value), vshape), 0, out, odt, vstrides, off,
                      1, accumulate=(op == 'index_add'))
        else:
            _gather(b, table, graph, None, idx, key, slot_of, out, odt, xs,
                    scatter=(value, scalar, op == 'index_add'))
    else:
        raise LoweringError(f'no lowering for movement op {op!r}')
    b.ret_void()
    return Kernel(fn, gid, 'movement', extent, work)


def _const_fill(shape, strides):
    cshape, cstrides, _ = coalesce(shape, [strides])
    return cshape, cstrides


def _zero(b, ptr, dt, n, W):
    emit_nest(b, (n,), [(1,)], lambda offs, w, i: store(
        b, cast(Cx(b, w), 0, None, dt), ptr, dt, offs[0], w), W)


def _gather(b, table, graph, x, idx_nodes, key, slot_of, out, odt, xs, scatter):
    """out[...] = x[..., i0, i1, ..., ...] (gather) or the scatter into out of
    ``value`` at those positions (``index_add`` accumulates)."""
    pos = _array_positions(key, len(idx_nodes))
    if any(_dtype(graph, n).kind == 'b' for n in idx_nodes):
        raise LoweringError('a raw boolean index array (np indexing turns known masks into '
                            'integer positions)')
    first, m = pos[0], len(pos)
    bshape = tuple(onp_broadcast(*[_shape(graph, n) for n in idx_nodes]))
    rest = key[first + m:]
    post_shape, post_strides, post_off = _basic_view(xs[first + m:], rest)
    pre = xs[:first]
    sel_shape = tuple(pre) + bshape + tuple(post_shape)
    xst = contiguous_strides(xs)
    x_strides = tuple(xst[:first]) + (0,) * len(bshape) + tuple(post_strides)
    s_strides = contiguous_strides(sel_shape)
    i_strides = [(0,) * len(pre) + broadcast_strides(_shape(graph, n), bshape) +
                 (0,) * len(post_shape) for n in idx_nodes]
    iptrs = [buffer_ptr(b, table, slot_of[n]) for n in idx_nodes]
    idts = [_dtype(graph, n) for n in idx_nodes]
    xptr = buffer_ptr(b, table, slot_of[x]) if x is not None else None
    value, scalar, add = scatter if scatter else (None, None, False)
    vptr = buffer_ptr(b, table, slot_of[value]) if value is not None else None
    v_strides = [broadcast_strides(_shape(graph, value), sel_shape)] if value is not None else []
    strides = [x_strides, s_strides] + i_strides + v_strides
    i64 = _dtype_i64()

    def body(offs, w, ii):
        ok = None
        xoff = b.add(offs[0], I64(post_off))
        for k in range(m):
            dim = xs[first + k]
            j = cast(Cx(b, 1), load(b, iptrs[k], idts[k], offs[2 + k]), idts[k], i64)
            j = b.select(b.icmp_signed('<', j, I64(0)), b.add(j, I64(dim)), j)
            inside = b.icmp_unsigned('<', j, I64(dim))
            ok = inside if ok is None else b.and_(ok, inside)
            xoff = b.add(xoff, b.mul(j, I64(xst[first + k])))
        with b.if_else(ok) as (then, otherwise):
            with then:
                if scatter is None:
                    store(b, cast(Cx(b, 1), load(b, xptr, _dtype(graph, x), xoff),
                                  _dtype(graph, x), odt), out, odt, offs[1])
                else:
                    if value is None:
                        v = cast(Cx(b, 1), scalar, None, odt)
                    else:
                        v = cast(Cx(b, 1), load(b, vptr, _dtype(graph, value), offs[-1]),
                                 _dtype(graph, value), odt)
                    if add:
                        cur = load(b, out, odt, xoff)
                        v = b.fadd(cur, v) if odt.is_float else b.add(cur, v)
                    store(b, v, out, odt, xoff)
            with otherwise:
                set_status(b, table, 2)
    emit_nest(b, sel_shape, strides, body, 1, vector_ok=False)


def onp_broadcast(*shapes):
    import numpy
    return numpy.broadcast_shapes(*shapes)


def _dtype_i64():
    from .irutil import DType
    return DType('int64')


def emit_opaque(module, name, graph, gid, group, slot_of, W, callback_slot):
    """Random numbers: call the host callback ``cb(i64 node, ptr out)``."""
    root = group['root']
    fn, b = new_function(module, name)
    table = fn.args[0]
    fnty = ir.FunctionType(VOID, [I64, PTR])
    slot = b.gep(table, [I64(callback_slot)], source_etype=PTR)
    cb = b.load(slot, typ=fnty.as_pointer(), align=8)        # typed: callable
    b.call(cb, [I64(root), buffer_ptr(b, table, slot_of[root])])
    b.ret_void()
    return Kernel(fn, gid, 'opaque', 1, _size(_shape(graph, root)))
