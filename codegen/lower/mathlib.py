"""Fast elementwise math emitted as LLVM IR (llvmlite.ir) for fused loops.

Every public function has the signature ``f(b, x) -> value``: ``b`` is an
``ir.IRBuilder`` positioned inside a function, ``x`` a value of type
``float``, ``double``, ``<N x float>`` or ``<N x double>``; the result has
the type of ``x``.  Functions may be emitted any number of times into the
same module: the declarations they need (intrinsics, libm) are looked up in
``module.globals`` before being created.

float32 (scalar or any vector width) is computed inline, branch-free, with
``llvm.fma`` polynomial / rational approximations, so the same code
vectorizes to 512-bit registers.  Documented accuracy (max relative error
against a float64 reference, measured by tests/test_mathlib.py over dense
grids; absolute error where |reference| < 1e-30):

    exp       8.1e-8  range reduction by ln2 + degree-6 minimax polynomial
    log       7.9e-8  mantissa in [sqrt(.5), sqrt 2) + degree-10 polynomial
    tanh      2.8e-7  odd/even rational (Eigen's generic_fast_tanh_float)
    sigmoid   1.7e-7  e/(1+e) or 1/(1+e), e = exp(-|x|)
    erf       3.6e-7  odd/even rational (Eigen's generic_fast_erf_float)
    softrelu  1.4e-7  max(x,0) + log1p(exp(-|x|)), log1p accurate on [0,1]

Special values follow IEEE/numpy: exp overflows to +inf (x > 88.72) and
underflows through the subnormals to 0 (x < -103.97); log(0) = -inf,
log(x<0) = nan, log(+inf) = +inf, subnormal inputs are rescaled; tanh/erf
saturate to +-1, sigmoid to 0/1; nan propagates everywhere.  No fast-math
flags are used: the special-value handling relies on IEEE inf/nan semantics.

float64 calls the C library per lane (``exp``, ``log``, ``tanh``, ``erf``,
``log1p``), with sigmoid and softrelu composed from them.  sqrt and abs use
``llvm.sqrt`` / ``llvm.fabs`` for every type.
"""
import math

from llvmlite import ir

__all__ = ['exp', 'log', 'tanh', 'sigmoid', 'erf', 'softrelu', 'sqrt', 'abs']

_F32 = ir.FloatType()
_F64 = ir.DoubleType()
_I32 = ir.IntType(32)


# ------------------------------------------------------------------ types
def _split(ty):
    """(element type, lane count or None) of a float scalar / vector type."""
    if isinstance(ty, ir.VectorType):
        elt, n = ty.element, ty.count
    else:
        elt, n = ty, None
    if not isinstance(elt, (ir.FloatType, ir.DoubleType)):
        raise TypeError(f'mathlib: expected float/double (or a vector of '
                        f'them), got {ty}')
    return elt, n


def _is_f32(ty):
    return isinstance(_split(ty)[0], ir.FloatType)


def _int_type(ty):
    """i32 or <N x i32> matching a float32 type."""
    _, n = _split(ty)
    return _I32 if n is None else ir.VectorType(_I32, n)


def _suffix(ty):
    elt, n = _split(ty)
    s = 'f32' if isinstance(elt, ir.FloatType) else 'f64'
    return s if n is None else f'v{n}{s}'


def _c(ty, value):
    """Constant of type ``ty`` (splat for vectors)."""
    return ir.Constant(ty, value)


# ------------------------------------------------------------ declarations
def _module(b):
    return b.block.parent.module


def _intrinsic(b, name, ty, nargs):
    """Declare (once) and return ``llvm.<name>.<suffix>`` of type ty(ty,...).

    Declared by name because ``Module.declare_intrinsic`` does not accept
    vector types."""
    mod = _module(b)
    full = f'llvm.{name}.{_suffix(ty)}'
    fn = mod.globals.get(full)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(ty, [ty] * nargs), full)
    return fn


