"""llvmlite.ir helpers shared by the kernel emitters: dtypes, constants,
vectors, counted loops and intrinsic declarations."""
import numpy as _onp
from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
VOID = ir.VoidType()
PTR = ir.PointerType()          # opaque pointer


class LoweringError(NotImplementedError):
    """This graph (op, dtype or indexing form) has no native lowering yet."""


# ------------------------------------------------------------------ dtypes
class DType:
    """How a numpy dtype lives in registers (``reg``) and in memory (``mem``)."""

    def __init__(self, name):
        d = _onp.dtype(name)
        self.np = d
        self.name = d.name
        self.kind = d.kind                 # 'f', 'i', 'u', 'b'
        self.itemsize = d.itemsize
        if d == _onp.float32:
            self.reg = self.mem = F32
        elif d == _onp.float64:
            self.reg = self.mem = F64
        elif d.kind in 'iu':
            self.reg = self.mem = ir.IntType(8 * d.itemsize)
        elif d.kind == 'b':
            self.reg, self.mem = I1, I8
        else:
            raise LoweringError(f'dtype {d.name} has no native lowering')

    @property
    def is_float(self):
        return self.kind == 'f'

    @property
    def signed(self):
        return self.kind == 'i'

    def __eq__(self, other):
        return isinstance(other, DType) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


def dt(name):
    return DType(name)


def vec(t, w):
    return t if w == 1 else ir.VectorType(t, w)


def splat(b, value, w):
    """Broadcast a scalar to ``w`` lanes (no-op for w == 1)."""
    if w == 1:
        return value
    vt = ir.VectorType(value.type, w)
    undef = ir.Constant(vt, ir.Undefined)
    v = b.insert_element(undef, value, I32(0))
    return b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, w), [0] * w))


def const(t, value, w=1):
    """A constant of register type ``t`` (scalar) splatted to ``w`` lanes."""
    if isinstance(t, (ir.FloatType, ir.DoubleType)):
        c = ir.Constant(t, float(value))
    elif t == I1:
        c = ir.Constant(t, int(bool(value)))
    else:
        c = ir.Constant(t, int(value))
    return c if w == 1 else ir.Constant(ir.VectorType(t, w), [c] * w)


def intrinsic(module, name, ret, args):
    """Declare (once) an intrinsic or external function by its full name."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name)
    return fn


def type_suffix(t):
    if isinstance(t, ir.VectorType):
        return f'v{t.count}{type_suffix(t.element)}'
    if t == F32:
        return 'f32'
    if t == F64:
        return 'f64'
    return f'i{t.width}'


def call_intrinsic(b, base, *args):
    """``llvm.<base>.<type>`` on values of the first argument's type."""
    t = args[0].type
    fn = intrinsic(b.module, f'llvm.{base}.{type_suffix(t)}', t, [a.type for a in args])
    return b.call(fn, args)


# ------------------------------------------------------------------ memory
def stack(b, elem_type, count=1, name=''):
    """An opaque pointer to ``count`` elements of stack memory."""
    t = ir.ArrayType(elem_type, count) if count != 1 else elem_type
    a = b.alloca(t, name=name)
    a.type = PTR            # llvmlite types allocas as typed pointers; use it opaquely
    return a


def load(b, ptr, dtype, index, w=1):
    """Load ``w`` consecutive elements at ``ptr[index]`` as register values."""
    p = b.gep(ptr, [index], source_etype=dtype.mem)
    t = vec(dtype.mem, w)
    v = b.load(p, typ=t, align=dtype.itemsize)
    if dtype.mem != dtype.reg:                       # bool: i8 in memory, i1 in registers
        v = b.icmp_unsigned('!=', v, const(dtype.mem, 0, w))
    return v


def store(b, value, ptr, dtype, index, w=1):
    if dtype.mem != dtype.reg:
        value = b.zext(value, vec(dtype.mem, w))
    p = b.gep(ptr, [index], source_etype=dtype.mem)
    b.store(value, p, align=dtype.itemsize)


def buffer_ptr(b, table, slot):
    """Pointer number ``slot`` of the kernel's buffer table (``ptr* table``)."""
    p = b.gep(table, [I64(slot)], source_etype=PTR)
    return b.load(p, typ=PTR, align=8)


# ------------------------------------------------------------------ loops
class Loop:
    """``with Loop(b, start, stop, step) as i:`` emits a counted loop; the body
    is built inside the ``with``.  ``start``/``stop`` are ints or i64 values."""

    def __init__(self, b, start, stop, step=1, name='i'):
        self.b, self.step, self.name = b, step, name
        self.start = I64(start) if isinstance(start, int) else start
        self.stop = I64(stop) if isinstance(stop, int) else stop

    def __enter__(self):
        b = self.b
        fn = b.function
        self.pre = b.block
        self.head = fn.append_basic_block(f'{self.name}.head')
        self.body = fn.append_basic_block(f'{self.name}.body')
        self.exit = fn.append_basic_block(f'{self.name}.exit')
        b.branch(self.head)
        b.position_at_end(self.head)
        self.index = b.phi(I64, name=self.name)
        self.index.add_incoming(self.start, self.pre)
        cond = b.icmp_signed('<', self.index, self.stop)
        b.cbranch(cond, self.body, self.exit)
        b.position_at_end(self.body)
        return self.index

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            return False
        b = self.b
        nxt = b.add(self.index, I64(self.step), name=f'{self.name}.next', flags=('nsw',))
        self.index.add_incoming(nxt, b.block)
        b.branch(self.head)
        b.position_at_end(self.exit)
        return False


def horizontal(b, op, v):
    """Reduce a vector to a scalar with an ``llvm.vector.reduce.*`` intrinsic."""
    t = v.type
    if not isinstance(t, ir.VectorType):
        return v
    el = t.element
    suffix = type_suffix(t)
    if op in ('fadd', 'fmul'):
        start = const(el, 0.0 if op == 'fadd' else 1.0)
        fn = intrinsic(b.module, f'llvm.vector.reduce.{op}.{suffix}', el, [el, t])
        return b.call(fn, [start, v], fastmath=('reassoc',))
    fn = intrinsic(b.module, f'llvm.vector.reduce.{op}.{suffix}', el, [t])
    return b.call(fn, [v])
