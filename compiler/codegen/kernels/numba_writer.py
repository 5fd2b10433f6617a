"""A Program (program.py) as one numba kernel: a module-level `@numba.njit(parallel=True, ...)`
function making one pass over the rows.

    @numba.njit(inline="always", error_model="numpy", fastmath={"contract"})
    def _layer_grad_k0_rows(blk, block, n_rows, x, b, y, d_z, add_d_z, n0, acc_p):
        '''Block blk of _layer_grad_k0: its rows, and its partials of the sinks.'''
        acc = np.float64(0.0)
        for j0 in range(blk * block, min(blk * block + block, n_rows)):   # the rows of a block
            for j1 in range(256):              # one stage: a nest over the trailing axes
                z = x[j0, j1] + b[j1]          # layer.tl:4   one local per step
                ...
                acc += t_8
        acc_p[blk] = acc

    @numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
    def _layer_grad_k0(x, b, y, d_z, add_d_z, n0):
        '''layer_grad's fused loop (layer.tl:4, layer.tl:5): N rows, one pass.'''
        n_rows = n0
        nblocks, block = ...                       # a function of the shape only, never of the threads
        acc_p = np.empty((nblocks,), np.float64)   # per-block partials of the sinks
        if <big enough to wake the threads>:
            for blk in numba.prange(nblocks):
                _layer_grad_k0_rows(blk, block, n_rows, x, b, y, d_z, add_d_z, n0, acc_p)
        else:                                      # (same blocks, same partials, this thread)
            for blk in range(nblocks):
                _layer_grad_k0_rows(blk, block, n_rows, x, b, y, d_z, add_d_z, n0, acc_p)
        return (acc_p,)

The loop body is written once (the _rows function, inlined by numba into both loops: measured
the same time as two written-out copies).

The host code combines the partials in block order (np.add.reduce over axis 0), so the result
is the same for any NUMBA_NUM_THREADS. Scalar functions render through ONE table (FUNCTIONS),
with a hook (`forms`, numba_math.py's `call`) for vectorisable forms.
"""
from __future__ import annotations

import math
from typing import Callable

from ...core.types import Dim, DType
from ...core.primitive import ops
from ...primitives.common import NUMBA_FUNCTIONS, Scalar
from . import numba_math
from . import program as P

FUNCTIONS = NUMBA_FUNCTIONS  # (primitives/common.py: the scalar language's vocabulary lives there)
# the rest of SCALAR_FUNCTIONS (j0, j1, erfinv, erfcx, ndtr, digamma, ...) are scipy.special's:
# an op calling one stays the NumPy backend's call outside the kernel (program.rules)
SCALAR_SET = frozenset(FUNCTIONS) | {Scalar.SELECT, Scalar.CAST}

RULES = P.rules(SCALAR_SET, scatter=True, remake=True, labels=True)  # (cross_entropy's label ops: P.Index is j1, ...)
PARALLEL_ELEMENTS = 1 << 19  # a kernel over fewer elements runs its blocks on the calling thread
PARTIAL_ELEMENTS = 1 << 16  # the sinks' per-block partials (float64) stay within this many elements
LANES = 16  # a max or min along a row runs as this many maxima side by side (by_lanes)
SPLIT_CHUNK = 1024  # a split loop's buffers hold this many values at most (4 KiB of float32: in L1)
_RESERVED = ("np", "numba", "math", "blk", "lo", "hi", "nblocks", "block", "n_rows", "nb", "half", "pair")