def _libm(b, name):
    """Declare (once) and return the C function ``double name(double)``."""
    mod = _module(b)
    fn = mod.globals.get(name)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(_F64, [_F64]), name)
        fn.attributes.add('nounwind')
    return fn


def _fma(b, x, y, z):
    return b.call(_intrinsic(b, 'fma', x.type, 3), [x, y, z])


def _fabs(b, x):
    return b.call(_intrinsic(b, 'fabs', x.type, 1), [x])


def _copysign(b, mag, sign):
    return b.call(_intrinsic(b, 'copysign', mag.type, 2), [mag, sign])


def _horner(b, x, coeffs):
    """coeffs[0] + x*(coeffs[1] + x*(...)), highest degree last, with fma."""
    ty = x.type
    acc = _c(ty, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = _fma(b, acc, x, _c(ty, c))
    return acc


def _clamp(b, x, lo, hi):
    """min(max(x, lo), hi) that lets nan through (ordered compares)."""
    ty = x.type
    x = b.select(b.fcmp_ordered('>', x, _c(ty, hi)), _c(ty, hi), x)
    return b.select(b.fcmp_ordered('<', x, _c(ty, lo)), _c(ty, lo), x)


def _per_lane(b, fn, x):
    """Apply the scalar double function ``fn`` to every lane of ``x``."""
    _, n = _split(x.type)
    if n is None:
        return b.call(fn, [x])
    out = ir.Constant(x.type, ir.Undefined)
    for i in range(n):
        idx = _I32(i)
        out = b.insert_element(out, b.call(fn, [b.extract_element(x, idx)]),
                               idx)
    return out


# --------------------------------------------------------- float32 kernels
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693359375                 # 9 significant bits: k*LN2_HI is exact
_LN2_LO = -2.12194440054690583e-4     # ln 2 - LN2_HI
_ROUND = 12582912.0                   # 1.5 * 2**23: adding it rounds to int

# exp(r) = 1 + r + r^2 * P(r) on |r| <= ln2/2: minimax for relative error
# (fit error 3.1e-9; coefficients are float32 values).
_EXP_P = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799,
          0.008368710055947304, 0.001381461275741458)

# log1p(f) = f - f^2/2 + f^3 * P(f) on [sqrt(.5)-1, sqrt(2)-1]: minimax
# for relative error (fit error 5.8e-9).
_LOG_P = (0.3333333134651184, -0.2500081956386566, 0.20001226663589478,
          -0.16623356938362122, 0.14201757311820984, -0.13160182535648346,
          0.1276157647371292, -0.07634496688842773)

# tanh(x) = x * P(x^2) / Q(x^2) on [-9, 9], the 13/6 rational interpolant
# of Eigen's generic_fast_tanh_float.
_TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
           5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
           -2.76076847742355e-16)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
           1.19825839466702e-06)
_TANH_CLAMP = 9.0

# erf(x) = x * P(x^2) / Q(x^2) for |x| < c = erfinv(1 - 2^-23), +-1 beyond:
# the 9/12 rational of Eigen's generic_fast_erf_float (3 ulp).
_ERF_P = (1.128379143519084, 0.18520832239976145, 0.050955695062380861,
          0.0034082910107109506, 0.00022905065861350646)
_ERF_Q = (1.0, 0.49746925110067538, 0.11098505178285362, 0.014070470171167667,
          0.0010179625278914885, 0.000023547966471313185,
          -1.1791602954361697e-7)
_ERF_CLAMP = 3.832506856900711


def _pow2i(b, k, ty):
    """2.0**k as float32 from an i32 (vector) k in [-126, 127]."""
    ity = k.type
    bits = b.shl(b.add(k, _c(ity, 127)), _c(ity, 23))
    return b.bitcast(bits, ty)


