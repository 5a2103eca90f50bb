"""Register-tiled matrix-multiply kernels emitted as LLVM IR (llvmlite.ir).

    emit_matmul(module, name, M, N, K, *, dtype='float32', trans_b=False,
                lda=None, ldb=None, ldc=None, epilogue=None, vector_width=16)

emits ``void name(T* A, T* B, T* C, i8** extra, i64 batch, i64 m_begin,
i64 m_end)`` computing, for the rows ``m`` in ``[m_begin, m_end)`` (clamped
to ``[0, M)``) and every ``n`` in ``[0, N)``::

    C[m*ldc + n] = epilogue(sum_k A[m*lda + k] * Bk(k, n))

with ``Bk(k, n) = B[k*ldb + n]`` (``trans_b=False``) or ``B[n*ldb + k]``
(``trans_b=True``, the layout of Dense weights).  Shapes are static; only
the row range is known at run time, so callers can split rows across
threads.  ``batch`` is only handed to the epilogue.

``epilogue(builder, extra, batch, row, col, acc) -> value`` is called at
code-generation time for every store of a finished result (never for a
partial sum): ``row`` and ``col`` are i64 values (``col`` is the first column
of the stored group), ``acc`` is a ``<W x T>`` vector (W is the width used at
that store: 16, 8, 4, 2 for float32) or a scalar ``T`` for single columns.
It returns the value to store, of the same type.

Design (tile sizes and thresholds were chosen by measurement on a znver5
host, 2 zmm FMAs per cycle; see benchmarks/matmul_kernel.py):

* Tiled path.  Columns are cut into panels of ``NR = nv*W`` columns (default
  2 x 16 floats), then one tail panel of narrower vectors (16, 8, 4 lanes
  for float32), then the last < 4 columns.  For every panel the rows are
  run in tiles of ``mr`` rows (default 8).  A tile keeps ``mr x nv`` vector
  accumulators in registers (16 zmm) and runs the k loop innermost: per k,
  ``nv`` B vectors and ``mr`` broadcast A elements feed ``mr*nv``
  ``llvm.fma`` calls.  The leftover ``r < mr`` rows of the run-time range
  get one exact tile when ``r == M % mr`` (the whole-range case) and else
  tiles of 4, 2 and 1 rows by the bits of ``r``.
* Packing.  With ``trans_b=True`` each panel of B ((N, K), k contiguous) is
  transposed into a contiguous ``KC x NR`` stack buffer with 16 x 16
  in-register shuffle transposes (masked loads/stores at the edges), so the
  micro-kernel reads contiguous vectors.  ``trans_b=False`` reads B rows in
  place (already contiguous along n), or copies the panel when the row
  stride is a multiple of 4 KiB (cache-set aliasing) and M >= 32.  The
  buffer is at most 32 KiB (it stays in L1): for larger ``K*NR`` the k range
  is cut in blocks of KC, partial sums go through C (raw) and the epilogue
  is applied in the last block only.
* Dot path.  With ``trans_b=True`` and few rows (``M <= 2`` or
  ``M <= min(48, K // 10)``, or ``M <= 6`` if B exceeds 4 MiB, since every
  block of rows streams all of B), and for the last < 4 columns, no panel is
  packed: each (row, column) pair is a dot product vectorized over k
  (masked tail), a block of up to 6 rows x 4-8 columns of vector
  accumulators is reduced by a butterfly of shuffles to one ``<c x T>``
  vector per row.  For ``trans_b=False`` the last < 4 columns are first
  copied transposed (when ``M >= 8`` and they fit 32 KiB; else scalar FMAs).
* Memory: every access is in bounds (remainders use narrower vectors,
  scalars or masked loads/stores, which do not touch masked-off lanes);
  vector loads and stores use the element alignment only (numpy arrays
  are not 64-byte aligned).  No pointer argument is marked ``noalias``:
  C must not overlap A or B, but an epilogue may read C-sized buffers
  that alias C (e.g. an in-place residual).
"""
from llvmlite import ir

