"""Loop nests over an iteration space with strided operands.

Every kernel that walks arrays (fused elementwise groups, reduction
prologues, copies) describes its operands by element strides over the
iteration space (0 where an operand is broadcast) and lets
:func:`emit_nest` build the loops: adjacent dimensions are coalesced when
every operand allows it, the outermost dimension honours the kernel's
``[begin, end)`` range (for threads), and the innermost runs in vectors of
``W`` lanes with a scalar tail when every operand is contiguous or
broadcast there.
"""
from .irutil import I64, Loop, load, splat


def contiguous_strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def broadcast_strides(src_shape, dst_shape):
    """Element strides of a C-contiguous ``src`` broadcast to ``dst``."""
    src_shape = tuple(src_shape)
    pad = len(dst_shape) - len(src_shape)
    full = (1,) * pad + src_shape
    cs = contiguous_strides(full)
    return tuple(0 if s == 1 and d != 1 else st for s, d, st in zip(full, dst_shape, cs))


def coalesce(shape, strides_list, keep=None):
    """Drop size-1 dims and merge neighbours whose strides chain for every
    operand.  Dims in ``keep`` (a set) only merge with other dims in it."""
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    if not dims:
        return (), [()] * len(strides_list), ()
    new_shape = [shape[dims[0]]]
    new_strides = [[s[dims[0]]] for s in strides_list]
    origin = [[dims[0]]]
    for d in dims[1:]:
        tag_prev = keep is not None and origin[-1][-1] in keep
        tag = keep is not None and d in keep
        mergeable = tag_prev == tag and all(
            ns[-1] == s[d] * shape[d] for ns, s in zip(new_strides, strides_list))
        if mergeable:
            new_shape[-1] *= shape[d]
            for ns, s in zip(new_strides, strides_list):
                ns[-1] = s[d]
            origin[-1].append(d)
        else:
            new_shape.append(shape[d])
            for ns, s in zip(new_strides, strides_list):
                ns.append(s[d])
            origin.append([d])
    return tuple(new_shape), [tuple(s) for s in new_strides], tuple(tuple(o) for o in origin)


def emit_nest(b, shape, strides_list, body, W=16, begin=None, end=None, vector_ok=True):
    """Call ``body(offsets, w, index)`` inside the loops: ``offsets`` are i64
    element offsets per operand, ``w`` the vector width of this body (1 in
    scalar loops), ``index`` the list of loop indices."""
    r = len(shape)
    if r == 0:
        body([I64(0)] * len(strides_list), 1, [])
        return

    def bounds(d):
        if d == 0 and begin is not None:
            return begin, end
        return I64(0), I64(shape[d])

    def rec(d, offs, idx):
        lo, hi = bounds(d)
        if d < r - 1:
            with Loop(b, lo, hi, name=f'd{d}') as i:
                rec(d + 1, [b.add(o, b.mul(i, I64(s[d]))) for o, s in zip(offs, strides_list)],
                    idx + [i])
            return
        inner_ok = vector_ok and W > 1 and all(s[d] in (0, 1) for s in strides_list)
        if inner_ok and shape[d] >= W:
            span = b.sub(hi, lo)
            vec_hi = b.add(lo, b.and_(span, I64(-W)))
            with Loop(b, lo, vec_hi, W, name=f'v{d}') as i:
                body([b.add(o, b.mul(i, I64(s[d]))) for o, s in zip(offs, strides_list)], W,
                     idx + [i])
            lo = vec_hi
        with Loop(b, lo, hi, name=f's{d}') as i:
            body([b.add(o, b.mul(i, I64(s[d]))) for o, s in zip(offs, strides_list)], 1,
                 idx + [i])

    rec(0, [I64(0)] * len(strides_list), [])


def read(b, ptr, dtype, offset, w, inner_stride):
    """Load an operand: a vector if contiguous, a splat of one element if broadcast."""
    if w > 1 and inner_stride == 0:
        return splat(b, load(b, ptr, dtype, offset), w)
    return load(b, ptr, dtype, offset, w)


def for_each(b, n, W, fn, vector_ok=True):
    """``fn(k, w)`` for k in [0, n): vectors of W lanes, then a scalar tail."""
    vec_n = (n // W) * W if (vector_ok and W > 1) else 0
    if vec_n:
        with Loop(b, 0, vec_n, W, name='fv') as k:
            fn(k, W)
    if vec_n < n:
        with Loop(b, vec_n, n, 1, name='fs') as k:
            fn(k, 1)


def accumulate(b, n, W, reg, identity, value, combine, hreduce, vector_ok=True):
    """Fold ``value(k, w)`` over k in [0, n) with ``combine``; returns a scalar.
    Vector lanes accumulate separately and are reduced by ``hreduce`` once."""
    from llvmlite import ir

    from .irutil import const
    fn = b.function
    vec_n = (n // W) * W if (vector_ok and W > 1) else 0

    def loop(lo, hi, step, acc_type, init):
        pre = b.block
        head, body, done = (fn.append_basic_block(x) for x in ('a.head', 'a.body', 'a.done'))
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64)
        acc = b.phi(acc_type)
        k.add_incoming(I64(lo), pre)
        acc.add_incoming(init, pre)
        b.cbranch(b.icmp_signed('<', k, I64(hi)), body, done)
        b.position_at_end(body)
        nxt = combine(acc, value(k, step))
        k.add_incoming(b.add(k, I64(step)), b.block)
        acc.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)
        return acc

    total = const(reg, identity)
    if vec_n:
        v = loop(0, vec_n, W, ir.VectorType(reg, W), const(reg, identity, W))
        total = hreduce(v)
    if vec_n < n:
        total = loop(vec_n, n, 1, reg, total)
    return total