def _exp_f32(b, x):
    ty = x.type
    ity = _int_type(ty)
    # Above 89 the result is +inf and below -104 it is 0 anyway; the clamp
    # keeps k in [-150, 129] so 2^k can be built as 2^k1 * 2^k2 with both
    # halves normal.  Ordered compares: nan stays nan.
    xc = _clamp(b, x, -104.0, 89.0)
    # k = round(x / ln2) via the 1.5*2^23 trick: no fptosi (poison on nan),
    # the integer k sits in the low mantissa bits of t.
    t = _fma(b, xc, _c(ty, _LOG2E), _c(ty, _ROUND))
    kf = b.fsub(t, _c(ty, _ROUND))
    ki = b.sub(b.bitcast(t, ity), _c(ity, 0x4B400000))      # bits of _ROUND
    r = _fma(b, kf, _c(ty, -_LN2_HI), xc)
    r = _fma(b, kf, _c(ty, -_LN2_LO), r)
    p = _horner(b, r, _EXP_P)
    p = _fma(b, p, b.fmul(r, r), r)
    p = b.fadd(p, _c(ty, 1.0))
    k1 = b.ashr(ki, _c(ity, 1))
    k2 = b.sub(ki, k1)
    # Two multiplies: overflow to inf / gradual underflow come out of IEEE.
    return b.fmul(b.fmul(p, _pow2i(b, k1, ty)), _pow2i(b, k2, ty))


def _log1p_core(b, f):
    """log1p(f) for f in [sqrt(.5)-1, sqrt(2)-1] (exact f, no 1+f)."""
    ty = f.type
    z = b.fmul(f, f)
    y = _fma(b, _horner(b, f, _LOG_P), f, _c(ty, -0.5))
    return _fma(b, y, z, f)


def _log_f32(b, x):
    ty = x.type
    ity = _int_type(ty)
    # Scale subnormals into the normal range (exponent correction -23).
    tiny = b.fcmp_ordered('<', x, _c(ty, 1.1754943508222875e-38))
    xs = b.select(tiny, b.fmul(x, _c(ty, 8388608.0)), x)
    ebias = b.select(tiny, _c(ity, -150), _c(ity, -127))
    bits = b.bitcast(xs, ity)
    e = b.add(b.lshr(bits, _c(ity, 23)), ebias)
    m = b.bitcast(b.or_(b.and_(bits, _c(ity, 0x007FFFFF)),
                        _c(ity, 0x3F800000)), ty)                 # [1, 2)
    big = b.fcmp_ordered('>', m, _c(ty, math.sqrt(2.0)))
    f = b.fsub(b.select(big, b.fmul(m, _c(ty, 0.5)), m), _c(ty, 1.0))  # exact
    e = b.add(e, b.zext(big, ity))
    ef = b.sitofp(e, ty)
    r = _fma(b, ef, _c(ty, _LN2_LO), _log1p_core(b, f))
    r = _fma(b, ef, _c(ty, _LN2_HI), r)
    r = b.select(b.fcmp_ordered('==', x, _c(ty, math.inf)),
                 _c(ty, math.inf), r)
    r = b.select(b.fcmp_ordered('==', x, _c(ty, 0.0)), _c(ty, -math.inf), r)
    # x < 0 or x is nan
    return b.select(b.fcmp_unordered('<', x, _c(ty, 0.0)),
                    _c(ty, math.nan), r)


def _log1p_01_f32(b, y):
    """log1p(y) for y in [0, 1] (or nan), accurate to float32 rounding even
    for subnormal y: 1+y is never formed."""
    ty = y.type
    big = b.fcmp_ordered('>', y, _c(ty, math.sqrt(2.0) - 1.0))
    # big: 1 + y = 2 * (1 + f) with f = (y - 1) / 2 in [-0.293, 0]
    f = b.select(big, b.fmul(b.fsub(y, _c(ty, 1.0)), _c(ty, 0.5)), y)
    k = b.select(big, _c(ty, 1.0), _c(ty, 0.0))
    r = _fma(b, k, _c(ty, _LN2_LO), _log1p_core(b, f))
    return _fma(b, k, _c(ty, _LN2_HI), r)


