"""How every elementwise op computes on register values (scalars or vectors).

``EMITTERS[op](cx, out, args)`` returns the op's value in the node's dtype
``out`` from ``args``: a list of ``(value, DType)`` already loaded (Python
scalars arrive as ``(number, None)``).  Operands are converted to the
computation dtype first, following NumPy: arithmetic computes in the
result dtype, comparisons in the operands' common dtype, logical ops on
truth values.  Integer division and modulo by zero give 0 (NumPy's result,
where LLVM's would be undefined).
"""
import numpy as _onp

from . import mathlib
from .irutil import DType, LoweringError, call_intrinsic, const, vec


class Cx:
    """Emission context: the builder and the vector width of the loop body."""

    def __init__(self, b, w):
        self.b, self.w = b, w


def cast(cx, v, src, dst):
    """Convert a register value from DType ``src`` to ``dst`` (NumPy casting;
    float -> int saturates where NumPy's result would be undefined)."""
    b, w = cx.b, cx.w
    if src is None:                                        # Python scalar literal
        return const(dst.reg, v, w)
    if src == dst:
        return v
    t = vec(dst.reg, w)
    if dst.kind == 'b':
        if src.is_float:
            return b.fcmp_unordered('!=', v, const(src.reg, 0.0, w))
        return b.icmp_unsigned('!=', v, const(src.reg, 0, w))
    if src.kind == 'b':
        return b.uitofp(v, t) if dst.is_float else b.zext(v, t)
    if src.is_float and dst.is_float:
        return b.fpext(v, t) if dst.itemsize > src.itemsize else b.fptrunc(v, t)
    if src.is_float:
        name = 'fptosi.sat' if dst.signed else 'fptoui.sat'
        from .irutil import intrinsic, type_suffix
        fn = intrinsic(b.module, f'llvm.{name}.{type_suffix(t)}.{type_suffix(v.type)}', t, [v.type])
        return b.call(fn, [v])
    if dst.is_float:
        return b.sitofp(v, t) if src.signed else b.uitofp(v, t)
    if dst.itemsize > src.itemsize:
        return b.sext(v, t) if src.signed else b.zext(v, t)
    if dst.itemsize < src.itemsize:
        return b.trunc(v, t)
    return v                                               # same width, other signedness


def _common(args):
    """NumPy's computation dtype for these operands (weak Python scalars)."""
    probes = [_onp.empty(0, d.np) if d is not None else v for v, d in args]
    return DType(_onp.result_type(*probes).name)


def _in(cx, out, args):
    return [cast(cx, v, d, out) for v, d in args]


def _binary(fop, iop, bop=None):
    def emit(cx, out, args):
        a, c = _in(cx, out, args)
        b = cx.b
        if out.kind == 'b':
            if bop is None:
                raise LoweringError('boolean arithmetic for this op')
            return getattr(b, bop)(a, c)
        if out.is_float:
            return getattr(b, fop)(a, c, flags=('contract',))
        return getattr(b, iop)(a, c)
    return emit


def _minmax(fname, signed_pred, bool_op):
    def emit(cx, out, args):
        a, c = _in(cx, out, args)
        b = cx.b
        if out.is_float:                    # NaN-propagating, like numpy.maximum
            return call_intrinsic(b, fname, a, c)
        if out.kind == 'b':
            return getattr(b, bool_op)(a, c)
        cmp = b.icmp_signed if out.signed else b.icmp_unsigned
        return b.select(cmp(signed_pred, a, c), a, c)
    return emit


