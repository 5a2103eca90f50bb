"""Matmul groups: the register-tiled kernel of ``matmul.py`` for every batch
(broadcast batch dimensions), a fused transpose of the right operand read
as ``trans_b``, and the elementwise epilogue (bias, activation, residual)
applied to each tile as it is stored."""
from tracer.graph.ir import arguments

from .irutil import I64, LoweringError, buffer_ptr, load, splat
from .kernels import split_members, Kernel, _dtype, _shape, _size, evaluate, externals, new_function
from .loopnest import broadcast_strides, contiguous_strides
from .matmul import emit_matmul
from .scalar_ops import Cx, cast


def _batch_offset(b, batch, batch_shape, strides):
    """Element offset of flat batch index ``batch`` for one operand."""
    off, rem = I64(0), batch
    for d in reversed(range(len(batch_shape))):
        idx = b.urem(rem, I64(batch_shape[d])) if d else rem
        rem = b.udiv(rem, I64(batch_shape[d])) if d else rem
        if strides[d]:
            off = b.add(off, b.mul(idx, I64(strides[d])))
    return off


def emit_matmul_group(module, name, graph, gid, group, slot_of, W):
    anchor = group['anchor']
    members = group['nodes']
    prologue, epilogue = split_members(graph, group)
    root = group['root']
    (_, a_src, _), (_, b_src, _) = arguments(graph, anchor)
    trans_b = False
    if prologue:
        if prologue != [b_src] or graph.nodes[b_src]['op'] != 'transpose':
            raise LoweringError('matmul prologue other than a transpose of the right operand')
        (_, b_src, _), = arguments(graph, prologue[0])
        trans_b = True
    dt = _dtype(graph, anchor)
    if not dt.is_float or _dtype(graph, a_src) != dt or _dtype(graph, b_src) != dt or \
            _dtype(graph, root) != dt:
        raise LoweringError('matmul of mixed or non-float dtypes')
    out_shape = _shape(graph, anchor)
    a_shape, b_shape = _shape(graph, a_src), _shape(graph, b_src)
    M, N = out_shape[-2], out_shape[-1]
    K = a_shape[-1]
    batch_shape = out_shape[:-2]
    nb = _size(batch_shape)

    def mat_strides(shape):
        """Per-batch-dim strides (elements) of a stack of matrices, broadcast."""
        mats = shape[:-2]
        full = broadcast_strides(mats + (1, 1), batch_shape + (1, 1))[:-2] if mats else \
            (0,) * len(batch_shape)
        per = shape[-2] * shape[-1]
        return tuple(s * per for s in full)
    a_bs, b_bs = mat_strides(a_shape), mat_strides(b_shape)
    c_bs = tuple(s * M * N for s in contiguous_strides(batch_shape))
    ext = externals(graph, epilogue, members)
    ext_strides = {s: broadcast_strides(_shape(graph, s), out_shape) for s in ext}

    def epi(b, extra, batch, row, col, acc):
        w = acc.type.count if hasattr(acc.type, 'count') else 1

        def leaf(s):
            if s == anchor:
                return acc, dt
            st = ext_strides[s]
            off = _batch_offset(b, batch, batch_shape, st[:-2])
            if st[-2]:
                off = b.add(off, b.mul(row, I64(st[-2])))
            if st[-1]:
                off = b.add(off, col)
            sdt = _dtype(graph, s)
            p = buffer_ptr(b, extra, slot_of[s])
            if w > 1 and st[-1] == 0:
                return splat(b, load(b, p, sdt, off), w), sdt
            return load(b, p, sdt, off, w), sdt
        vals = evaluate(Cx(b, w), graph, epilogue, leaf)
        return cast(Cx(b, w), vals[root], _dtype(graph, root), dt)

    mm = emit_matmul(module, f'{name}_mm', M, N, K, dtype=dt.name, trans_b=trans_b,
                     epilogue=epi if epilogue else None, vector_width=W)
    fn, b = new_function(module, name)
    table, begin, end = fn.args
    A = buffer_ptr(b, table, slot_of[a_src])
    B = buffer_ptr(b, table, slot_of[b_src])
    C = buffer_ptr(b, table, slot_of[root])

    def at(p, off):
        return b.gep(p, [off], source_etype=dt.mem)
    if nb > 1:
        from .irutil import Loop
        with Loop(b, begin, end, name='batch') as bi:
            b.call(mm, [at(A, _batch_offset(b, bi, batch_shape, a_bs)),
                        at(B, _batch_offset(b, bi, batch_shape, b_bs)),
                        at(C, _batch_offset(b, bi, batch_shape, c_bs)), table, bi, I64(0),
                        I64(M)])
        extent = nb
    else:
        b.call(mm, [A, B, C, table, I64(0), begin, end])
        extent = M
    b.ret_void()
    return Kernel(fn, gid, 'matmul', extent, 2 * M * N * K * max(nb, 1))