__all__ = ['DEFAULT_TILES', 'emit_matmul']

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = ir.IntType(8).as_pointer()

# Tunables, chosen by measurement (benchmarks/matmul_kernel.py).
DEFAULT_TILES = {
    'mr': 8,                 # rows of a register tile
    'nv': 2,                 # vectors of W lanes per panel row (NR = nv*W)
    'stack_bytes': 32 * 1024,    # budget of the packed B panel (stack, L1-resident)
    # trans_b: dot-product path (no packing) when M <= dot_m_min, or when
    # M <= min(dot_m_max, K // dot_k_per_row) (and M <= dot_rows if B is
    # larger than dot_b_bytes)
    'dot_m_min': 2,
    'dot_m_max': 48,
    'dot_k_per_row': 10,
    'dot_b_bytes': 4 << 20,
    'dot_rows': 6,           # at most this many rows per dot block
    'dot_acc': 24,           # accumulators per dot block (rows x columns)
    'pack_nt': True,         # pack B panels for trans_b=False too (copies)...
    'pack_nt_min_m': 32,     # ...when M >= this
    'pack_nt_alias': 4096,   # ...and ldb*itemsize is a multiple of this
    'nt_dot_min_m': 8,       # trans_b=False, M >= this: last < 4 columns by the dot path
    'mc_bytes': 0,           # row blocks with an A block of this size (0: off)
    'k_unroll': True,        # let LLVM unroll the micro-kernel k loop
    'dot_unroll': False,     # let LLVM unroll dot k loops of > 8 accumulators (spills)
}


# ------------------------------------------------------------------ helpers
def _i64(v):
    return ir.Constant(I64, v)


def _intrinsic(module, name, ret, args):
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, list(args)), name)
    return fn