def _int_div(cx, out, a, c, want_mod):
    """Floor division / modulo with NumPy's semantics and no UB."""
    b, w = cx.b, cx.w
    zero = const(out.reg, 0, w)
    is_zero = b.icmp_unsigned('==', c, zero)
    safe = b.select(is_zero, const(out.reg, 1, w), c)
    if not out.signed:
        q, r = b.udiv(a, safe), b.urem(a, safe)
    else:
        minus1 = b.icmp_signed('==', safe, const(out.reg, -1, w))
        safe = b.select(minus1, const(out.reg, 1, w), safe)        # avoid INT_MIN / -1
        q = b.select(minus1, b.neg(a), b.sdiv(a, safe))
        r = b.select(minus1, zero, b.srem(a, safe))
        # floor: adjust when the remainder's sign differs from the divisor's
        adjust = b.and_(b.icmp_signed('!=', r, zero),
                        b.icmp_signed('!=', b.icmp_signed('<', r, zero),
                                      b.icmp_signed('<', c, zero)))
        q = b.select(adjust, b.sub(q, const(out.reg, 1, w)), q)
        r = b.select(adjust, b.add(r, c), r)
    res = r if want_mod else q
    return b.select(is_zero, zero, res)


def _floor_divide(cx, out, args):
    a, c = _in(cx, out, args)
    b = cx.b
    if out.is_float:
        return call_intrinsic(b, 'floor', b.fdiv(a, c))
    if out.kind == 'b':
        raise LoweringError('floor_divide on booleans')
    return _int_div(cx, out, a, c, False)


def _mod(cx, out, args):
    a, c = _in(cx, out, args)
    b, w = cx.b, cx.w
    if out.is_float:                       # result takes the divisor's sign (numpy.mod)
        r = b.frem(a, c)
        zero = const(out.reg, 0.0, w)
        fix = b.and_(b.fcmp_ordered('!=', r, zero),
                     b.icmp_unsigned('!=', b.fcmp_ordered('<', r, zero),
                                     b.fcmp_ordered('<', c, zero)))
        return b.select(fix, b.fadd(r, c), r)
    if out.kind == 'b':
        raise LoweringError('mod on booleans')
    return _int_div(cx, out, a, c, True)


def _power(cx, out, args):
    if not out.is_float:
        raise LoweringError('integer power')
    a, c = _in(cx, out, args)
    return call_intrinsic(cx.b, 'pow', a, c)


def _compare(fpred, ipred):
    def emit(cx, out, args):
        common = _common(args)
        a, c = [cast(cx, v, d, common) for v, d in args]
        b = cx.b
        if common.is_float:
            if fpred == '!=':
                return b.fcmp_unordered('!=', a, c)
            return b.fcmp_ordered(fpred, a, c)
        cmp = b.icmp_signed if common.signed else b.icmp_unsigned
        return cmp(ipred, a, c)
    return emit


def _logical(name):
    def emit(cx, out, args):
        vals = [cast(cx, v, d, DType('bool')) for v, d in args]
        return getattr(cx.b, name)(*vals)
    return emit


def _unary_math(fn):
    def emit(cx, out, args):
        (x,) = _in(cx, out, args)
        if not out.is_float:
            raise LoweringError(f'{fn.__name__} of a non-float dtype')
        return fn(cx.b, x)
    return emit


def _negative(cx, out, args):
    (x,) = _in(cx, out, args)
    if out.is_float:
        return cx.b.fneg(x)
    if out.kind == 'b':
        raise LoweringError('negative of booleans')
    return cx.b.neg(x)


def _abs(cx, out, args):
    (x,) = _in(cx, out, args)
    b, w = cx.b, cx.w
    if out.is_float:
        return call_intrinsic(b, 'fabs', x)
    if out.kind == 'b' or not out.signed:
        return x
    return b.select(b.icmp_signed('<', x, const(out.reg, 0, w)), b.neg(x), x)


def _sign(cx, out, args):
    (x,) = _in(cx, out, args)
    b, w = cx.b, cx.w
    if out.kind == 'b':
        return x
    zero, one, m1 = const(out.reg, 0, w), const(out.reg, 1, w), const(out.reg, -1, w)
    if out.is_float:
        pos = b.select(b.fcmp_ordered('>', x, zero), one, zero)
        s = b.select(b.fcmp_ordered('<', x, zero), m1, pos)
        return b.select(b.fcmp_unordered('uno', x, x), x, s)        # sign(nan) = nan
    if not out.signed:
        return b.select(b.icmp_unsigned('>', x, zero), one, zero)
    pos = b.select(b.icmp_signed('>', x, zero), one, zero)
    return b.select(b.icmp_signed('<', x, zero), m1, pos)