def _tanh_f32(b, x):
    xc = _clamp(b, x, -_TANH_CLAMP, _TANH_CLAMP)
    x2 = b.fmul(xc, xc)
    ratio = b.fdiv(_horner(b, x2, _TANH_P), _horner(b, x2, _TANH_Q))
    # x * (P/Q), not (x*P)/Q: P's leading term ~5e-3 would lose the low bits
    # of subnormal x.
    r = b.fmul(xc, ratio)
    return _clamp(b, r, -1.0, 1.0)


def _erf_f32(b, x):
    ty = x.type
    xc = _clamp(b, x, -_ERF_CLAMP, _ERF_CLAMP)
    x2 = b.fmul(xc, xc)
    r = b.fmul(xc, b.fdiv(_horner(b, x2, _ERF_P), _horner(b, x2, _ERF_Q)))
    sat = b.fcmp_ordered('>=', _fabs(b, x), _c(ty, _ERF_CLAMP))
    return b.select(sat, _copysign(b, _c(ty, 1.0), x), r)


def _sigmoid_f32(b, x):
    ty = x.type
    e = _exp_f32(b, b.fneg(_fabs(b, x)))               # in [0, 1], no overflow
    num = b.select(b.fcmp_ordered('>=', x, _c(ty, 0.0)), _c(ty, 1.0), e)
    return b.fdiv(num, b.fadd(e, _c(ty, 1.0)))


def _softrelu_f32(b, x):
    ty = x.type
    e = _exp_f32(b, b.fneg(_fabs(b, x)))
    pos = b.select(b.fcmp_ordered('>', x, _c(ty, 0.0)), x, _c(ty, 0.0))
    return b.fadd(pos, _log1p_01_f32(b, e))              # nan via e


# ------------------------------------------------------------- public API
def exp(b, x):
    """e**x."""
    if _is_f32(x.type):
        return _exp_f32(b, x)
    return _per_lane(b, _libm(b, 'exp'), x)


def log(b, x):
    """Natural logarithm (-inf at 0, nan below 0)."""
    if _is_f32(x.type):
        return _log_f32(b, x)
    return _per_lane(b, _libm(b, 'log'), x)


def tanh(b, x):
    """Hyperbolic tangent."""
    if _is_f32(x.type):
        return _tanh_f32(b, x)
    return _per_lane(b, _libm(b, 'tanh'), x)


def erf(b, x):
    """Error function."""
    if _is_f32(x.type):
        return _erf_f32(b, x)
    return _per_lane(b, _libm(b, 'erf'), x)


def sigmoid(b, x):
    """1 / (1 + exp(-x)), evaluated without overflow for either sign."""
    if _is_f32(x.type):
        return _sigmoid_f32(b, x)
    ty = x.type
    e = _per_lane(b, _libm(b, 'exp'), b.fneg(_fabs(b, x)))
    num = b.select(b.fcmp_ordered('>=', x, _c(ty, 0.0)), _c(ty, 1.0), e)
    return b.fdiv(num, b.fadd(e, _c(ty, 1.0)))


def softrelu(b, x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); exp(x) for x << 0."""
    if _is_f32(x.type):
        return _softrelu_f32(b, x)
    ty = x.type
    e = _per_lane(b, _libm(b, 'exp'), b.fneg(_fabs(b, x)))
    pos = b.select(b.fcmp_ordered('>', x, _c(ty, 0.0)), x, _c(ty, 0.0))
    return b.fadd(pos, _per_lane(b, _libm(b, 'log1p'), e))


def sqrt(b, x):
    """Square root (llvm.sqrt; nan below 0)."""
    _split(x.type)
    return b.call(_intrinsic(b, 'sqrt', x.type, 1), [x])


def abs(b, x):  # noqa: A001  (the op is called abs)
    """|x| (llvm.fabs)."""
    _split(x.type)
    return _fabs(b, x)