class NumbaKernel:
    """Writes one Program as a kernel's source and its call from the host function."""

    def __init__(self, prog: P.Program, kernel_name: str, fn_name: str, dim: Callable, uses_form: Callable,
                 fresh: Callable[[str], str]):
        self.p = prog
        self.name = kernel_name
        self.fn_name = fn_name
        self.dim = dim  # host text of a Dim
        self.uses_form = uses_form  # records a vectorisable form the kernel calls (its source is pasted once)
        self.fresh = fresh  # a local name no step of the program has (the split loops' buffers)
        self.math = False
        self.axes: dict[int, str] = {}  # stage axis -> its loop variable
        self.unsigned: set[int] = set()  # the axes whose loop variable is a uint64 now (a split loop's)

    # ---- expressions ----------------------------------------------------------------------
    def const(self, c: P.Const) -> str:
        v, dt = c.value, c.dtype
        if isinstance(v, Dim) or (not isinstance(v, (bool, int, float)) and v is not None and not hasattr(v, "dtype")):
            return f"np.{dt.numpy_name}({self.size(v)})"
        if dt is DType.BOOL:
            return repr(bool(v))
        if dt.is_float:
            f = float(v)
            text = "np.inf" if f == float("inf") else "-np.inf" if f == float("-inf") else \
                "np.nan" if f != f else repr(f)
            return text if dt is DType.F64 and text[0] not in "-n" else f"np.{dt.numpy_name}({text})"
        return str(int(v)) if dt is DType.I64 else f"np.{dt.numpy_name}({int(v)})"

    def size(self, d) -> str:
        if isinstance(d, Dim):
            return self.p.sizes[d]
        return str(d)

    def index(self, index: tuple, offset: tuple = ()) -> str:
        if not offset:
            return ", ".join("0" if a is None else self.axes[a] for a in index)
        out = []
        for a, d in zip(index, offset):
            at = "0" if a is None else self.axes[a]
            out.append(at if d == 0 else self.size(d) if at == "0" else f"{at} + {self.size(d)}")
        return ", ".join(out)

    def expr(self, e) -> str:
        if isinstance(e, P.Const):
            return self.const(e)
        if isinstance(e, P.Ref):
            return e.name
        if isinstance(e, P.Index):  # (compared with int64 labels: an unsigned one would go through float64)
            return f"np.int64({self.axes[e.axis]})" if e.axis in self.unsigned else self.axes[e.axis]
        if isinstance(e, P.Load):
            if not e.index:
                return e.operand  # (a 0-d operand comes in as a scalar)
            return f"{e.operand}[{self.index(e.index, e.offset)}]"
        if isinstance(e, P.Reduced):
            r = self.reduces[e.name]
            text = r.name if self.scalar_acc(r.shape) else f"{r.name}[{self.index(e.index[1:])}]"
            return text if r.acc_dtype == e.dtype else f"np.{e.dtype.numpy_name}({text})"
        if isinstance(e, P.Unary):
            return f"(not {self.expr(e.a)})" if e.op == "!" else f"(-{self.expr(e.a)})"
        if isinstance(e, P.Binary):
            op = {"&&": "&", "||": "|"}.get(e.op, e.op)
            a, b = self.expr(e.a), self.expr(e.b)
            if e.op == "/" and not e.dtype.is_float:  # (C's division of integers truncates)
                return f"np.{e.dtype.numpy_name}(np.trunc({a} / {b}))"
            return f"({a} {op} {b})"
        args = [self.expr(a) for a in e.args]
        if e.fn == Scalar.SELECT:
            return f"({args[1]} if {args[0]} else {args[2]})"
        if e.fn == Scalar.CAST:
            return f"np.{e.dtype.numpy_name}({args[0]})"
        return self.call(e.fn, e.dtype, args) or self.table(e.fn, e.dtype, args)

    def call(self, fname: str, dt: DType, args) -> str | None:
        """fname(args) as a vectorisable form's call (numba_math.py), or None: the table's text."""
        if not dt.is_float:
            return None
        text = numba_math.call(fname, dt.numpy_name, args)
        if text is None or text.startswith("np."):
            return None
        self.uses_form(text.split("(")[0])
        return text

    def table(self, fname: str, dt: DType, args) -> str:
        text = FUNCTIONS[fname]
        self.math |= "math." in text  # (erf, erfc, lgamma: the math module's float64 functions)
        return text.format(*args, t=dt.numpy_name)

    @staticmethod
    def scalar_acc(shape) -> bool:
        return all(d == 1 for d in shape[1:])

    @staticmethod
    def sink_scalar(shape) -> bool:
        return all(d == 1 for d in shape)

    # ---- the kernel ------------------------------------------------------------------------
    def source(self) -> tuple[str, list[str]]:
        """(the kernel's definition, its parameters in order)."""
        p = self.p
        self.reduces = {s.name: s for st in p.stages for s in st.steps if isinstance(s, P.Reduce)}
        self.buffers: dict[int, str] = {}  # id(Reduce or Sink) -> its split loop's buffer
        self.logsums: dict[int, tuple] = {}  # id(Reduce or Sink) -> a sum of logs' parts (log_parts)
        self.lane_buffers: dict[int, str] = {}  # id(Reduce or Sink) -> its running maxima (by_lanes)
        self.unwritten: set[str] = set()  # steps only such a sum read
        params = [o.name for o in p.operands]
        outs = {o.name: o for o in p.outputs}
        for o in p.outputs:
            if o.reuses is not None:
                continue  # (written into that operand's array: one array, which LLVM vectorises)
            params.append(o.name)
            if o.accumulate is not None:
                params.append(f"add_{o.name}")
        params += [t.name for t in p.scatters if t.output is None]  # (arrays Scatter steps add into)
        params += list(p.sizes.values())
        rank = max(len(st.space) for st in p.stages)
        self.axes = {a: f"j{a}" for a in range(rank)}
        body = [f"n_rows = {self.size(p.rows)}"]
        # blocks: about 16K elements each (at least one row), at most 64: a function of the shape
        per_row = " * ".join(self.size(d) for d in max((st.space[1:] for st in p.stages), key=_weight)) or "1"
        body.append(f"block = max(1, -(-n_rows // 64), 16384 // max(1, {per_row}))")
        wide = [s for s in p.sinks if not self.sink_scalar(s.shape)]
        if wide:
            # each block keeps a partial of every sink: for sinks with many elements (W5's
            # [1, 128, 64] gradient) fewer, larger blocks, so the partials stay within about
            # 512 KB (a power of two of blocks, at least 2: the threads share them evenly)
            elems = " + ".join(" * ".join(self.size(d) for d in s.shape) or "1" for s in wide)
            body.append("nb = 64")
            body.append(f"while nb > 2 and nb * ({elems}) > {PARTIAL_ELEMENTS}:")
            body.append("    nb //= 2")
            body.append("block = max(block, -(-n_rows // nb))")
        if p.spreads:
            # a block's rows add into base rows up to `spread` past its own: blocks at least that
            # long, run in two passes (even blocks, then odd ones), never add into the same row at
            # once; the order is a function of the shape, never of the threads
            wider = [self.size(d) for d in p.spreads if not isinstance(d, int) or d > 1]
            if wider:  # (a block is at least a row anyway)
                body.append(f"block = max(block, {', '.join(wider)})")
        body.append("nblocks = -(-n_rows // block)")
        for s in p.sinks:
            shape = ", ".join(["nblocks"] + [self.size(d) for d in s.shape])
            body.append(f"{s.name}_p = np.empty(({shape},), np.{s.acc_dtype.numpy_name})")
        loop = ["lo = blk * block", "hi = min(lo + block, n_rows)"]
        for s in p.sinks:
            if self.sink_scalar(s.shape):
                loop.append(f"{s.name} = {self.identity(s.op, s.acc_dtype)}")
            else:
                loop.append(f"{s.name} = {s.name}_p[blk]")
                loop.append(f"{s.name}[...] = {self.identity(s.op, s.acc_dtype)}")
        for r in self.reduces.values():
            if not self.scalar_acc(r.shape):
                shape = ", ".join(self.size(d) for d in r.shape[1:])
                loop.append(f"{r.name} = np.empty(({shape},), np.{r.acc_dtype.numpy_name})")
        # the rows as unsigned: numba wraps a negative signed index around, and LLVM cannot drop
        # that test for j0 (lo is not known to be >= 0), so a vectorised loop over the rows read
        # and wrote by gather/scatter (W2's 10^7 f32 value and gradient, one thread: 18 -> 9 ms)
        loop.append("for j0 in range(np.uint64(lo), np.uint64(hi)):")
        rows, buffers = [], self.kept_rows()
        for k, st in enumerate(p.stages):
            if len(p.stages) > 1:
                rows.append(f"# stage {k}: over {', '.join(map(str, st.space[1:])) or 'the row'}")
            for r in st.steps:
                if isinstance(r, P.Reduce):
                    ident = self.identity(r.op, r.acc_dtype)
                    rows.append(f"{r.name} = {ident}" if self.scalar_acc(r.shape) else f"{r.name}[...] = {ident}")
            for s in st.row_steps:
                rows += self.step(s, outs)
            wide = [s for s in st.steps if self.widening(s) or self.by_lanes(s, st.space[-1])] \
                if len(st.space) > 1 else []
            if wide:
                buffers += self.split_buffers(st, wide)
            inner = self.inner(st, outs, wide)
            if inner:
                depth = 0
                for a in range(1, len(st.space) - (1 if wide else 0)):
                    rows.append("    " * depth + f"for j{a} in range({self.size(st.space[a])}):")
                    depth += 1
                rows += ["    " * depth + line for line in inner]
            for s in st.after:
                rows += self.store_after(s, outs)
        loop[-1:-1] = buffers  # (before the rows' loop: allocated once per block)
        loop += ["    " + line for line in rows]
        for s in p.sinks:
            if self.sink_scalar(s.shape):
                loop.append(f"{s.name}_p[blk] = {s.name}")
        # the loop body is written once, as a function of one block that numba inlines into both
        # loops below. A small kernel runs its blocks on this thread: waking numba's pool costs
        # more than the work (W4's 512 x 256 kernels: 0.1 ms each on one thread, 6 ms on two of a
        # busy machine); the blocks and the order their partials are combined in are the same.
        # (Weighing an element by the forms it calls was tried: W3's bce kernel, 1024 x 256 with
        # exp, log and sigmoid, 1.5 ms in its call on one thread, then ran on two. On the shared
        # 2-core machine, busy, the kernel's median went to 2.3 ms, 3.9 right after a GEMM, and
        # W3's call's from 16.7 to 18.4 ms, its best samples level: the second thread waits for a
        # core, which OpenBLAS's worker, spinning for ~0.1 s after each GEMM, also wants.)
        rows_name = f"{self.name}_rows"
        rows_params = ["blk", "block", "n_rows"] + params + [f"{s.name}_p" for s in p.sinks]
        call = f"{rows_name}({', '.join(rows_params)})"
        body.append(f"if n_rows * {per_row} >= {PARALLEL_ELEMENTS}:")
        if p.spreads:
            body.append("    for half in range(2):")
            body.append("        for pair in numba.prange((nblocks - half + 1) // 2):")
            body.append("            blk = 2 * pair + half")
            body.append(f"            {call}")
            body.append("else:")
            body.append("    for half in range(2):  # (the same order on this thread)")
            body.append("        for blk in range(half, nblocks, 2):")
            body.append(f"            {call}")
        else:
            body.append("    for blk in numba.prange(nblocks):")
            body.append(f"        {call}")
            body.append("else:")
            body.append("    for blk in range(nblocks):")
            body.append(f"        {call}")
        body.append("return (" + "".join(f"{s.name}_p, " for s in p.sinks) + ")")
        rows = [
            f"@numba.njit(inline=\"always\", {numba_math.KERNEL_FLAGS})",
            f"def {rows_name}({', '.join(rows_params)}):",
            f'    """Block blk of {self.name}: its rows, and its partials of the sinks."""',
        ] + ["    " + line for line in loop]
        head = [
            f"@numba.njit(parallel=True, nogil=True, cache=True, {numba_math.KERNEL_FLAGS})",
            f"def {self.name}({', '.join(params)}):",
            f'    """{self.fn_name}\'s fused loop ({", ".join(p.places)}): one pass over the rows."""',
        ]
        return "\n".join(rows) + "\n\n\n" + "\n".join(head + ["    " + line for line in body]) + "\n", params

    # ---- a costly value a later stage reads again: kept in a row buffer, not made twice ----------
    # (softmax's exp: its row sum in one stage, exp / sum in the next; W4's 512 x 10 kernel
    # made every exp twice)
    def kept_rows(self) -> list[str]:
        """Row buffers for the steps a later stage over the same space recomputes, when the step
        calls a function (exp, log, a form: not a select, cast, max, min, abs or sign); their
        names in self.kept. Returns their allocations (once per block)."""
        self.kept: dict[str, str] = {}
        home: dict[str, P.Stage] = {}
        lines = []
        for st in self.p.stages:
            for s in st.steps:
                if not isinstance(s, P.Step):
                    continue
                if not s.recomputed:
                    home.setdefault(s.name, st)
                elif s.name not in self.kept and s.name in home and home[s.name].space == st.space and \
                        tuple(s.node.shape) == tuple(st.space) and _costly(s.expr):
                    self.kept[s.name] = name = self.fresh(f"{s.name}_r")
                    shape = ", ".join(self.size(d) for d in st.space[1:])
                    lines.append(f"{name} = np.empty(({shape},), np.{s.dtype.numpy_name})")
        return lines

    # ---- the innermost loop, split when it accumulates narrow floats in wide ones ----------------
    # LLVM vectorises a loop at the width of its widest type: one float64 accumulation (an f32
    # sum's f64 partial) makes every float32 operation of the loop run 4 lanes wide instead of 8
    # (AVX2 / AVX-512 at 256 bits). Such a loop is split in two: the first computes everything and
    # writes the accumulated values to small float32 buffers, the second adds them into the
    # accumulators (W3's bce kernel, 1024 x 256 f32 on one thread: 1.4 -> 1.0 ms). The values and
    # the order they are added in are the same.
    @staticmethod
    def widening(s) -> bool:
        """A float Reduce or Sink at each point whose accumulator is wider than its value."""
        return isinstance(s, (P.Reduce, P.Sink)) and not getattr(s, "row_level", False) and \
            s.value.dtype.is_float and s.acc_dtype.itemsize > s.value.dtype.itemsize

    # ---- a float max or min along a row, by lanes ------------------------------------------------
    # LLVM does not vectorise a max reduction whose NaNs must propagate (np.maximum's select, even
    # under numba's fastmath flags, which it puts on instructions and LLVM reads off the function):
    # a max over W14's 256 x 32000 logits took 23 ms on one thread, np.max 3 ms. Split like the
    # widening sums, the second loop keeps LANES running maxima side by side, a loop LLVM does
    # vectorise (6 ms), then takes the max of the lanes. The same NaN rule (a nan anywhere gives
    # nan) and the same value; of equal values -0.0 and 0.0 the one kept may differ, as it may
    # between NumPy's own vectorised max and a loop.
    @classmethod
    def by_lanes(cls, s, size) -> bool:
        """A float max or min Reduce or Sink along the innermost axis, of `size` values, into one
        value per row (not when size is a number too small for the lanes to pay: W4's 10 classes)."""
        if not isinstance(s, (P.Reduce, P.Sink)) or getattr(s, "row_level", False) or \
                s.op not in (ops.max.name, ops.min.name) or not s.value.dtype.is_float or \
                (isinstance(size, int) and size < 4 * LANES):
            return False
        return cls.sink_scalar(s.shape) if isinstance(s, P.Sink) else cls.scalar_acc(s.shape)

    def lanes(self, s, buf: str, lanes: str, lo: str, hi: str) -> list[str]:
        """The lines that fold buf[0:hi - lo] into s's accumulator through the lanes."""
        gt = ">" if s.op == ops.max.name else "<"
        n, m, q, v, a, l = (self.fresh(x) for x in ("n_l", "m_l", "q", "v", "a", "l"))
        length = f"np.uint64({hi})" if lo == "0" else f"{hi} - {lo}"
        acc = s.name
        return [f"{lanes}[:] = {self.identity(s.op, s.value.dtype)}",
                f"{n} = {length}",
                f"{m} = {n} - {n} % np.uint64({LANES})",
                f"for {q} in range(np.uint64(0), {m}, np.uint64({LANES})):",
                f"    for {l} in range(np.uint64({LANES})):",
                f"        {v}, {a} = {buf}[{q} + {l}], {lanes}[{l}]",
                f"        {lanes}[{l}] = {v} if ({v} {gt} {a} or {v} != {v}) else {a}",
                f"for {q} in range({m}, {n}):",
                "    " + self.combine(s.op, acc, f"{buf}[{q}]"),
                f"for {l} in range({LANES}):",
                "    " + self.combine(s.op, acc, f"{lanes}[{l}]") + f"  # {s.where}"]

    def split_buffers(self, st: P.Stage, wide: list) -> list[str]:
        """The float buffers of a split loop, one per accumulated value (two for a sum of logs),
        allocated once per block; their names are kept in self.buffers (and self.logsums)."""
        size = st.space[-1]
        length = str(size) if isinstance(size, int) and size <= SPLIT_CHUNK else \
            f"min({self.size(size)}, {SPLIT_CHUNK})"
        lines = []
        for s in wide:
            parts = self.log_parts(st, s, size if isinstance(size, int) and size <= SPLIT_CHUNK else SPLIT_CHUNK)
            if parts is not None:
                rest, sign, u = parts
                ubuf, prod = self.fresh(f"{s.name}_u"), self.fresh(f"{s.name}_prod")
                self.logsums[id(s)] = (rest, sign, u, ubuf, prod)
                lines.append(f"{ubuf} = np.empty(({length},), np.{u.dtype.numpy_name})")
                if rest is None:
                    continue
            name = self.fresh(f"{s.name}_v")
            self.buffers[id(s)] = name
            lines.append(f"{name} = np.empty(({length},), np.{s.value.dtype.numpy_name})")
            if self.by_lanes(s, size):
                self.lane_buffers[id(s)] = lanes = self.fresh(f"{s.name}_l")
                lines.append(f"{lanes} = np.empty(({LANES},), np.{s.value.dtype.numpy_name})")
        return lines

    # ---- a float sum of logs: the log of a product, once per chunk of a row --------------------
    # sum(a + log(u)) along a row of float32 values, accumulated in float64, spends most of its
    # time in the logs (W3's bce loss, 1024 x 256: 0.8 ms on one thread, 0.3 without its log).
    # When u's values are known to lie within [lo, hi], lo > 0, such that a chunk's product stays
    # a normal float64 (lo**L and hi**L, L the chunk's length), the split loop's second half
    # multiplies them in float64 and adds log(product) once per chunk: float64 products of float32
    # values are within L ulps of float64, so the sum is as close to the exact one as summing
    # float64 logs (and closer than float32 logs). nan in u makes the product, so the sum, nan.
    def log_parts(self, st: P.Stage, s, length: int):
        """(a or None, +1 or -1, u) when s, a widening scalar sum, adds a +- log(u) (or log(u))
        with u's bounds (bounds()) as above; else None."""
        if s.op != ops.sum.name or not self.widening(s) or \
                not (self.sink_scalar(s.shape) if isinstance(s, P.Sink) else self.scalar_acc(s.shape)):
            return None
        defs = {x.name: x.expr for x in st.row_steps + st.steps if isinstance(x, P.Step)}
        e = _resolve(s.value, defs)
        found = None
        if isinstance(e, P.Call) and e.fn == Scalar.LOG:
            found = (None, 1, e.args[0])
        elif isinstance(e, P.Binary) and e.op in "+-":
            a, b = _resolve(e.a, defs), _resolve(e.b, defs)
            if isinstance(b, P.Call) and b.fn == Scalar.LOG:
                found = (e.a, 1 if e.op == "+" else -1, b.args[0])
            elif e.op == "+" and isinstance(a, P.Call) and a.fn == Scalar.LOG:
                found = (e.b, 1, a.args[0])
        if found is None or found[2].dtype != s.value.dtype:
            return None
        lohi = _bounds(found[2], defs)
        if lohi is None or not 0.0 < lohi[0] <= lohi[1] < math.inf:
            return None
        if length * abs(math.log2(lohi[1])) > 1000 or length * abs(math.log2(lohi[0])) > 1000:
            return None
        # the steps only this sum read (a + log(u), log(u)) are not written: nothing computes them now
        chain = [s.value.name] if isinstance(s.value, P.Ref) else []
        if chain and isinstance(defs.get(chain[0]), P.Binary):
            chain += [v.name for v in (defs[chain[0]].a, defs[chain[0]].b)
                      if isinstance(v, P.Ref) and isinstance(defs.get(v.name), P.Call) and defs[v.name].fn == Scalar.LOG]
        read = {r for st2 in self.p.stages for x in st2.row_steps + st2.steps + st2.after
                if x is not s and getattr(x, "name", None) not in chain
                for v in (getattr(x, "expr", None), getattr(x, "value", None), *getattr(x, "args", ()))
                if v is not None for r in _refs(v)}
        if not read & set(chain):
            self.unwritten |= set(chain)
        return found

    def inner(self, st: P.Stage, outs, wide: list) -> list[str]:
        """The body at each point of the stage's nest: its steps, or (`wide` not empty) the two
        loops over the innermost axis, in chunks of SPLIT_CHUNK when it may be longer."""
        if not wide:
            return [line for s in st.steps for line in self.step(s, outs)]
        a = len(st.space) - 1
        j, size = f"j{a}", st.space[a]
        if isinstance(size, int) and size <= SPLIT_CHUNK:
            head, lo, hi, at = [], "0", str(size), j
        else:
            # the chunks' bounds unsigned, as the rows' (numba wraps a negative signed index
            # around; LLVM cannot tell j - c >= 0, and the test costs W14's 256 x 32000 exp-and-sum
            # loop, one thread, 21 ms against 11); the loop's index read as a value stays signed
            c, ce = self.fresh(f"c{a}"), self.fresh(f"ce{a}")
            n, chunk = f"np.uint64({self.size(size)})", f"np.uint64({SPLIT_CHUNK})"
            head = [f"for {c} in range(np.uint64(0), {n}, {chunk}):", f"    {ce} = min({c} + {chunk}, {n})"]
            lo, hi, at = c, ce, f"{j} - {c}"
            self.unsigned.add(a)
        first, second, before, after = [], [], [], []
        for s in st.steps:
            if id(s) in self.logsums:
                rest, sign, u, ubuf, prod = self.logsums[id(s)]
                first.append(f"{ubuf}[{at}] = {self.expr(u)}")
                mul = numba_math.ACCUMULATE["*"].name
                self.uses_form(mul)
                second.append(f"{prod} = {mul}({prod}, np.float64({ubuf}[{at}]))")
                if rest is not None:
                    buf = self.buffers[id(s)]
                    first.append(f"{buf}[{at}] = {self.expr(rest)}")
                    second += self.step(s, outs, value=f"{buf}[{at}]")
                before.append(f"{prod} = 1.0")
                after.append(f"{s.name} = {s.name} {'+' if sign > 0 else '-'} np.log({prod})  # {s.where}")
            elif id(s) in self.lane_buffers:
                buf = self.buffers[id(s)]
                first.append(f"{buf}[{at}] = {self.expr(s.value)}")
                after += self.lanes(s, buf, self.lane_buffers[id(s)], lo, hi)
            elif id(s) in self.buffers:
                buf = self.buffers[id(s)]
                first.append(f"{buf}[{at}] = {self.expr(s.value)}")
                second += self.step(s, outs, value=f"{buf}[{at}]")
            elif not (isinstance(s, P.Step) and s.name in self.unwritten):
                first += self.step(s, outs)
        self.unsigned.discard(a)
        rng = f"range({hi})" if lo == "0" else f"range({lo}, {hi})"
        pad = "    " if head else ""
        loop2 = [pad + f"for {j} in {rng}:"] + [pad + "    " + x for x in second] if second else []
        return head + [pad + f"for {j} in {rng}:"] + [pad + "    " + x for x in first] + \
            [pad + x for x in before] + loop2 + [pad + x for x in after]

    def identity(self, op: str, dt: DType) -> str:
        if op == ops.sum.name:
            return self.const(P.Const(0, dt))
        if op == ops.prod.name:
            return self.const(P.Const(1, dt))
        if dt.is_float:
            return self.const(P.Const(float("-inf") if op == ops.max.name else float("inf"), dt))
        info = {DType.I64: (-2 ** 63, 2 ** 63 - 1), DType.I32: (-2 ** 31, 2 ** 31 - 1), DType.BOOL: (0, 1)}[dt]
        return self.const(P.Const(info[0] if op == ops.max.name else info[1], dt))

    def combine(self, op: str, acc: str, value: str, dt: DType | None = None) -> str:
        """acc's update by value; dt: a scalar float accumulator's type (its sum vectorises)."""
        if op in (ops.sum.name, ops.prod.name):
            sym = "+" if op == ops.sum.name else "*"
            if dt is not None and dt.is_float:
                form = numba_math.ACCUMULATE[sym]
                self.uses_form(form.name)
                return f"{acc} = {form.name}({acc}, {value})"
            return f"{acc} {sym}= {value}"
        return f"{acc} = " + FUNCTIONS[Scalar.MAX if op == ops.max.name else Scalar.MIN].format(acc, value)

    def whole(self, s: P.Step) -> str | None:
        """A member whose whole op has a form (sigmoid, softplus) as that form's call, not its
        scalar template expanded (the form is faster and as accurate: numba_math.py)."""
        if not s.args or not s.node.op.elementwise or any(a.dtype != s.dtype for a in s.args):
            return None
        return self.call(s.node.op.name, s.dtype, [self.expr(a) for a in s.args])

    def step(self, s, outs, value: str | None = None) -> list[str]:
        """A step's lines; value: a Reduce's or Sink's value as this text (a split loop's buffer)."""
        where = f"  # {s.where}" if s.node.span else ""
        if isinstance(s, P.Step):
            kept = self.kept.get(s.name)
            if kept is not None:
                at = f"{kept}[{', '.join(self.axes[a] for a in range(1, len(s.node.shape)))}]"
                if s.recomputed:
                    return [f"{s.name} = {at}{where} (kept by the stage that made it)"]
                return [f"{s.name} = {self.whole(s) or self.expr(s.expr)}{where}", f"{at} = {s.name}"]
            return [f"{s.name} = {self.whole(s) or self.expr(s.expr)}{where}"]
        if isinstance(s, P.Reduce):
            scalar = self.scalar_acc(s.shape)
            target = s.name if scalar else f"{s.name}[{self.index(s.index[1:])}]"
            return [self.combine(s.op, target, value or self.expr(s.value), s.acc_dtype if scalar else None) + where]
        if isinstance(s, P.Sink):
            scalar = self.sink_scalar(s.shape)
            target = s.name if scalar else f"{s.name}[{self.index(s.index)}]"
            return [self.combine(s.op, target, value or self.expr(s.value), s.acc_dtype if scalar else None) + where]
        if isinstance(s, P.Scatter):
            at = self.index(s.index, s.offset)
            target = next((o.reuses or o.name for o in self.p.outputs if o.name == s.target), s.target)
            return [f"{target}[{at}] {'+' if s.sign > 0 else '-'}= {self.expr(s.value)}{where}"]
        if isinstance(s, P.Store):
            o = outs[s.output]
            value = self.expr(s.value)
            target = f"{o.reuses or o.name}[{self.index(s.index)}]"
            if o.accumulate is None:
                return [f"{target} = {value}"]
            return [f"if add_{o.name}:", f"    {target} += {value}", "else:", f"    {target} = {value}"]
        raise AssertionError(s)  # pragma: no cover

    def store_after(self, s: P.Store, outs) -> list[str]:
        """A reduction's finished row written to its output: a loop over the result's axes."""
        o = outs[s.output]
        r = self.reduces[s.value.name]
        lines, depth = [], 0
        idx = [self.axes[0]]
        for a, d in enumerate(r.shape[1:], start=1):
            if d == 1:
                idx.append("0")
                continue
            lines.append("    " * depth + f"for q{a} in range({self.size(d)}):")
            idx.append(f"q{a}")
            depth += 1
        acc = r.name if self.scalar_acc(r.shape) else f"{r.name}[{', '.join(idx[1:])}]"
        value = acc if r.acc_dtype == r.dtype else f"np.{r.dtype.numpy_name}({acc})"
        target = f"{o.name}[{', '.join(idx)}]"
        pad = "    " * depth
        if o.accumulate is None:
            lines.append(f"{pad}{target} = {value}")
        else:
            lines += [f"{pad}if add_{o.name}:", f"{pad}    {target} += {value}", f"{pad}else:",
                      f"{pad}    {target} = {value}"]
        return lines


