"""Writing one kernel (plan.py plans them) as a loop over blocks of rows.

    # a fused loop over blocks of rows (layer.tl:4, layer.tl:5)
    d_z = t                                   # the output takes over a dead input's memory
    def _fused0(lo, hi, rows):
        s0 = np.empty((min(rows, hi - lo), 256), dtype=np.float32)     # scratch, per thread
        acc = np.zeros((), dtype=np.float32)                             # a sink's partial
        for i in range(lo, hi, rows):
            j = min(i + rows, hi)
            b0 = s0[:j - i]
            t_b = t[i:j]
            np.add(t_b, b, out=b0)                                       # one ufunc per node
            ...
            acc += np.sum(b0)
        return (acc,)
    value, = _blocks(_fused0, N, 6144, 256*N, ("sum",))  # 6144: the bytes one row touches (scratch,
                                                         # inputs, outputs); blocks of _BLOCK_BYTES

Scratch buffers are assigned by liveness within a block; a ufunc may write over an
input it reads, other ops may not. The members go in the plan's order, or in the one
lean_order.py finds when that loop needs fewer scratch bytes (write_kernel). Before a scratch buffer, a value takes the rows of an
output the loop writes later, while nothing in them is still to be read. `where` is a
bitwise select on the integer view of the values (exact, NaN-safe, and ten times faster
than numpy.where).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Mapping

from ...core.ir import Node
from ...core.primitive import PREC_POSTFIX, Cost, Expr
from ...core.types import Dim, DType, dim_add, dim_mul, dim_prod
from ...primitives.common import Combine
from ...primitives.shape import index_text
from ..names import place
from .lean_order import lean_order
from .peepholes import INT_OF, Ask, Peephole, ask
from .plan import Kernel


@dataclass
class WrittenLoop:
    """What writing a loop gives the function around it."""

    lines: list[str]  # the loop function and its call, at the function's indentation
    bound: dict[int, str]  # the loop's outputs and sinks: node id -> the variable holding it
    accumulated: set[int]  # outputs added into the caller's out= buffers block by block


def write_kernel(ctx, k: Kernel, reusable, exprs: Mapping[int, Expr], arg: Callable[[Node, Node], Expr],
                 accumulate: Mapping[int, str]) -> WrittenLoop:
    """k's loop, its members in the plan's order or in lean_order's, whichever loop needs fewer
    scratch bytes a row (the plan's on a tie): lean_order's model of the buffers is a guess (it
    knows neither lent rows nor folded products), the written loop is not. The loser's names
    are given back."""
    names = ctx.names
    state = (set(names.taken), dict(names.next), names._seen)
    first = KernelWriter(ctx, k, reusable, exprs, arg, accumulate)
    loop = first.write()
    order = lean_order(k, reusable)
    if order is None:
        return loop
    planned = (list(k.members), list(k.outputs))
    after_first = (set(names.taken), dict(names.next), names._seen)
    names.taken, names.next, names._seen = state
    outputs = {o.id for o in k.outputs}
    k.members[:] = order
    k.outputs[:] = [m for m in order if m.id in outputs]
    second = KernelWriter(ctx, k, reusable, exprs, arg, accumulate)
    lean = second.write()
    if second.scratch_bytes() < first.scratch_bytes():
        return lean
    k.members[:], k.outputs[:] = planned
    names.taken, names.next, names._seen = after_first
    return loop


class KernelWriter:
    """Writes one kernel. It reads the function's values computed before the loop (`exprs`, and
    `arg` for literals) and which outputs may go into out= buffers (`accumulate`), and returns
    what it wrote (WrittenLoop): it never writes into the function writer's expressions,
    variables or out= bookkeeping. Like any emitter it takes names, helpers and dtype
    constants from the function's context (`ctx`)."""

    def __init__(self, ctx, k: Kernel, reusable, exprs: Mapping[int, Expr], arg: Callable[[Node, Node], Expr],
                 accumulate: Mapping[int, str]):
        self.ctx = ctx
        self.xp = ctx.xp
        self.exprs = exprs
        self.arg = arg
        self.bound: dict[int, str] = {}
        self.accumulated: set[int] = set()
        self.k = k
        self.members = {m.id for m in k.members}
        self.outputs = {o.id for o in k.outputs}
        self.reusable = reusable  # (input node, output node) pairs: the output takes over the input's memory
        self.block: dict[int, str] = {}  # node id -> its value within one block
        self.sliced: dict[int, str] = {}  # outside row-aligned input -> its block view
        self.sliced_nodes: dict[int, Node] = {}
        self.scratch: list[tuple] = []  # (dtype, trailing shape) per scratch buffer
        self.free: dict[tuple, list[int]] = {}
        self.holder: dict[int, int] = {}  # node id -> scratch index
        self.stmts: list[str] = []
        self.views: dict[int, str] = {}  # output id -> its block view
        self.busy: dict[int, int] = {}  # output id -> the last position reading a value put in its rows
        self.pos_of: dict[int, int] = {}  # node id -> its position in the loop (write())
        self.last_use: dict[int, int] = {}  # member id -> the last position reading it (write())
        self.readers: dict[int, list[Node]] = {}  # member id -> members and sinks that read it
        for n in k.members + k.sinks:
            for i in dict.fromkeys(n.inputs):
                if i.id in self.members:
                    self.readers.setdefault(i.id, []).append(n)
        self.taken_input = {o.id: i for i, o in reusable}  # output id -> the input whose memory it takes
        # members another node's call computes (peepholes.py): a product its sum's einsum, a
        # comparison its cast's ufunc, a row sum the total that reads it
        self.asking = {role: Ask(self, role) for role in ("member", "emit", "sink")}  # (peepholes.ask's env)
        self.tags: dict[int, Peephole] = {}
        self.folded: set[int] = set()
        self.summed: set[int] = set()
        for m in k.members:
            tag = ask(self.asking["member"], m)
            if tag is not None:
                self.tags[m.id] = tag
                self.folded.add(m.id)
                if tag is Peephole.ROW_SUM_IN_TOTAL:
                    self.summed.add(m.id)
        self.last_read: dict[int, int] = {}  # outside input id -> the last position reading it (write())
        self.comments: dict[int, str] = {}  # node id -> its `# file.tl:LINE` (write(): once per node)
        self.local = None  # the loop function's own names (write())
        self.accs: list[str] = []
        self.buffer_names: list[tuple[str, str]] = []  # per scratch buffer: (whole buffer, one block of it)
        self.const_rows: dict[tuple, str] = {}  # (constant, row shape) -> its row, made once per loop call
        self.hoisted: list[str] = []
        self.rows_index: str | None = None  # an arange of a block's rows, made once per loop call (row_index())
        self.ones: dict = {}  # (dtype, size reduced with the rows) -> a vector of ones, one block long
        # outputs that are gradients the caller gave out= buffers for: computed in a block of
        # their own, then added into the caller's rows (no array of the gradient is made)
        self.accumulate = {o.id: accumulate[o.id] for o in k.outputs if o.id in accumulate}
        self.acc_blocks: dict[int, tuple[str, str]] = {}  # output id -> (its block buffer, one block of it)
        self.cols: dict[tuple, tuple[str, object]] = {}  # (x id, window attributes) -> (its block's columns, bytes an image)
        self.col_names: list[str] = []  # loop machinery: the columns' copy functions and blocks

    # ---- buffers ---------------------------------------------------------------------------------
    def scratch_for(self, dtype, trailing) -> str:
        key = (dtype, tuple(trailing))
        free = self.free.get(key)
        if free:
            sid = free.pop()
        else:
            sid = len(self.scratch)
            self.scratch.append(key)
            self.buffer_names.append((self.local.fresh(f"s{sid}"), self.local.fresh(f"b{sid}")))
        return sid

    def release(self, ids) -> None:
        for d in ids:
            if d in self.holder:
                sid = self.holder.pop(d)
                self.free.setdefault(self.scratch[sid], []).append(sid)

    def out_view(self, o: Node) -> str:
        if o.id not in self.views:
            view = self.local.fresh(self.bound[o.id] + "_b")
            rows = f"{self.bound[o.id]}[{self.i}:{self.j}]"
            if o.id in self.accumulate and o.id not in self.taken_input:  # (a dead input's rows are free anyway)
                buf = self.local.fresh("g")
                self.acc_blocks[o.id] = (buf, o)
                rows = f"{rows} if {self.accumulate[o.id]} is None else {buf}[:{self.j} - {self.i}]"
            self.stmts.append(f"{view} = {rows}")
            self.views[o.id] = view
        return self.views[o.id]

    def add_into_caller(self, o: Node) -> None:
        """After o's block is complete: added into the caller's out= buffer, when one was given."""
        buf, rows = self.accumulate[o.id], f"{self.accumulate[o.id]}[{self.i}:{self.j}]"
        self.stmts.append(f"if {buf} is not None:")
        self.stmts.append(f"    {self.xp}.add({rows}, {self.views[o.id]}, out={rows})")
        self.accumulated.add(o.id)

    def target(self, n: Node, pos: int, inplace: bool = True) -> str:
        """Where node n's block value goes: its output array's rows, the rows of an output not
        written yet (lent), or scratch. pos: n's place in the loop; inplace: n's writer may
        write over a value it reads (a ufunc)."""
        if n.id in self.outputs:
            return self.out_view(n)
        lent = self.lend(n, pos, inplace)
        if lent is not None:
            return lent
        sid = self.scratch_for(n.dtype, n.shape[1:])
        self.holder[n.id] = sid
        return self.buffer_names[sid][1]

    def rows_free(self, o: Node, pos: int, inplace: bool) -> bool:
        """Whether output o's rows of this block hold nothing still needed at pos: the input whose
        memory o takes has been read for the last time, and no value put there earlier is read
        after pos (at pos only by a writer that may write over what it reads)."""
        taken = self.taken_input.get(o.id)
        since = max(self.last_read.get(taken.id, -1) if taken is not None else -1, self.busy.get(o.id, -1))
        return since < pos or (since == pos and inplace)

    def lend(self, n: Node, pos: int, inplace: bool) -> str | None:
        """The rows of an output written later in the loop, free now and until n's last reader:
        n's value lives there instead of in a scratch buffer of its own (W7's loop: 6 -> 5
        buffers; W3's: 5 -> 4), so blocks are bigger and the working set smaller. The output
        that is n's only reader comes first: a chain of ufuncs ending in an output then runs
        in the output's rows."""
        if not self.lendable:
            return None  # (a loop without outputs)
        end = self.last_use.get(n.id, pos)
        kind = (n.dtype, n.shape)
        readers = self.readers.get(n.id, ())
        if len(readers) == 1 and readers[0].id in self.outputs:
            o = readers[0]
            if (o.dtype, o.shape) == kind and self.takes(o, pos, end, inplace):
                return self.out_view(o)
        # the outputs of n's dtype and shape written at or after n's last use, in loop order (one
        # written before it cannot take n): a bisection, not a scan of every output per value
        positions, outputs = self.lendable.get(kind, ((), ()))
        for x in range(bisect.bisect_left(positions, end), len(outputs)):
            if self.takes(outputs[x], pos, end, inplace):
                return self.out_view(outputs[x])
        return None

    def takes(self, o: Node, pos: int, end: int, inplace: bool) -> bool:
        """Whether output o's rows can hold a value made at pos and last read at end (then they
        are busy until end)."""
        if not self.rows_free(o, pos, inplace):
            return False
        written = self.pos_of[o.id]  # o's own value goes there then: the value must be dead by then
        if written > end or (written == end and _overwrites(o)):
            self.busy[o.id] = end
            return True
        return False

    def value(self, i: Node, n: Node, aligned: bool) -> Expr:
        name = self.block_name(i, aligned)
        return self.arg(i, n) if name is None else Expr(name)

    def text(self, i: Node, n: Node, aligned: bool) -> str:
        """value()'s text, for a ufunc's argument list (no Expr made: most arguments are blocks)."""
        if i.id in self.members:  # (the common case, without block_name's call)
            return self.block[i.id]
        name = self.block_name(i, aligned)
        return self.arg(i, n).text if name is None else name

    def block_name(self, i: Node, aligned: bool) -> str | None:
        """The name input i has in a block: a member's block, or the block view of a row-aligned
        outside value (None: neither, the value as the function spells it)."""
        iid = i.id
        if iid in self.members:
            return self.block[iid]
        if aligned and i.type.shape and i.type.shape[0] == self.k.rows:
            if iid not in self.sliced:
                base = (self.ctx.vars.get(iid) or "x").lstrip("_")
                self.sliced[iid] = self.local.fresh(base + "_b")
                self.sliced_nodes[iid] = i
            return self.sliced[iid]
        return None

    # ---- nodes ---------------------------------------------------------------------------------------
    def member(self, pos: int, n: Node, last_use: dict[int, int]) -> None:
        if n.id in self.folded:
            return  # written by its only reader: the einsum of a sum, or the ufunc of a cast
        tags = self.tags  # (most loops fold nothing: no lookup then)
        computes = tags.get(n.inputs[0].id) if tags and n.inputs else None  # the folded input it computes
        if computes is Peephole.PRODUCT_IN_SUM:
            out = self.target(n, pos, inplace=False)  # einsum: its inputs are released after it
            index = ", ".join("0" if a in n.attr("axes") else ":" for a in range(n.inputs[0].type.rank))
            view = f"{out}[{index}]" if n.attr("keepdims") else out
            self.stmts.append(f"{self.product_sum(n)}, out={view})  {_comment(n)}")
            self.block[n.id] = out
            dying = [i.id for i in n.inputs[0].inputs if i.id in self.holder and last_use.get(i.id) == pos]
            self.release(list(dict.fromkeys(dying)))
            return
        if computes is Peephole.COMPARE_IN_CAST:
            c = n.inputs[0]
            args = [self.value(i, c, al) for i, al in zip(c.inputs, self.k.aligned[c.id])]
            self.release(list(dict.fromkeys(i.id for i in c.inputs if i.id in self.holder
                                            and last_use.get(i.id) == pos)))
            out = self.target(n, pos)
            self.stmts.append(f"{self.xp}.{_ufunc(c)[0]}({', '.join(a.text for a in args)}, out={out})"
                              f"  {_comment(n)}")
            self.block[n.id] = out
            return
        uf = _ufunc(n)
        if uf:  # (one ufunc call: the arguments' texts are all it needs)
            texts = [self.text(i, n, al) for i, al in zip(n.inputs, self.k.aligned[n.id])]
        elif n.op.loop is not None and n.op.loop.images is not None:
            args = self.image_args(n)
        else:
            args = [self.value(i, n, al) for i, al in zip(n.inputs, self.k.aligned[n.id])]
        holder = self.holder
        dying = [i.id for i in n.inputs if i.id in holder and last_use.get(i.id) == pos]
        if len(dying) > 1:
            dying = list(dict.fromkeys(dying))  # (x * x)
        where = self.comments[n.id]
        how = ask(self.asking["emit"], n)
        if uf:
            self.release(dying)  # a ufunc may write over an input it reads
            out = self.target(n, pos)
            ufunc, extra = uf
            if extra:
                texts += extra
            if how is Peephole.SCALAR_ROW:
                texts = self.scalar_rows(n, texts, list(n.inputs) + [None] * len(extra))
            self.stmts.append(f"{self.xp}.{ufunc}({', '.join(texts)}, out={out})  {where}")
        elif n.op.loop is not None and n.op.loop.into:  # writes its buffer (over an input that dies)
            self.release(dying)
            out = self.target(n, pos)
            self.stmts.append(f"{n.op.emit(self.ctx, args + [Expr(out)] + self.row_index(n), n).text}  {where}")
        elif n.op.loop is not None and n.op.loop.images is not None:  # conv: GEMMs into the block's buffer
            out = self.target(n, pos, inplace=False)
            self.stmts.append(f"{n.op.loop.images.emit(self.ctx, args, out, n)}  {where}")
            self.release(dying)
        elif how is Peephole.SELECT:
            out = self.target(n, pos, inplace=False)  # not over an input: the select reads them after writing
            self.select(n, args, out, where)
            self.release(dying)
        else:
            e = n.op.emit(self.ctx, args + self.row_index(n), n)
            if n.id in self.outputs:
                out = self.target(n, pos)
                self.stmts.append(f"{out}[...] = {e.text}  {where}")
            else:
                out = self.local.fresh(self.ctx.hint(n) or "t")
                self.stmts.append(f"{out} = {e.text}  {where}")
            self.release(dying)
        self.block[n.id] = out

    def row_index(self, n: Node) -> list[Expr]:
        """[the block's rows of an arange made once per loop call] for a record that indexes with
        it (Loop.row_index) over 1-D labels; [] for every other node."""
        if n.op.loop is None or not n.op.loop.row_index or n.inputs[1].type.rank != 1:
            return []
        if self.rows_index is None:
            self.rows_index = self.local.fresh("rows_index")
            self.hoisted.append(f"{self.rows_index} = {self.xp}.arange(min({self.rows}, {self.hi} - {self.lo}))")
        return [Expr(f"{self.rows_index}[:{self.j} - {self.i}]")]

    def scalar_rows(self, n: Node, texts: list[str], nodes: list) -> list[str]:
        """Each scalar constant operand of n's ufunc as a row of it, made once per loop call."""
        out = list(texts)
        for k, node in enumerate(nodes):  # None: an extra argument of the primitive's ufunc (relu's 0)
            if node is None or (node.is_const and node.type.rank == 0):
                key = (texts[k], tuple(n.shape[1:]))
                if key not in self.const_rows:
                    self.const_rows[key] = row = self.local.fresh("zeros" if texts[k] == "0" else "row")
                    self.hoisted.append(f"{row} = {self.xp}.full({self.ctx.shape((1, *n.shape[1:]))}, {texts[k]}, "
                                        f"dtype={self.ctx.dtype(n.dtype)})")
                out[k] = self.const_rows[key]
        return out

    def select(self, n: Node, args: list[Expr], out: str, where: str) -> None:
        """where(c, a, b) on the integers that hold the values, as b ^ ((a ^ b) & m) with m all
        ones where c (a & m, or b & ~m, when a branch is zero); m is c's bools negated as int8
        (0 or -1), widened by the and (peepholes.select)."""
        xp, it = self.xp, f"{self.xp}.{INT_OF[n.dtype].numpy_name}"
        c, a, b = args
        na, nb = n.inputs[1], n.inputs[2]
        sid = self.scratch_for(DType.BOOL, n.shape[1:])
        m = f"{self.buffer_names[sid][1]}.view({xp}.int8)"
        bools = c.text if c.text.isidentifier() else f"{xp}.asarray({c.text}, dtype={xp}.bool_)"
        self.stmts.append(f"{xp}.negative({bools}.view({xp}.int8), out={m})  {where}")
        o = f"{out}.view({it})"
        if _is_zero(na):  # where(c, 0, b): keep b where not c
            self.stmts.append(f"{xp}.invert({m}, out={m})")
            self.stmts.append(f"{xp}.bitwise_and({self.bits(b, nb, it)}, {m}, out={o})")
        elif _is_zero(nb):
            self.stmts.append(f"{xp}.bitwise_and({self.bits(a, na, it)}, {m}, out={o})")
        else:  # out may hold a (it is read first), never b (read again after out is written)
            self.stmts.append(f"{xp}.bitwise_xor({self.bits(a, na, it)}, {self.bits(b, nb, it)}, out={o})")
            self.stmts.append(f"{xp}.bitwise_and({o}, {m}, out={o})")
            self.stmts.append(f"{xp}.bitwise_xor({o}, {self.bits(b, nb, it)}, out={o})")
        self.free.setdefault(self.scratch[sid], []).append(sid)

    def bits(self, e: Expr, node: Node, it: str) -> str:
        """The integer view of one operand of a select (a constant becomes its bit pattern)."""
        if node.is_literal or not e.text.isidentifier():
            return f"{self.xp}.asarray({e.text}, dtype={self.ctx.dtype(node.dtype)}).view({it})"
        return f"{e.text}.view({it})"

    def product_sum(self, r: Node) -> str:
        """sum(x * y) over some axes as one einsum: no temporary for the product, one pass."""
        m = r.inputs[0]
        x, y = (self.value(i, m, al) for i, al in zip(m.inputs, self.k.aligned[m.id]))
        rank = m.type.rank
        letters = "abcdefghijklmnop"[:rank]
        subs = [letters[rank - i.type.rank:] for i in m.inputs]
        out = "".join(c for a, c in enumerate(letters) if a not in r.attr("axes"))
        return f"{self.xp}.einsum({(subs[0] + ',' + subs[1] + '->' + out)!r}, {x.text}, {y.text}"

    def sink(self, s: Node) -> tuple[str, Node]:
        how = ask(self.asking["sink"], s)
        if how is Peephole.TOTAL_OF_ROWS:
            m = s.inputs[0]
            e = Expr(self.total(s, self.value(m.inputs[0], m, self.k.aligned[m.id][0]).text))
        elif how is Peephole.PRODUCT_TOTAL:
            e = Expr(self.product_sum(s) + ")")
        elif how is Peephole.COLUMN_SUM:
            e = Expr(self.column_sum_text(s))
        elif how is Peephole.UFUNC_TOTAL:
            e = Expr(self.total(s, self.block[s.inputs[0].id]))
        elif s.op.loop.images is not None:  # conv_grad_w of a block's images, from their columns
            e = Expr(s.op.loop.images.emit(self.ctx, self.image_args(s), None, s))
        else:
            e = s.op.emit(self.ctx, [Expr(self.block[s.inputs[0].id])], s)
        acc = self.local.fresh("acc")
        self.accs.append(acc)
        if s.op.loop.combine is Combine.SUM:
            self.stmts.append(f"{acc} += {e.text}  {_comment(s)}")
        else:
            part = self.local.fresh("part")
            self.accs.append(part)  # loop machinery, as acc
            self.stmts.append(f"{part} = {e.text}  {_comment(s)}")
            self.stmts.append(f"{acc} = {part} if {acc} is None else {self.xp}.{s.op.reducer}({acc}, {part})")
        return acc, s

    def image_args(self, n: Node) -> list[Expr]:
        """The arguments of an op over a block's images (Loop.images): the block values of its
        inputs, the block's columns in place of the input whose windows they are."""
        x = n.op.loop.images.x
        return [Expr(self.columns(n)) if k == x else self.value(i, n, al)
                for k, (i, al) in enumerate(zip(n.inputs, self.k.aligned[n.id]))]

    def columns(self, n: Node) -> str:
        """The block's columns of n's windows (Loop.images), copied once per block for every op
        over the same windows; into a buffer made once per loop call (over x's whole rows when x
        is an outside value: its windows are set up once too)."""
        images = n.op.loop.images
        x = n.inputs[images.x]
        key = (x.id, images.key(n))
        if key not in self.cols:
            cols = self.local.fresh("cols")
            block = f"{self.j} - {self.i}"
            if x.id in self.members:  # (made in the block: its windows too)
                self.stmts.append(f"{cols} = {images.columns(self.ctx, self.block[x.id], block, n)}(0, {block})")
            else:
                copy = self.local.fresh("columns")
                rows = f"min({self.rows}, {self.hi} - {self.lo})"
                self.hoisted.append(f"{copy} = {images.columns(self.ctx, self.arg(x, n).text, rows, n)}")
                self.stmts.append(f"{cols} = {copy}({self.i}, {self.j})")
                self.col_names.append(copy)
            self.col_names.append(cols)
            self.cols[key] = (cols, images.column_bytes(n))
        return self.cols[key][0]

    def total(self, s: Node, block: str) -> str:
        """A block's float sum (max, min) over everything, by the ufunc's reduce (peepholes.ufunc_total)."""
        return f"{self.xp}.{s.op.reducer}.reduce({block}, axis=None)"

    def column_sum_text(self, s: Node) -> str:
        x, p = s.inputs[0], len(s.attr("axes"))
        inner = dim_prod(x.shape[1:p])  # reduced along with the rows: the ones run over rows * inner
        key = (x.dtype, inner)
        if key not in self.ones:
            self.ones[key] = self.local.fresh("ones")
            count = f"min({self.rows}, {self.hi} - {self.lo})" + ("" if inner == 1 else f" * {self.ctx.dim(inner)}")
            self.hoisted.append(f"{self.ones[key]} = {self.xp}.ones({count}, dtype={self.ctx.dtype(x.dtype)})")
        rows = f"{self.j} - {self.i}" if inner == 1 else f"({self.j} - {self.i}) * {self.ctx.dim(inner)}"
        block = self.block[x.id]
        if x.type.rank == 2:
            return f"{self.ones[key]}[:{rows}] @ {block}"
        kept = x.shape[p:]
        # the row count spelled out: with a zero-sized kept axis, -1 could not be inferred
        text = f"{self.ones[key]}[:{rows}] @ {block}.reshape({rows}, {self.ctx.dim(dim_prod(kept))})"
        return text if len(kept) == 1 else f"({text}).reshape({self.ctx.shape(kept)})"

    # ---- the whole loop -----------------------------------------------------------------------------
    def write(self) -> WrittenLoop:
        ctx, xp, k = self.ctx, self.xp, self.k
        names = ctx.names
        places = {n.id: _where(n) for n in k.nodes}
        self.comments = {n.id: f"# {places[n.id]}" if n.span else "" for n in k.nodes}
        lines = [f"# a fused loop over blocks of rows ({', '.join(sorted(set(places.values())))})"]
        taken = {o.id: i for i, o in self.reusable}
        for o in k.outputs:
            var = names.fresh(ctx.hint(o) or "t")
            self.bound[o.id] = var
            if o.id in taken:
                lines.append(f"{var} = {self.exprs[taken[o.id].id].text}  # its memory is free from here on")
            elif o.id in self.accumulate:  # made only when there is no out= buffer to add it into
                lines.append(f"{var} = {xp}.empty({ctx.shape(o.shape)}, dtype={ctx.dtype(o.dtype)}) "
                             f"if {self.accumulate[o.id]} is None else None")
            else:
                lines.append(f"{var} = {xp}.empty({ctx.shape(o.shape)}, dtype={ctx.dtype(o.dtype)})")
        # the loop function's names: never one the enclosing function has taken (a parameter `j`
        # or `b2` the loop reads is not shadowed), while short names repeat from loop to loop
        self.local = names.nested()
        self.lo, self.hi, self.rows, self.i, self.j = (self.local.fresh(s) for s in ("lo", "hi", "rows", "i", "j"))
        # each sink right after the (last) member it reads, so that member's buffer is free sooner
        place_of = {m.id: p for p, m in enumerate(k.members)}
        sinks_of: dict[int, list[Node]] = {}
        for s in k.sinks:
            last = max((i for i in s.inputs if i.id in place_of), key=lambda i: place_of[i.id])
            sinks_of.setdefault(last.id, []).append(s)
        order = []
        for m in k.members:
            order.append(m)
            if m.id in sinks_of:
                order += sinks_of[m.id]
        last_use: dict[int, int] = self.last_use
        self.pos_of = {n.id: pos for pos, n in enumerate(order)}
        groups: dict[tuple, tuple[list, list]] = {}
        for o in k.outputs:  # (in loop order)
            positions, outputs = groups.setdefault((o.dtype, o.shape), ([], []))
            positions.append(self.pos_of[o.id])
            outputs.append(o)
        self.lendable = groups
        members, folded, last_read = self.members, self.folded, self.last_read
        for pos, n in enumerate(order):
            reads = n.inputs
            if reads and reads[0].id in folded:
                reads = reads + reads[0].inputs  # (its folded input's inputs are read here too)
            for i in reads:
                if i.id in members:
                    last_use[i.id] = pos
                else:
                    last_read[i.id] = pos  # positions in `order`, as target() is given
        for p, _, _, _ in k.scatters:
            last_use[p.id] = len(order)  # read by the block's last statements
        for n in reversed(order):  # a view (finite_or_zero's m) keeps its input's buffer while it is read
            if n.id in members and n.op.is_view(n) and n.id in last_use:
                for i in n.inputs:
                    if i.id in members:
                        last_use[i.id] = max(last_use[i.id], last_use[n.id])
        accs = []
        for pos, n in enumerate(order):
            if n.id in members:
                self.member(pos, n, last_use)
                if n.id in self.accumulate:
                    self.add_into_caller(n)
            else:
                accs.append(self.sink(n))
                reads = n.inputs[0].inputs if n.inputs[0].id in self.folded else n.inputs
                self.release(list(dict.fromkeys(i.id for i in reads if last_use.get(i.id) == pos)))
        for p, base, items, sign in k.scatters:  # the block's rows of each slice, into the base's rows
            whole = self.bound.get(base.id) or self.exprs[base.id].at(PREC_POSTFIX)
            view = f"{whole}[{index_text(ctx, items)}]" if items else whole
            self.stmts.append(f"{view}[{self.i}:{self.j}] {'+' if sign > 0 else '-'}= {self.block[p.id]}  "
                              f"{self.comments[p.id]}".rstrip())
        sink_index = {s.id: x for x, s in enumerate(k.sinks)}
        accs.sort(key=lambda a: sink_index[a[1].id])
        # the block values keep their names out of the rest of the function (no `t_4` meaning two
        # things to a reader); loop machinery (lo, i, s0, b0, acc, ...) repeats from loop to loop
        machinery = {self.lo, self.hi, self.rows, self.i, self.j, *self.accs}
        machinery |= {*self.const_rows.values(), *self.ones.values()} | ({self.rows_index} - {None})
        machinery |= {x for pair in self.buffer_names for x in pair} | {b for b, _ in self.acc_blocks.values()}
        machinery |= set(self.col_names)
        names.taken |= self.local.taken - machinery
        fname = names.fresh(f"_fused{k.index}")
        inner = []
        lo, hi, i, j = self.lo, self.hi, self.i, self.j
        for (dt, trailing), (whole, _) in zip(self.scratch, self.buffer_names):
            dims = ", ".join([f"min({self.rows}, {hi} - {lo})"] + [ctx.dim(d) for d in trailing])
            inner.append(f"{whole} = {xp}.empty(({dims}{',' if not trailing else ''}), dtype={ctx.dtype(dt)})")
        for buf, o in self.acc_blocks.values():
            dims = ", ".join([f"min({self.rows}, {hi} - {lo})"] + [ctx.dim(d) for d in o.shape[1:]])
            inner.append(f"{buf} = {xp}.empty(({dims}{',' if o.type.rank == 1 else ''}), dtype={ctx.dtype(o.dtype)}) "
                         f"if {self.accumulate[o.id]} is not None else None")
        inner += self.hoisted
        for acc, s in accs:
            inner.append(f"{acc} = {xp}.zeros({ctx.shape(s.shape)}, dtype={ctx.dtype(s.dtype)})"
                         if s.op.loop.combine is Combine.SUM else f"{acc} = None")
        inner.append(f"for {i} in range({lo}, {hi}, {self.rows}):")
        loop = [f"{j} = min({i} + {self.rows}, {hi})"]
        loop += [f"{block} = {whole}[:{j} - {i}]" for whole, block in self.buffer_names]
        loop += [f"{var} = {self.exprs[nid].text}[{i}:{j}]" for nid, var in self.sliced.items()]
        loop += self.stmts
        inner += ["    " + line for line in loop]
        inner.append("return (" + "".join(f"{a}, " for a, _ in accs) + ")")
        lines.append(f"def {fname}({lo}, {hi}, {self.rows}):")
        lines += ["    " + line for line in inner]
        # (each distinct row shape once, in member order: max keeps the first of equal weight)
        widest = max((dim_prod(t) for t in dict.fromkeys(m.shape[1:] for m in k.members)), key=_dim_weight)
        w = ctx.dim(self.row_bytes())  # what one row touches: _blocks makes blocks of _BLOCK_BYTES
        combine = "(" + "".join(f"{s.op.loop.combine.value!r}, " for s in k.sinks) + ")"
        size = ctx.dim(dim_prod((k.rows, widest)))
        # cheap ufuncs only: on threads, where each call's fixed cost holds the GIL, bigger blocks
        grow = "" if any(m.op.cost is Cost.COSTLY for m in k.members) else ", _CHEAP_BLOCKS"
        if self.cols:  # a convolution's GEMMs: blocks of L2-sized columns on threads too, and as
            grow = ", least=1"  # a row is an image of thousands of elements, one-image blocks are no cost to ufuncs
        if k.serial:
            lines.append("# on one thread: neighbouring blocks add into a row they share")
            size = "0"
        call = f"{ctx.helper('blocks')}({fname}, {ctx.dim(k.rows)}, {w}, {size}, {combine}{grow})"
        sink_vars = []
        for s in k.sinks:
            var = names.fresh(ctx.hint(s) or "t")
            self.bound[s.id] = var
            sink_vars.append(var)
        lines.append(f"{', '.join(sink_vars)}, = {call}" if sink_vars else call)
        return WrittenLoop(lines, self.bound, self.accumulated)


    def scratch_bytes(self) -> int:
        """Bytes a row of the loop's scratch buffers takes (a size symbol counted as 1024)."""
        total = 0
        for dt, trailing in self.scratch:
            w = dt.itemsize
            for d in trailing:
                w *= d if isinstance(d, int) else 1024
            total += w
        return total

    def row_bytes(self):
        """Bytes one row of a block touches: its scratch and its rows of inputs and outputs.
        Blocks hold _BLOCK_BYTES of them, so a block's working set stays in L2 and the
        scratch (per thread) stays small next to the arrays the function allocates anyway."""
        total = 0
        parts = [(dt, trailing) for dt, trailing in self.scratch]
        parts += [(n.dtype, n.shape[1:]) for n in list(self.sliced_nodes.values()) + list(self.k.outputs)]
        parts += [(o.dtype, o.shape[1:]) for _, o in self.acc_blocks.values()]  # with out=: the caller's rows too
        parts += [(b.dtype, b.shape[1:]) for b in {b.id: b for _, b, _, _ in self.k.scatters if b.id not in self.members}.values()]
        counts: dict[tuple, int] = {}  # (a loop may write a thousand rows of one shape: each shape summed once)
        for dt, trailing in parts:
            key = (dt.itemsize, tuple(trailing))
            counts[key] = counts.get(key, 0) + 1
        for (itemsize, trailing), count in counts.items():
            total = dim_add(total, dim_mul(count * itemsize, dim_prod(trailing)))
        if self.cols:
            # a convolution's columns: its GEMMs read them, and the block's other rows are what
            # the ufuncs touch between the GEMMs; each is held to _BLOCK_BYTES (W9: 2 images,
            # as the columns' chunks of _IM2COL_BYTES the convolution makes outside a loop)
            columns = 0
            for _, per_image in self.cols.values():
                columns = dim_add(columns, per_image)
            return _dim_max(total, columns)
        return total


def _ufunc(n: Node) -> tuple | None:
    """(name, extra arguments) when the node is one ufunc call (the primitive table says)."""
    return n.op.ufunc


def _overwrites(n: Node) -> bool:
    """n's call may write over a value it reads: a ufunc, or a record that reads its input
    whole before writing its buffer (Loop.into: softmax's max comes before its first write)."""
    return bool(_ufunc(n)) or (n.op.loop is not None and n.op.loop.into)


def _is_zero(n: Node) -> bool:
    return n.is_const and n.attr("value") == 0 and not str(n.attr("value")).startswith("-")


def _where(n: Node) -> str:
    return place(n)


def _comment(n: Node) -> str:
    return f"# {_where(n)}" if n.span else ""


def _dim_max(a, b):
    """The larger of two byte counts; with a size symbol in either, their sum (an upper bound
    when the max cannot be known now)."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return dim_add(a, b)


def _dim_weight(d) -> tuple:
    return (1, 0) if isinstance(d, Dim) else (0, d)
