"""Row-wise normalizations -- softmax, log_softmax, layer_norm -- fused with
their elementwise prologue and epilogue: one kernel, parallel over rows,
three passes over each row held in a scratch row (vectorized when the
normalized axis is the innermost one)."""

from tracer.graph.ir import arguments

from . import mathlib
from .irutil import I64, buffer_ptr, call_intrinsic, const, horizontal, load, splat, store
from .kernels import split_members, Kernel, _alloc_temp, _dtype, _free, _shape, _size, evaluate, externals, \
    new_function
from .loopnest import accumulate, broadcast_strides, for_each
from .scalar_ops import Cx


def _offset(b, strides, shape, r_outer, r_inner, a, k):
    """Element offset of (outer index, k, inner index) for one operand."""
    off = I64(0)
    rem = r_outer
    for d in reversed(range(a)):                     # decompose the outer index
        idx = b.urem(rem, I64(shape[d])) if d else rem
        rem = b.udiv(rem, I64(shape[d])) if d else rem
        if strides[d]:
            off = b.add(off, b.mul(idx, I64(strides[d])))
    rem = r_inner
    for d in reversed(range(a + 1, len(shape))):
        idx = b.urem(rem, I64(shape[d])) if d != a + 1 else rem
        rem = b.udiv(rem, I64(shape[d])) if d != a + 1 else rem
        if strides[d]:
            off = b.add(off, b.mul(idx, I64(strides[d])))
    return b.add(off, b.mul(k, I64(strides[a]))) if strides[a] else off


def emit_normalization(module, name, graph, gid, group, slot_of, W):
    anchor = group['anchor']
    d = graph.nodes[anchor]
    op, attrs = d['op'], d.get('attrs') or {}
    members = group['nodes']
    prologue, epilogue = split_members(graph, group)
    root = group['root']
    args = arguments(graph, anchor)
    src = args[0][1]
    shape = _shape(graph, src)
    a = attrs.get('axis', -1) % len(shape)
    L, inner = shape[a], _size(shape[a + 1:])
    rows = _size(shape[:a]) * inner
    adt = _dtype(graph, anchor)
    ext = externals(graph, prologue + [anchor] + epilogue, members)
    params = [s for _, s, _ in args[1:]]                      # layer_norm gamma, beta
    # sources read elementwise by the prologue/epilogue (gamma or beta may be too)
    row_ext = [s for s in externals(graph, prologue + epilogue, members)]
    if src not in prologue and src not in row_ext:
        row_ext.append(src)
    strides = {s: broadcast_strides(_shape(graph, s), shape) for s in row_ext}
    out_strides = broadcast_strides(shape, shape)
    fn, b = new_function(module, name)
    table, begin, end = fn.args
    ptr = {s: buffer_ptr(b, table, slot_of[s]) for s in ext}
    out = buffer_ptr(b, table, slot_of[root])
    rdt = _dtype(graph, root)
    vec_ok = inner == 1 and all(strides[s][a] in (0, 1) for s in row_ext)
    row, heap = _alloc_temp(b, module, adt, L)
    from .irutil import Loop
    with Loop(b, begin, end, name='row') as r:
        ro = b.udiv(r, I64(inner)) if inner > 1 else r
        ri = b.urem(r, I64(inner)) if inner > 1 else I64(0)
        base = {s: _offset(b, strides[s], shape, ro, ri, a, I64(0)) for s in row_ext}
        obase = _offset(b, out_strides, shape, ro, ri, a, I64(0))

        def at(s, k, w):
            st = strides[s][a]
            off = b.add(base[s], b.mul(k, I64(st))) if st else base[s]
            v = load(b, ptr[s], _dtype(graph, s), off, 1 if (w > 1 and st == 0) else w)
            return (splat(b, v, w) if (w > 1 and st == 0) else v), _dtype(graph, s)

        def x_at(k, w):
            vals = evaluate(Cx(b, w), graph, prologue, lambda s: at(s, k, w))
            v, vd = (vals[src], _dtype(graph, src)) if src in vals else at(src, k, w)
            from .scalar_ops import cast
            return cast(Cx(b, w), v, vd, adt)

        def pass1(k, w):
            store(b, x_at(k, w), row, adt, k, w)

        for_each(b, L, W, pass1, vec_ok)
        reg = adt.reg

        def rowv(k, w):
            return load(b, row, adt, k, w)
        fadd = (lambda x, y: b.fadd(x, y))
        hsum = (lambda v: horizontal(b, 'fadd', v))
        if op in ('softmax', 'log_softmax'):
            m = accumulate(b, L, W, reg, float('-inf'), rowv,
                           lambda x, y: call_intrinsic(b, 'maximum', x, y),
                           lambda v: horizontal(b, 'fmaximum', v), vec_ok)
            # a row of -inf (or a NaN) must not produce inf - inf
            m = b.select(b.fcmp_ordered('==', m, const(reg, float('-inf'))), const(reg, 0.0), m)

            def expv(k, w):
                return mathlib.exp(b, b.fsub(rowv(k, w), splat(b, m, w)))
            if op == 'softmax':
                def pass2(k, w):
                    store(b, expv(k, w), row, adt, k, w)
                for_each(b, L, W, pass2, vec_ok)
                s = accumulate(b, L, W, reg, 0.0, rowv, fadd, hsum, vec_ok)
                inv = b.fdiv(const(reg, 1.0), s)

                def final(k, w):
                    return b.fmul(rowv(k, w), splat(b, inv, w))
            else:
                s = accumulate(b, L, W, reg, 0.0, expv, fadd, hsum, vec_ok)
                lse = b.fadd(m, mathlib.log(b, s))

                def final(k, w):
                    return b.fsub(rowv(k, w), splat(b, lse, w))
        else:
            eps = attrs.get('eps', 1e-5)
            s = accumulate(b, L, W, reg, 0.0, rowv, fadd, hsum, vec_ok)
            mean = b.fdiv(s, const(reg, float(L)))

            def sq(k, w):
                c = b.fsub(rowv(k, w), splat(b, mean, w))
                return b.fmul(c, c)
            v = accumulate(b, L, W, reg, 0.0, sq, fadd, hsum, vec_ok)
            var = b.fadd(b.fdiv(v, const(reg, float(L))), const(reg, float(eps)))
            rstd = b.fdiv(const(reg, 1.0), mathlib.sqrt(b, var))
            gamma, beta = params

            def final(k, w):
                xn = b.fmul(b.fsub(rowv(k, w), splat(b, mean, w)), splat(b, rstd, w))
                g = load(b, ptr[gamma], _dtype(graph, gamma), k, w)
                bt = load(b, ptr[beta], _dtype(graph, beta), k, w)
                from .scalar_ops import cast
                g = cast(Cx(b, w), g, _dtype(graph, gamma), adt)
                bt = cast(Cx(b, w), bt, _dtype(graph, beta), adt)
                return b.fadd(b.fmul(xn, g), bt)

        def pass3(k, w):
            y = final(k, w)

            def leaf(s):
                return (y, adt) if s == anchor else at(s, k, w)
            vals = evaluate(Cx(b, w), graph, epilogue, leaf) if epilogue else {root: y}
            ost = out_strides[a]
            store(b, vals[root], out, rdt, b.add(obase, b.mul(k, I64(ost))), w)

        for_each(b, L, W, pass3, vec_ok)
    _free(b, module, heap)
    b.ret_void()
    return Kernel(fn, gid, 'normalization', rows, _size(shape) * (len(members) + 4))