_CHEAP_CALLS = frozenset({Scalar.SELECT, Scalar.CAST, Scalar.MAX, Scalar.MIN, Scalar.FABS, Scalar.SIGN})


def _costly(e) -> bool:
    """Does the expression itself (not the steps it reads) call a function worth not repeating?"""
    if isinstance(e, P.Call):
        return e.fn not in _CHEAP_CALLS or any(_costly(a) for a in e.args)
    if isinstance(e, P.Binary):
        return _costly(e.a) or _costly(e.b)
    if isinstance(e, P.Unary):
        return _costly(e.a)
    return False


def _refs(e) -> list[str]:
    """The step names an expression reads."""
    if isinstance(e, P.Ref):
        return [e.name]
    out = []
    for sub in (getattr(e, "a", None), getattr(e, "b", None), *getattr(e, "args", ())):
        if sub is not None:
            out += _refs(sub)
    return out


def _resolve(e, defs: dict):
    """e with Refs to steps of its stage replaced by their expressions, at the top only."""
    while isinstance(e, P.Ref) and e.name in defs:
        e = defs[e.name]
    return e


def _bounds(e, defs: dict, depth: int = 0) -> tuple[float, float] | None:
    """[lo, hi] that e's values lie within (nan aside) by the form of its expression, or None:
    log(1 + exp(-|z|)) in bce_with_logits' and softplus' forms reads u in [1, 2]."""
    e = _resolve(e, defs)
    if depth > 12:
        return None
    if isinstance(e, P.Const):
        v = e.value
        return (float(v), float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None
    if isinstance(e, P.Unary) and e.op == "-":
        b = _bounds(e.a, defs, depth + 1)
        return None if b is None else (-b[1], -b[0])
    if isinstance(e, P.Binary) and e.op in "+-":
        a, b = _bounds(e.a, defs, depth + 1), _bounds(e.b, defs, depth + 1)
        if a is None or b is None:
            return None
        lo, hi = (a[0] + b[0], a[1] + b[1]) if e.op == "+" else (a[0] - b[1], a[1] - b[0])
        return (lo, hi) if lo == lo and hi == hi else None
    if isinstance(e, P.Call) and e.fn == Scalar.FABS:
        b = _bounds(e.args[0], defs, depth + 1)
        if b is None:
            return (0.0, math.inf)
        return (0.0 if b[0] <= 0.0 <= b[1] else min(abs(b[0]), abs(b[1])), max(abs(b[0]), abs(b[1])))
    if isinstance(e, P.Call) and e.fn == Scalar.EXP:
        b = _bounds(e.args[0], defs, depth + 1) or (-math.inf, math.inf)
        return (_exp(b[0]), _exp(b[1]))
    return None


def _exp(x: float) -> float:
    return 0.0 if x == -math.inf else math.inf if x > 709 else math.exp(x)


def _weight(space) -> tuple:
    total, symbolic = 1, 0
    for d in space:
        if isinstance(d, Dim):
            symbolic += 1
        else:
            total *= d
    return (symbolic, total)


def reserved() -> tuple[str, ...]:
    return _RESERVED


def form_sources(names) -> str:
    """The definitions of the vectorisable forms the kernels call (numba_math.py), each once."""
    return numba_math.source(sorted(names))