class _Emitter:
    def __init__(self, module, fn, T, W, M, N, K, trans_b, lda, ldb, ldc,
                 epilogue, cfg):
        self.module, self.fn = module, fn
        self.T, self.W = T, W
        self.esz = 4 if isinstance(T, ir.FloatType) else 8
        self.tsuf = 'f32' if self.esz == 4 else 'f64'
        self.M, self.N, self.K = M, N, K
        self.trans_b = trans_b
        self.lda, self.ldb, self.ldc = lda, ldb, ldc
        self.epilogue = epilogue
        self.cfg = cfg
        self.A, self.B, self.C, self.extra, self.batch = fn.args[:5]
        self.dot_b = (self.B, ldb, 0)   # (base, row stride, first column) of B^T rows
        self.b = None

    # ---------------------------------------------------------- basic ops
    def vty(self, w):
        return self.T if w == 1 else ir.VectorType(self.T, w)

    def zero(self, w):
        return ir.Constant(self.vty(w), 0.0 if w == 1 else None)

    def ptr(self, base, off):
        """base + off elements (off an int or an i64 value)."""
        if isinstance(off, int):
            if off == 0:
                return base
            off = _i64(off)
        return self.b.gep(base, [off], inbounds=True)

    def load(self, p, w):
        b = self.b
        if w == 1:
            return b.load(p, align=self.esz)
        return b.load(b.bitcast(p, self.vty(w).as_pointer()), align=self.esz)

    def store(self, v, p, w):
        b = self.b
        if w == 1:
            b.store(v, p, align=self.esz)
        else:
            b.store(v, b.bitcast(p, self.vty(w).as_pointer()), align=self.esz)

    def _mask(self, w, n):
        return ir.Constant(ir.VectorType(I1, w), [1 if i < n else 0 for i in range(w)])

    def masked_load(self, p, w, n):
        """Lanes [0, n) of a <w x T> vector at p, zero elsewhere; lanes >= n
        are not accessed."""
        if n >= w:
            return self.load(p, w)
        vt = self.vty(w)
        f = _intrinsic(self.module, f'llvm.masked.load.v{w}{self.tsuf}.p0', vt,
                       [vt.as_pointer(), I32, ir.VectorType(I1, w), vt])
        return self.b.call(f, [self.b.bitcast(p, vt.as_pointer()), ir.Constant(I32, self.esz),
                               self._mask(w, n), self.zero(w)])

    def masked_store(self, v, p, w, n):
        if n >= w:
            return self.store(v, p, w)
        vt = self.vty(w)
        f = _intrinsic(self.module, f'llvm.masked.store.v{w}{self.tsuf}.p0', ir.VoidType(),
                       [vt, vt.as_pointer(), I32, ir.VectorType(I1, w)])
        self.b.call(f, [v, self.b.bitcast(p, vt.as_pointer()), ir.Constant(I32, self.esz),
                        self._mask(w, n)])

    def fma(self, x, y, z):
        t = x.type
        name = f'llvm.fma.{self.tsuf}' if t == self.T else f'llvm.fma.v{t.count}{self.tsuf}'
        return self.b.call(_intrinsic(self.module, name, t, [t, t, t]), [x, y, z])

    def bcast(self, s, w):
        if w == 1:
            return s
        b = self.b
        vt = self.vty(w)
        v = b.insert_element(ir.Constant(vt, ir.Undefined), s, ir.Constant(I32, 0))
        return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                ir.Constant(ir.VectorType(I32, w), [0] * w))

    def shuf(self, x, y, idx):
        return self.b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, len(idx)), list(idx)))

    def run_epilogue(self, row, col, v):
        if self.epilogue is None:
            return v
        out = self.epilogue(self.b, self.extra, self.batch, row, col, v)
        if out.type != v.type:
            raise TypeError(f'epilogue returned {out.type}, expected {v.type}')
        return out

    # ---------------------------------------------------------- control flow
    def nounroll_md(self):
        """Loop metadata ``!{self, !{"llvm.loop.unroll.disable"}}``."""
        m = self.module
        dis = m.add_metadata([ir.MetaDataString(m, 'llvm.loop.unroll.disable')])
        md = m.add_metadata([dis, dis])      # cached per module by operands
        if md.operands[0] is not md:
            md.operands = (md, dis)          # self reference, as LLVM requires
        return md

    def loop(self, start, cond, step, body, init=(), name='i', unroll=True):
        """while cond(i): vals = body(i, vals); i += step.  Returns (i, vals)
        as seen at the exit (valid after the loop)."""
        b = self.b
        pre = b.block
        hdr = self.fn.append_basic_block(name + '.hdr')
        bod = self.fn.append_basic_block(name + '.body')
        ext = self.fn.append_basic_block(name + '.exit')
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(I64, name=name)
        i.add_incoming(start, pre)
        phis = []
        for v in init:
            p = b.phi(v.type)
            p.add_incoming(v, pre)
            phis.append(p)
        b.cbranch(cond(i), bod, ext)
        b.position_at_end(bod)
        new = body(i, list(phis)) if init else body(i, [])
        nxt = b.add(i, step if not isinstance(step, int) else _i64(step), flags=['nsw', 'nuw'])
        end = b.block
        i.add_incoming(nxt, end)
        for p, v in zip(phis, new or []):
            p.add_incoming(v, end)
        br = b.branch(hdr)
        if not unroll:
            br.set_metadata('llvm.loop', self.nounroll_md())
        b.position_at_end(ext)
        return i, phis

    def count_loop(self, n, body, init=(), name='i', unroll=True):
        """for i in range(n) (n a Python int)."""
        stop = _i64(n)
        return self.loop(_i64(0), lambda i: self.b.icmp_unsigned('<', i, stop), 1, body,
                         init, name, unroll)[1]

    def row_tiles(self, tile, mr):
        """Run tile(r, m) over [m_begin, m_end): tiles of mr rows, then the
        r < mr leftover rows: one exact tile when r is the leftover of the
        whole range (M % mr), else tiles of 4, 2, 1 rows by the bits of r
        (partial ranges from threads), which keeps the code small."""
        b = self.b
        mb, me = self.m_begin, self.m_end

        def cond(m):
            return b.icmp_signed('<=', b.add(m, _i64(mr)), me)

        def body(m, _):
            tile(mr, m)
            return []

        m_after, _ = self.loop(mb, cond, mr, body, name='m')
        if mr == 1:
            return
        r = b.sub(me, m_after)
        done = self.fn.append_basic_block('rows.done')
        rest = self.fn.append_basic_block('rows.rest')
        b.cbranch(b.icmp_signed('>', r, _i64(0)), rest, done)
        b.position_at_end(rest)
        common = self.M % mr
        if common & (common - 1):            # not a power of two (nor 0)
            exact = self.fn.append_basic_block(f'rows.exact{common}')
            bits = self.fn.append_basic_block('rows.bits')
            b.cbranch(b.icmp_signed('==', r, _i64(common)), exact, bits)
            b.position_at_end(exact)
            tile(common, m_after)
            b.branch(done)
            b.position_at_end(bits)
        m = m_after
        p = 1
        while p * 2 < mr:
            p *= 2
        while p >= 1:
            bit = b.and_(r, _i64(p))
            yes = self.fn.append_basic_block(f'rows.rem{p}')
            nxt = self.fn.append_basic_block(f'rows.after{p}')
            b.cbranch(b.icmp_unsigned('!=', bit, _i64(0)), yes, nxt)
            b.position_at_end(yes)
            tile(p, m)
            b.branch(nxt)
            b.position_at_end(nxt)
            m = b.add(m, bit)
            p //= 2
        b.branch(done)
        b.position_at_end(done)

    # ---------------------------------------------------------- entry
    def entry_alloca(self, n, name):
        """A static stack buffer of n elements (an alloca in the entry block)."""
        eb = ir.IRBuilder(self.fn.entry_basic_block)
        eb.position_at_start(self.fn.entry_basic_block)
        a = eb.alloca(self.T, size=_i64(n), name=name)
        a.align = 64                 # packed vectors never straddle cache lines
        return a

    def emit(self):
        b = self.b = ir.IRBuilder(self.fn.append_basic_block('entry'))
        cfg, W, M, N, K = self.cfg, self.W, self.M, self.N, self.K
        mb, me = self.fn.args[5], self.fn.args[6]
        mb = b.select(b.icmp_signed('<', mb, _i64(0)), _i64(0), mb)
        me = b.select(b.icmp_signed('>', me, _i64(M)), _i64(M), me)
        self.m_begin, self.m_end = mb, me
        work = self.fn.append_basic_block('work')
        empty = self.fn.append_basic_block('empty')
        b.cbranch(b.icmp_signed('<', mb, me), work, empty)   # nothing to pack for no rows
        b.position_at_end(empty)
        b.ret_void()
        b.position_at_end(work)

        # each block of dot_rows rows streams all of B: past a few MiB of B
        # only a single block is worth it
        dot_max = min(cfg['dot_m_max'], K // cfg['dot_k_per_row'])
        if N * K * self.esz > cfg['dot_b_bytes']:
            dot_max = min(dot_max, cfg['dot_rows'])
        if self.trans_b and (M <= cfg['dot_m_min'] or M <= dot_max):
            self.dot_section(0, N)
            b.ret_void()
            return

        # column plan: full panels, then one tail panel, then single columns
        nv = cfg['nv']
        nr = nv * W
        nfull, rem = divmod(N, nr)
        tail = []
        w = W
        while w >= max(W // 4, 2):
            while rem >= w:
                tail.append(w)
                rem -= w
            w //= 2
        dot_cols = 0
        tail_copy = None
        if rem:
            if self.trans_b:
                dot_cols = rem
            elif M >= cfg['nt_dot_min_m'] and rem * K * self.esz <= cfg['stack_bytes']:
                # last columns of B (K, N): copy them transposed (rem x K) and
                # take dot products vectorized over k, not scalar FMAs
                dot_cols = rem
                bt = self.entry_alloca(rem * K, 'btail')
                src = self.ptr(self.B, N - rem)

                def tbody(k, _):
                    s = self.ptr(src, b.mul(k, _i64(self.ldb)))
                    for c in range(rem):
                        b.store(b.load(self.ptr(s, c), align=self.esz),
                                self.ptr(bt, b.add(k, _i64(c * K))), align=self.esz)
                    return []
                tail_copy = tbody
                self.dot_b = (bt, K, N - rem)
            else:
                tail += [1] * rem

        # trans_b=False reads B rows in place, except when their stride is a
        # multiple of 4 KiB (every row in the same cache sets) and M is big
        # enough to pay for a copy
        pack = self.trans_b or (cfg['pack_nt'] and M >= cfg['pack_nt_min_m'] and
                                (self.ldb * self.esz) % cfg['pack_nt_alias'] == 0)
        widest = nr if nfull else sum(tail)
        self.kc = K
        self.buf = None
        if pack and widest:
            kc_max = max(W, cfg['stack_bytes'] // (widest * self.esz) // W * W)
            nkb = -(-K // kc_max)
            self.kc = -(-K // nkb)
            self.kc = -(-self.kc // W) * W if nkb > 1 else K
            self.buf = self.entry_alloca(self.kc * widest, 'bpack')
        self.pack = pack
        if tail_copy is not None:
            self.count_loop(K, tail_copy, name='btail')

        def columns():
            if nfull == 1:
                self.panel(_i64(0), [W] * nv)
            elif nfull > 1:
                def pbody(p, _):
                    self.panel(b.mul(p, _i64(nr), flags=['nsw', 'nuw']), [W] * nv)
                    return []
                self.count_loop(nfull, pbody, name='panel')
            if tail:
                self.panel(_i64(nfull * nr), tail)
            if dot_cols:
                self.dot_section(N - dot_cols, N)

        # row blocks of MC rows whose A block (MC x K) stays in L2 while
        # every panel of B passes over it
        mr = cfg['mr']
        mc = max(mr, cfg['mc_bytes'] // (K * self.esz) // mr * mr) if cfg['mc_bytes'] else M
        if M <= mc:
            columns()
        else:
            def mbody(m0, _):
                self.m_begin = m0
                e = b.add(m0, _i64(mc))
                self.m_end = b.select(b.icmp_signed('<', e, me), e, me)
                columns()
                return []
            self.loop(mb, lambda m0: b.icmp_signed('<', m0, me), mc, mbody, name='mc')
        b.ret_void()

    # ---------------------------------------------------------- tiled path
    def panel(self, j, widths):
        """Columns [j, j + sum(widths)) for all rows of the range."""
        K, kc = self.K, self.kc
        nkb = -(-K // kc)
        if nkb == 1:
            self.panel_block(j, widths, _i64(0), K, True, True)
            return
        b = self.b

        def kbody(kb, _):
            k0 = b.mul(kb, _i64(kc), flags=['nsw', 'nuw'])
            self.panel_block(j, widths, k0, kc, b.icmp_unsigned('==', kb, _i64(0)), False)
            return []
        self.count_loop(nkb - 1, kbody, name='kb')
        self.panel_block(j, widths, _i64((nkb - 1) * kc), K - (nkb - 1) * kc, False, True)

    def panel_block(self, j, widths, k0, kc, first, last):
        b = self.b
        pw = sum(widths)
        if self.pack:
            if self.trans_b:
                self.pack_t(j, pw, k0, kc)
            else:
                self.pack_n(j, widths, k0, kc)
            bbase, bstride = self.buf, pw
        else:
            bbase = self.ptr(self.B, b.add(b.mul(k0, _i64(self.ldb)), j))
            bstride = self.ldb

        def tile(r, m):
            self.micro(r, m, j, widths, k0, kc, bbase, bstride, first, last)
        self.row_tiles(tile, self.cfg['mr'])

    def pack_n(self, j, widths, k0, kc):
        """buf[k*pw + c] = B[(k0+k)*ldb + j + c] (trans_b=False)."""
        b, pw = self.b, sum(widths)
        src = self.ptr(self.B, b.add(b.mul(k0, _i64(self.ldb)), j))

        def body(k, _):
            s = self.ptr(src, b.mul(k, _i64(self.ldb)))
            d = self.ptr(self.buf, b.mul(k, _i64(pw)))
            off = 0
            for w in widths:
                self.store(self.load(self.ptr(s, off), w), self.ptr(d, off), w)
                off += w
            return []
        self.count_loop(kc, body, name='packn')

    def transpose(self, rows):
        """Transpose a square block of len(rows) vectors of as many lanes."""
        n = len(rows)
        rows = list(rows)
        h = n // 2
        while h >= 1:
            new = list(rows)
            for i in range(n):
                if i & h:
                    continue
                p = i + h
                m_lo = [x if not x & h else n + x - h for x in range(n)]
                m_hi = [x + h if not x & h else n + x for x in range(n)]
                new[i] = self.shuf(rows[i], rows[p], m_lo)
                new[p] = self.shuf(rows[i], rows[p], m_hi)
            rows = new
            h //= 2
        return rows

    def pack_t(self, j, pw, k0, kc):
        """buf[k*pw + c] = B[(j+c)*ldb + k0 + k] (trans_b=True), by W x W
        in-register transposes; partial blocks use masked loads/stores."""
        b, W, ldb = self.b, self.W, self.ldb
        src = self.ptr(self.B, b.add(b.mul(j, _i64(ldb)), k0))
        nkt, kr = divmod(kc, W)
        for cb in range(0, pw, W):
            cw = min(W, pw - cb)

            def block(kt0, nk, cb=cb, cw=cw):
                # kt0: i64 first k of the block; nk: valid k lanes (static)
                rows = []
                for i in range(W):
                    if i < cw:
                        p = self.ptr(src, b.add(_i64((cb + i) * ldb), kt0))
                        rows.append(self.masked_load(p, W, nk))
                    else:
                        rows.append(self.zero(W))
                cols = self.transpose(rows)
                for t in range(nk):
                    d = self.ptr(self.buf, b.add(b.mul(b.add(kt0, _i64(t)), _i64(pw)), _i64(cb)))
                    self.masked_store(cols[t], d, W, cw)

            if nkt:
                def body(kt, _, block=block):
                    block(b.mul(kt, _i64(W), flags=['nsw', 'nuw']), W)
                    return []
                self.count_loop(nkt, body, name='packt')
            if kr:
                block(_i64(nkt * W), kr)

    def micro(self, r, m, j, widths, k0, kc, bbase, bstride, first, last):
        """C[m:m+r, j:j+pw] (+)= A[m:m+r, k0:k0+kc] @ Bpanel, accumulators in
        registers, k loop innermost."""
        b, lda, ldc = self.b, self.lda, self.ldc
        offs, o = [], 0
        for w in widths:
            offs.append(o)
            o += w
        arows = [self.ptr(self.A, b.add(b.mul(b.add(m, _i64(i)), _i64(lda)), k0))
                 for i in range(r)]
        crows = [self.ptr(self.C, b.add(b.mul(b.add(m, _i64(i)), _i64(ldc)), j))
                 for i in range(r)]
        init = []
        for i in range(r):
            for w, off in zip(widths, offs):
                if first is True:
                    init.append(self.zero(w))
                else:
                    old = self.load(self.ptr(crows[i], off), w)
                    init.append(old if first is False else b.select(first, self.zero(w), old))

        def step(k, accs):
            bv = []
            brow = self.ptr(bbase, b.mul(k, _i64(bstride)) if bstride != 1 else k)
            for w, off in zip(widths, offs):
                bv.append(self.load(self.ptr(brow, off), w))
            out = []
            n = 0
            for i in range(r):
                a = b.load(self.ptr(arows[i], k), align=self.esz)
                cache = {}
                for w, v in zip(widths, bv):
                    if w not in cache:
                        cache[w] = self.bcast(a, w)
                    out.append(self.fma(cache[w], v, accs[n]))
                    n += 1
            return out

        accs = self.count_loop(kc, step, init, name='k', unroll=self.cfg['k_unroll'])

        n = 0
        for i in range(r):
            row = b.add(m, _i64(i))
            for w, off in zip(widths, offs):
                v = accs[n]
                n += 1
                if last:
                    v = self.run_epilogue(row, b.add(j, _i64(off)), v)
                self.store(v, self.ptr(crows[i], off), w)

    # ---------------------------------------------------------- dot path
    def hreduce(self, vecs):
        """[v_0..v_{c-1}] (each <w x T>, c a power of two <= w) -> <c x T>
        with lane i = sum(v_i) (a scalar if c == 1)."""
        b = self.b
        w = vecs[0].type.count
        cur, g = list(vecs), 1
        while len(cur) > 1:
            s = w // g
            h = s // 2
            lo = [seg * s + t for seg in range(g) for t in range(h)]
            hi = [seg * s + h + t for seg in range(g) for t in range(h)]
            nxt = []
            for p, q in zip(cur[0::2], cur[1::2]):
                a = self.shuf(p, q, lo + [w + x for x in lo])
                c = self.shuf(p, q, hi + [w + x for x in hi])
                nxt.append(b.fadd(a, c))
            cur, g = nxt, g * 2
        v = cur[0]
        width = w
        while width > g:
            s = width // g
            h = s // 2
            lo = [seg * s + t for seg in range(g) for t in range(h)]
            hi = [seg * s + h + t for seg in range(g) for t in range(h)]
            v = b.fadd(self.shuf(v, v, lo), self.shuf(v, v, hi))
            width //= 2
        if g == 1:
            v = b.extract_element(v, ir.Constant(I32, 0))
        return v

    def dot_section(self, n_lo, n_hi):
        """C[m, n] for m in the row range and n in [n_lo, n_hi) (trans_b):
        dot products vectorized over k."""
        nblk = -(-self.M // self.cfg['dot_rows'])
        rd = -(-self.M // nblk)          # balanced blocks over the M rows

        def tile(r, m):
            self.dot_rows(r, m, n_lo, n_hi)
        self.row_tiles(tile, rd)

    def dot_rows(self, r, m, n_lo, n_hi):
        b = self.b
        nc = 1
        while nc * 2 * r <= self.cfg['dot_acc'] and nc * 2 <= min(8, self.W):
            nc *= 2
        ncols = n_hi - n_lo
        ngroups, rem = divmod(ncols, nc)
        if ngroups == 1:
            self.dot_block(r, m, _i64(n_lo), nc)
        elif ngroups > 1:
            def body(g, _):
                self.dot_block(r, m, b.add(b.mul(g, _i64(nc)), _i64(n_lo)), nc)
                return []
            self.count_loop(ngroups, body, name='dcol')
        n0 = n_lo + ngroups * nc
        c = nc // 2
        while rem:
            if rem >= c:
                self.dot_block(r, m, _i64(n0), c)
                n0 += c
                rem -= c
            c //= 2

    def dot_block(self, r, m, n0, c):
        """C[m:m+r, n0:n0+c], c a power of two: r x c vector accumulators."""
        b, W, K = self.b, self.W, self.K
        arows = [self.ptr(self.A, b.mul(b.add(m, _i64(i)), _i64(self.lda))) for i in range(r)]
        bsrc, ldbt, norg = self.dot_b
        brows = [self.ptr(bsrc, b.mul(b.add(n0, _i64(q - norg)), _i64(ldbt))) for q in range(c)]
        nk, kr = divmod(K, W)

        def step(k, accs, nvalid):
            av = [self.masked_load(self.ptr(p, k), W, nvalid) for p in arows]
            bv = [self.masked_load(self.ptr(p, k), W, nvalid) for p in brows]
            return [self.fma(av[i], bv[q], accs[i * c + q]) for i in range(r) for q in range(c)]

        accs = [self.zero(W) for _ in range(r * c)]
        if nk:
            accs = self.count_loop(
                nk, lambda kk, a: step(b.mul(kk, _i64(W), flags=['nsw', 'nuw']), a, W),
                accs, name='dk', unroll=self.cfg['dot_unroll'] or r * c <= 8)
        if kr:
            accs = step(_i64(nk * W), accs, kr)
        for i in range(r):
            v = self.hreduce(accs[i * c:(i + 1) * c])
            row = b.add(m, _i64(i))
            v = self.run_epilogue(row, n0, v)
            dst = self.ptr(self.C, b.add(b.mul(row, _i64(self.ldc)), n0))
            self.store(v, dst, c)


def emit_matmul(module, name, M, N, K, *, dtype='float32', trans_b=False,
                lda=None, ldb=None, ldc=None, epilogue=None, vector_width=16,
                tiles=None):
    """Emit ``void name(T* A, T* B, T* C, i8** extra, i64 batch, i64 m_begin,
    i64 m_end)`` into ``module`` (see the module docstring) and return it.

    ``vector_width`` is in float32 lanes (16 = one zmm register); float64
    uses the same register width (vector_width // 2 lanes).  ``tiles``
    overrides entries of :data:`DEFAULT_TILES` (for tuning)."""
    if dtype in ('float32', 'f4', 'f32'):
        T, W = ir.FloatType(), vector_width
    elif dtype in ('float64', 'f8', 'f64'):
        T, W = ir.DoubleType(), vector_width // 2
    else:
        raise NotImplementedError(f'matmul dtype {dtype!r} (float32 and float64 only)')
    if W < 4 or W > 16 or W & (W - 1):
        raise ValueError(f'vector_width {vector_width} gives {W} {dtype} lanes; '
                         f'need 4, 8 or 16')
    M, N, K = int(M), int(N), int(K)
    if min(M, N, K) < 1:
        raise ValueError(f'matmul shape {M}x{N}x{K}: every dimension must be >= 1')
    lda = K if lda is None else int(lda)
    ldb = (K if trans_b else N) if ldb is None else int(ldb)
    ldc = N if ldc is None else int(ldc)
    if lda < K or ldc < N or ldb < (K if trans_b else N):
        raise ValueError(f'leading dimensions lda={lda} ldb={ldb} ldc={ldc} too small '
                         f'for {M}x{N}x{K} (trans_b={trans_b})')
    cfg = dict(DEFAULT_TILES)
    if tiles:
        unknown = set(tiles) - set(cfg)
        if unknown:
            raise ValueError(f'unknown tile settings {sorted(unknown)}')
        cfg.update(tiles)

    tp = T.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [tp, tp, tp, I8P.as_pointer(), I64, I64, I64])
    fn = ir.Function(module, fnty, name)
    for a, n in zip(fn.args, ('A', 'B', 'C', 'extra', 'batch', 'm_begin', 'm_end')):
        a.name = n
    for a in fn.args[:3]:
        a.add_attribute('captures(none)')
    _Emitter(module, fn, T, W, M, N, K, bool(trans_b), lda, ldb, ldc, epilogue, cfg).emit()
    return fn