def _relu(cx, out, args):
    (x,) = _in(cx, out, args)
    b, w = cx.b, cx.w
    zero = const(out.reg, 0, w)
    if out.is_float:
        return call_intrinsic(b, 'maximum', x, zero)
    if out.kind == 'b':
        return x
    cmp = b.icmp_signed if out.signed else b.icmp_unsigned
    return b.select(cmp('>', x, zero), x, zero)


def _where(cx, out, args):
    (cv, cd), a, c = args
    cond = cast(cx, cv, cd, DType('bool'))
    a, c = _in(cx, out, [a, c])
    return cx.b.select(cond, a, c)


def _clip(cx, out, args, attrs):
    (x,) = _in(cx, out, args)
    for bound, name in ((attrs.get('a_min'), 'maximum'), (attrs.get('a_max'), 'minimum')):
        if bound is not None:
            x = _minmax(name, '>' if name == 'maximum' else '<',
                        'or_' if name == 'maximum' else 'and_')(
                cx, out, [(x, out), (bound, None)])
    return x


def _astype(cx, out, args):
    (v, d), = args
    return cast(cx, v, d, out)


def _invert(cx, out, args):
    (x,) = _in(cx, out, args)
    if out.kind == 'b':
        return cx.b.not_(x)
    return cx.b.xor(x, const(out.reg, -1, cx.w))


def _logical_not(cx, out, args):
    (v, d), = args
    return cx.b.not_(cast(cx, v, d, DType('bool')))


def _identity(cx, out, args):
    (x,) = _in(cx, out, args)
    return x


EMITTERS = {
    'add': _binary('fadd', 'add', 'or_'),
    'subtract': _binary('fsub', 'sub'),
    'multiply': _binary('fmul', 'mul', 'and_'),
    'divide': _binary('fdiv', None),
    'maximum': _minmax('maximum', '>', 'or_'),
    'minimum': _minmax('minimum', '<', 'and_'),
    'floor_divide': _floor_divide,
    'mod': _mod,
    'power': _power,
    'equal': _compare('==', '=='),
    'not_equal': _compare('!=', '!='),
    'less': _compare('<', '<'),
    'less_equal': _compare('<=', '<='),
    'greater': _compare('>', '>'),
    'greater_equal': _compare('>=', '>='),
    'logical_and': _logical('and_'),
    'logical_or': _logical('or_'),
    'logical_not': _logical_not,
    'invert': _invert,
    'negative': _negative,
    'abs': _abs,
    'sign': _sign,
    'relu': _relu,
    'exp': _unary_math(mathlib.exp),
    'log': _unary_math(mathlib.log),
    'sqrt': _unary_math(mathlib.sqrt),
    'tanh': _unary_math(mathlib.tanh),
    'sigmoid': _unary_math(mathlib.sigmoid),
    'erf': _unary_math(mathlib.erf),
    'softrelu': _unary_math(mathlib.softrelu),
    'where': _where,
    'astype': _astype,
    'stop_gradient': _identity,
    'broadcast_to': _identity,
}
NEEDS_ATTRS = {'clip': _clip}


def emit(cx, op, out, args, attrs):
    """The value of elementwise ``op`` (node dtype ``out``) on ``args``."""
    if op in NEEDS_ATTRS:
        return NEEDS_ATTRS[op](cx, out, args, attrs)
    try:
        fn = EMITTERS[op]
    except KeyError:
        raise LoweringError(f'no elementwise lowering for op {op!r}') from None
    return fn(cx, out, args)


def is_elementwise_lowerable(op):
    return op in EMITTERS or op in NEEDS_ATTRS


