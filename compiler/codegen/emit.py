"""IR -> Python source for NumPy or CuPy (docs/language.md, "Generated modules").

A small printer: one statement per IR node (single-use values without a
source name are folded into their user's expression when they come from the
same source line), names from the source, a `# file.tl:LINE` comment on every
statement, a docstring with the full signature and shapes, argument checks
(checks.py), helpers and imports only as used. Output depends only on the IR
and the options, so the same input gives byte-identical text.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..core.derivative import Part, Slot
from ..core.ir import Function, Module, Node, group_key, topo_order
from ..core.primitive import PREC_ATOM, PREC_MUL, PREC_POSTFIX, PREC_UNARY, Expr, ops
from ..core.types import Dim, DType, dim_text
from . import checks
from .backends import BACKENDS, Backend, helper_closure, helpers, module_globals
from . import dead_arrays
from .fused.plan import (NUMPY_RULES, Kernel, fresh_array, item_nodes, last_reads, plan, reusable_inputs, schedule,
                         scatter_done)
from .fused.writer import write_kernel
from .kernels import cupy_writer
from .names import Names, place, sanitize_docstring
from ..primitives.loops import in_place_updates, overwritten_carries, parts, update_in_place
from ..primitives.shape import index_text

CHECK_HELPER_NAMES = ("array", "scalar", "what", "residual", "rank_error", "shape_error", "size_error",
                      "out_buffers", "residual_tuple")


@dataclass(frozen=True)
class Options:
    backend: str = "numpy"
    checks: bool = True
    opt_level: int = 1

    @property
    def fuse(self) -> bool:
        """Fused elementwise chains, where the backend has them: cache-blocked loops (NumPy) or
        CUDA kernels (CuPy)."""
        caps = BACKENDS[self.backend].caps
        return (caps.fusion or caps.cuda_kernels) and self.opt_level >= 1


class ModuleContext:
    def __init__(self, module: Module, options: Options, version: str):
        self.module = module
        self.options = options
        self.version = version
        self.backend: Backend = BACKENDS[options.backend]
        self.helpers_used: set[str] = set()
        self.dtype_consts: set[DType] = set()
        self.scalar_types: set[DType] = set()
        # __tapeless__ and other dunders: Names renames every dunder
        reserved = module_globals(self.backend) | {f"_{h}" for h in helpers()} | \
            {f"_{h}" for h in CHECK_HELPER_NAMES} | {f"_{d.short.upper()}" for d in DType} | \
            {f"_{d.numpy_name}" for d in DType}
        self.names = Names(reserved)
        self.fn_names: dict[str, str] = {}
        self.orders: dict = {}  # fn name (a loop body: its id) -> order(fn)
        # const node id -> its text as a typed scalar / as a plain Python number: a const's text
        # depends on nothing else, and a long chain's functions write the same few thousand
        self.literal_exprs: dict[int, Expr] = {}
        self.plain_literals: dict[int, Expr] = {}
        for f in module.functions:
            self.fn_names[f.name] = self.names.fresh(f.name)
        self.kernel_sources: list[str] = []  # compiled kernels (numba), after the functions
        self.kernel_modules: set[str] = set()  # what those need imported besides the backend's (math)
        self.forms: set[str] = set()  # vectorisable math forms the kernels call (their sources pasted once)
        self.bodies: dict[tuple, str] = {}  # a loop body (its parameters and outputs) -> its Python name
        self.body_sources: list[str] = []  # written after the functions that use them
        # CuPy kernel objects (kernels/cupy_writer.py): their definition -> Python name; the sources
        self.cupy_kernels: dict[tuple, str] = {}
        self.cupy_kernel_sources: list[str] = []

    def body_function(self, fn: Function, source: str = "") -> str:
        """The module-level function of a loop body (written once, on its first use); `source`:
        the fn of the source it is in, which its run-time errors name."""
        key = (tuple(p.id for p in fn.params), tuple(o.id for o in fn.outputs))  # (nodes are interned: equal bodies, one function)
        name = self.bodies.get(key)
        if name is None:
            name = self.bodies[key] = self.names.fresh(f"_{fn.name}")
            self.body_sources.append(_body_source(self, fn, name, source))
        return name

    def order(self, fn: Function) -> list[Node]:
        """fn's nodes, inputs first (ir.topo_order), walked once: its body, its checks and its
        `__tapeless__` entry all read them (the walk's own cache keeps only the last few fns)."""
        key = fn.name if fn.derivative is not None or fn.name in self.fn_names else id(fn)  # (loop bodies may share a name)
        order = self.orders.get(key)
        if order is None:
            order = self.orders[key] = topo_order(fn.outputs)
        return order


class FnContext:
    """What primitive emitters see (`ctx`): names, literals, shapes, helpers."""

    def __init__(self, mod: ModuleContext, names: Names):
        self.mod = mod
        self.backend = mod.backend
        self.xp = mod.backend.alias
        self.names = names
        self.vars: dict[int, str] = {}
        self.symbols: dict[str, str] = {}
        self.fn_name = ""  # the source name of the function being written, for messages
        self.source_fn = ""  # a loop body's: the source fn it is in
        self.params: dict[int, str] = {}  # param id -> how messages name it ("argument `k`")
        # without checks: size symbol -> where it is read, bound when the code first needs it
        self.unbound: dict[str, str] = {}
        self.binding_lines: list[str] = []
        # Dim -> its text, once all its symbols are bound (a binding never changes after)
        self.dim_texts: dict[Dim, str] = {}

    def helper(self, name: str) -> str:
        key = "checks" if name in CHECK_HELPER_NAMES else name
        self.mod.helpers_used.add(key)
        return f"_{name}"

    def dtype(self, dt: DType) -> str:
        return f"{self.xp}.{dt.numpy_name}"

    def function(self, name: str) -> str:
        """The generated module's name for the function of the fn `name` (a call calls it)."""
        return self.mod.fn_names[name]

    def dtype_const(self, dt: DType) -> str:
        self.mod.dtype_consts.add(dt)
        return f"_{dt.short.upper()}"

    def scalar_type(self, dt: DType) -> str:
        """The NumPy scalar type as a module global (`_float64`): the argument checks' type test
        costs half as much as with `np.float64`."""
        self.mod.scalar_types.add(dt)
        return f"_{dt.numpy_name}"

    def bind_symbol(self, sym: str) -> str:
        var = self.names.fresh(sym)
        self.symbols[sym] = var
        return var

    def dim(self, d) -> str:
        if isinstance(d, Dim):
            text = self.dim_texts.get(d)
            if text is not None:
                return text
            for sym in sorted(d.symbols & self.unbound.keys()):
                self.binding_lines.append(f"{self.bind_symbol(sym)} = {self.unbound.pop(sym)}")
            missing = d.symbols - set(self.symbols)
            if missing:  # pragma: no cover - autodiff guarantees every symbol has a binding
                raise AssertionError(f"size symbol(s) {sorted(missing)} have no binding here")
            text = self.dim_texts[d] = dim_text(d, python=True, names=self.symbols)
            return text
        return dim_text(d, python=True, names=self.symbols)

    def shape(self, shape) -> str:
        parts = [self.dim(d) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def literal(self, v) -> str:
        if isinstance(v, bool):
            return repr(v)
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, float):
            if math.isnan(v):
                return f"{self.xp}.nan"
            if math.isinf(v):
                return f"{self.xp}.inf" if v > 0 else f"-{self.xp}.inf"
            return repr(v)
        if isinstance(v, tuple):
            return "(" + ", ".join(self.literal(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        return repr(v)

    def scalar_text(self, node: Node) -> str:
        """A const's value as the shortest text that round-trips in its dtype."""
        v = node.attr("value")
        if isinstance(v, float) and math.isfinite(v):
            return str(node.dtype.np.type(v))
        return self.literal(v)

    def literal_expr(self, node: Node) -> Expr:
        """A const as a typed scalar, e.g. np.float32(0.5) (a Python literal where that is exact)."""
        e = self.mod.literal_exprs.get(node.id)
        if e is None:
            e = self.mod.literal_exprs[node.id] = Expr(f"{self.dtype(node.dtype)}({self.scalar_text(node)})",
                                                       PREC_POSTFIX)
        return e

    def dim_expr(self, node: Node) -> Expr:
        return Expr(f"{self.dtype(node.dtype)}({self.dim(node.attr('dim'))})", PREC_POSTFIX)

    def name(self, node: Node) -> str:
        return self.vars[node.id]

    def naming(self, node: Node) -> str:
        """How a check inside generated code names the value it rejects: the function and the
        argument (`f(): argument `k``), or for a computed value its line (`f(): the value at
        f.tl:3`). A plain string: emitters write it as a repr."""
        if node.id in self.params:
            return f"{self.fn_name}(): {self.params[node.id]}"
        return f"{self.fn_name}(): the value at {place(node)}"

    def hint(self, node: Node) -> str | None:
        """The name the source or a derivative gave the value (Module.hints), if any."""
        return self.mod.module.name_of(node)


def _literal_ok(c: Node, consumer: Node) -> bool:
    """May a const/dim be written as a plain Python number here? Only when another operand is a
    typed array of the same dtype, so NumPy's rules for Python scalars give exactly that dtype."""
    prim = consumer.op
    if not prim.elementwise:
        return False
    return any(i is not c and not i.is_literal and i.dtype == c.dtype for i in consumer.inputs)


def _plain_literal(ctx: FnContext, c: Node) -> Expr:
    if c.is_dim:
        text = ctx.dim(c.attr("dim"))  # multi-term polynomials come parenthesised
    else:
        v = c.attr("value")
        # an integral float reads better as an int; exact, since the other operand fixes the dtype
        text = str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53 else ctx.scalar_text(c)
    if text.startswith("-"):
        prec = PREC_UNARY
    elif "*" in text and not text.startswith("("):
        prec = PREC_MUL
    else:
        prec = PREC_ATOM
    return Expr(text, prec)


# ---- function bodies ------------------------------------------------------------------------------------
class Body:
    def __init__(self, ctx: FnContext, fn: Function):
        self.ctx = ctx
        self.fn = fn
        self.lines: list[str] = []
        self.exprs: dict[int, Expr] = {}
        self.return_span: Node | None = None  # the node a `return <expr>` line comes from
        # gradient -> its out= buffer's variable (None when out= is not given), for gradients a
        # fused loop can add into that buffer block by block (accumulated: those it did)
        self.out_bufs: dict[int, str] = {}
        self.accumulate: dict[int, str] = {}
        self.accumulated: set[int] = set()
        self.uses: dict[int, int] = {}  # node id -> reads and returns (set by emit)
        self.in_place: set[int] = set()  # dyn_update nodes written in place (a loop body's own carry)
        self.fuse = True  # blocked loops (not in a loop body: see _body_source)
        # values read by an expression written later, inside its reader's statement (inlined, or
        # returned): their arrays are read at that statement, so nothing before it may write over
        # them or delete their names
        self.deferred: set[int] = set()
        self.given: set[int] = set()  # dead arrays a product was written into (dead_array)
        self.deferred_at: dict[int, int] = {}  # ... and the position of the statement reading them
        self.released: set[str] = set()  # names deleted (release)

    def emit(self) -> list[Expr]:
        fn, ctx = self.fn, self.ctx
        d = fn.derivative
        gradients = d is not None and d.n_gradients > 0  # (out= accumulates them: no return expression)
        whole_reverse = gradients and d.part is Part.WHOLE
        order = ctx.mod.order(fn)
        out_ids = {o.id for o in fn.outputs}
        uses: dict[int, int] = {}  # (ir.use_counts, in the same walk as the readers)
        consumer: dict[int, Node] = {}
        for n in order:
            for i in n.inputs:
                uses[i.id] = uses.get(i.id, 0) + 1
                consumer[i.id] = n
        for o in fn.outputs:
            uses[o.id] = uses.get(o.id, 0) + 1
        self.uses = uses
        cuda_kernels = ctx.backend.caps.cuda_kernels
        compiled = ctx.backend.caps.compiled_kernels or cuda_kernels
        rules = cupy_writer.RULES if cuda_kernels else _numba().RULES if compiled else NUMPY_RULES
        kernels = plan(order, list(fn.outputs), rules) if ctx.mod.options.fuse and self.fuse else []
        in_kernel = {n.id for k in kernels for n in k.nodes}
        items = schedule(order, kernels) if kernels else order
        keep = {p.id for p in fn.params} | out_ids  # never written over: arguments and results
        outputs = list(fn.outputs)
        self.accumulate = {o: buf for o, buf in self.out_bufs.items()
                           if outputs.count(next(x for x in outputs if x.id == o)) == 1 and uses.get(o) == 1}
        reuse = reusable_inputs(items, kernels, keep) if kernels else {}
        into: dict[tuple, list[Node]] = {}  # (dtype, shape) -> arrays a product may write into once dead
        if ctx.mod.options.fuse and self.fuse:
            aliased = dead_arrays.shared(items, reuse, kernels, keep)
            items = dead_arrays.move_reads_earlier(items, keep, aliased)
            for x in dead_arrays.candidates(items, keep, aliased).values():
                into.setdefault((x.dtype, x.shape), []).append(x)
            memory_read = dead_arrays.memory_reads(items) if into else {}
        last_read, view_of = last_reads(items)
        viewed = set(view_of)
        position = {m.id: at for at, item in enumerate(items) for m in item_nodes(item)} \
            if into else {}
        scattered = {nid for k in kernels for nid in k.scattered}
        unread = unread_inits(items, uses) if into else set()
        for at, item in enumerate(items):
            if isinstance(item, Kernel):
                self.kernel(item, reuse.get(item.index, []))
                continue
            n = item
            if n.is_param:
                self.exprs[n.id] = Expr(ctx.vars[n.id])
                continue
            if scattered and scatter_done(n, scattered):
                self.exprs[n.id] = self.exprs[n.inputs[0].id]  # the loops have added its parts into the base
                if n.inputs[0].id in ctx.vars:
                    ctx.vars[n.id] = ctx.vars[n.inputs[0].id]
                continue
            if n.is_literal:
                continue  # written at each use, in the form the use needs
            if n.op.write is not None:  # statements (a loop): written once, for all the group's members
                if n.id not in self.exprs:
                    key = group_key(n)
                    n.op.write(self, n, {m.attr("out"): m for m in order if m.op is n.op and group_key(m) == key})
                    ends = max(k for k, m in enumerate(items) if isinstance(m, Node) and m.op is n.op
                               and group_key(m) == key)
                    if n.op is ops.for_loop:  # (its carries' initial values live on in the carries)
                        self.release([i for i in parts(n)[2] if last_read.get(i.id) == ends], keep,
                                     taken_later(items, at, into))
                continue
            args = [self.arg(i, n) for i in n.inputs]
            if n.id in self.in_place:
                self.statement(update_in_place(ctx, args, n), n)
                self.exprs[n.id] = args[0]
                continue
            if (n.op.loop is not None and n.op.loop.into and _temporary(n, at, last_read, viewed, out_ids)
                    and n.inputs[0].id not in self.deferred):
                args.append(args[0])  # written over its input, a temporary nothing reads after it (sub_label)
            if into and n.op.writes_into(n):
                x = self.dead_array(n, into.get((n.dtype, n.shape), ()), at, memory_read)
                if x is not None and n.id in unread:  # (a loop writes all of it before reading it)
                    var = ctx.names.fresh(ctx.hint(n) or "t")
                    ctx.vars[n.id] = var
                    self.lines.append(f"{var} = {self.exprs[x.id].text}  # its memory is free: the loop sets every row")
                    self.exprs[n.id] = Expr(var)
                    continue
                if x is not None:
                    args.append(self.exprs[x.id])
            e = n.op.emit(ctx, args, n)
            user = consumer.get(n.id)
            if (n.id in out_ids and uses.get(n.id, 0) == 1 and ctx.hint(n) is None and not n.op.is_view(n)
                    and not gradients):
                self.exprs[n.id] = e  # written straight into the return statement
                self.return_span = self.return_span or n
                self.deferred.update(i.id for i in n.inputs)
                self.defer(n, len(items))
                continue
            inline = (
                uses.get(n.id, 0) == 1 and n.id not in out_ids and ctx.hint(n) is None and user is not None
                and n.span is not None and user.span is not None and n.span.line == user.span.line
                and n.span.file == user.span.file and len(e.text) <= 72 and user.id not in in_kernel
            )
            if inline:
                self.exprs[n.id] = e
                self.deferred.update(i.id for i in n.inputs)
                self.defer(n, position.get(user.id, len(items)))
                continue
            var = ctx.names.fresh(ctx.hint(n) or ("value" if n.id in out_ids and whole_reverse else "t"))
            ctx.vars[n.id] = var
            self.statement(f"{var} = {e.text}", n)
            self.exprs[n.id] = Expr(var)
        n_copy = d.n_primal_outputs if d is not None and d.part is Part.FWD else len(fn.outputs)
        return [self.value(o, k < n_copy) for k, o in enumerate(fn.outputs)]

    def defer(self, n: Node, until: int) -> None:
        """n is inlined into a statement at position `until`: its inputs (and theirs, when inlined
        too) are read there."""
        for i in n.inputs:
            if self.deferred_at.get(i.id, -1) < until:
                self.deferred_at[i.id] = until
                if i.id in self.exprs and i.id not in self.ctx.vars:
                    self.defer(i, until)

    def dead_array(self, n: Node, arrays: list[Node], at: int, memory_read: dict[int, int]) -> Node | None:
        """An array of n's shape and dtype (codegen/dead_arrays.py) that nothing reads from n on,
        held by a name of its own: n is written into it (once: its memory is n's from then on)."""
        for x in arrays:
            var = self.ctx.vars.get(x.id)
            if (var is None or memory_read.get(x.id, at) >= at or (n.inputs and dead_arrays.is_relabelled(x)) or self.deferred_at.get(x.id, -1) >= at or x.id in self.given
                    or x.id not in self.exprs or self.exprs[x.id].text != var or var in self.released
                    or any(i is x for i in n.inputs)):
                continue
            self.given.add(x.id)
            return x
        return None

    def release(self, dead: list[Node], keep: set[int], taken: set[int] = frozenset()) -> None:
        """Drop the names of the arrays a loop was the last to read (values it captured), so that
        their memory is free for what follows (W10: the input projections of every step, [T, B, H], dead after the
        forward loop, were alive beside their gradient's buffer, a third of the peak); not those a
        later statement will write into (`taken`: dead_array gives them on)."""
        names = []
        for i in dead:
            var = self.ctx.vars.get(i.id)
            if (var is None or i.id in keep or i.id in self.deferred or i.is_leaf or i.is_literal or i.type.rank == 0
                    or var in names or i.id in taken
                    or sum(v == var for v in self.ctx.vars.values()) != 1):
                continue  # (a name another value shares stays)
            names.append(var)
        if names:
            self.released.update(names)
            self.statement(f"del {', '.join(names)}  # read last by the loop: memory free from here on", None)

    # ---- records written as statements (a loop: primitives/loop_code.py) -------------------------------
    def carries(self, n: Node, inits, names, readers: int = 1) -> list[str]:
        """Variables for a loop's carries, set to their initial values (copied where the body
        writes into them: never into the caller's array)."""
        out = []
        uses = self.uses
        for init, name in zip(inits, names):
            var = self.ctx.names.fresh(name)
            arg = self.arg(init, n)
            # (`readers`: the group's members here, each of which has every input of the loop)
            fresh = init.is_literal or (init.op.allocates and not init.is_leaf and uses.get(init.id, 0) == readers
                                        and not init.op.is_view(init))
            # (copied unless a fresh temporary: after zero iterations the loop's result is its
            # initial value, which must not be an argument or a value something else writes over)
            self.statement(f"{var} = {arg.text}" if fresh else f"{var} = {arg.at(PREC_POSTFIX)}.copy()", n)
            out.append(var)
        return out

    def bind(self, members: dict[int, Node], variables: list[str]) -> None:
        """The members of a group (by `out`) are these variables."""
        for j, var in enumerate(variables):
            m = members.get(j)
            if m is not None:
                self.ctx.vars[m.id] = var
                self.exprs[m.id] = Expr(var)

    # ---- fused, cache-blocked loops (fused/plan.py plans them, fused/writer.py writes them) ----------
    def kernel(self, k: Kernel, reusable) -> None:
        if self.ctx.backend.caps.cuda_kernels:
            writer = cupy_writer.CupyKernels(self, k)
            self.lines.extend(writer.write())
            for nid, var in writer.bound.items():
                self.ctx.vars[nid] = var
                self.exprs[nid] = Expr(var)
            return
        if self.ctx.backend.caps.compiled_kernels:
            return self.compiled_kernel(k, reusable)
        loop = write_kernel(self.ctx, k, reusable, self.exprs, self.arg, self.accumulate)
        self.lines.extend(loop.lines)
        for nid, var in loop.bound.items():
            self.ctx.vars[nid] = var
            self.exprs[nid] = Expr(var)
        self.accumulated |= loop.accumulated

    def compiled_kernel(self, k: Kernel, reusable) -> None:
        """A kernel as a module-level numba function (kernels/numba_writer.py) and its call: the
        outputs allocated here (or the caller's out= buffer, added into), the sinks' per-block
        partials combined here in block order."""
        from .kernels import program as P

        nw = _numba()
        ctx, mod = self.ctx, self.ctx.mod
        local = Names(nw.reserved() + tuple(f"{c}{a}" for c in "jq" for a in range(10)))
        prog = P.build(k, ctx.hint, local, {o.id: self.accumulate[o.id] for o in k.outputs if o.id in self.accumulate},
                       name_of=lambda n: ctx.vars.get(n.id), reusable=reusable, see_through=True)
        kname = mod.names.fresh(f"_{ctx.fn_name}_k{k.index}" if ctx.fn_name.isidentifier() else f"_k{k.index}")
        writer = nw.NumbaKernel(prog, kname, sanitize_docstring(ctx.fn_name), ctx.dim, mod.forms.add, local.fresh)
        src, _ = writer.source()
        mod.kernel_sources.append(src)
        if writer.math:
            mod.kernel_modules.add("math")
        xp = ctx.xp
        self.lines.append(f"# a fused numba kernel ({', '.join(prog.places)}): {kname} below")
        args = []
        for op in prog.operands:
            text = self.exprs[op.node.id].text
            args.append(f"{ctx.dtype(op.dtype)}({text})" if not op.shape else text)
        operand_text = {op.name: text for op, text in zip(prog.operands, args)}
        for o in prog.outputs:
            var = ctx.names.fresh(ctx.hint(o.node) or "t")
            alloc = f"{xp}.empty({ctx.shape(o.shape)}, dtype={ctx.dtype(o.dtype)})"
            if o.reuses is not None:
                self.lines.append(f"{var} = {operand_text[o.reuses]}  # its memory is free from here on")
            elif o.accumulate is not None:
                self.lines.append(f"{var} = {alloc} if {o.accumulate} is None else {o.accumulate}")
                args += [var, f"{o.accumulate} is not None"]
                self.accumulated.add(o.node.id)
            else:
                self.lines.append(f"{var} = {alloc}")
                args.append(var)
            ctx.vars[o.node.id] = var
            self.exprs[o.node.id] = Expr(var)
        for t in prog.scatters:
            if t.output is not None:
                continue  # (this kernel's output: passed above)
            base = self.exprs[t.base.id].at(PREC_POSTFIX)
            args.append(f"{base}[{index_text(ctx, t.items)}]" if t.items and not t.whole else base)
        args += [ctx.dim(d) for d in prog.sizes]
        call = f"{kname}({', '.join(args)})"
        if not prog.sinks:
            self.lines.append(call)
            return
        parts = ctx.names.fresh("parts")
        self.lines.append(f"{parts} = {call}")
        for j, s in enumerate(prog.sinks):
            var = ctx.names.fresh(ctx.hint(s.node) or "t")
            reducer = s.node.op.loop.reducer  # (add, maximum, minimum: the ufunc whose reduce combines)
            text = f"{xp}.{reducer}.reduce({parts}[{j}], axis=0)"
            if s.acc_dtype != s.dtype:
                text += f".astype({ctx.dtype(s.dtype)})"
            self.statement(f"{var} = {text}", s.node)
            ctx.vars[s.node.id] = var
            self.exprs[s.node.id] = Expr(var)

    def arg(self, i: Node, user: Node) -> Expr:
        if i.is_literal:
            if not _literal_ok(i, user):
                return self.ctx.literal_expr(i) if i.is_const else self.ctx.dim_expr(i)
            if i.is_dim:
                return _plain_literal(self.ctx, i)
            plain = self.ctx.mod.plain_literals
            e = plain.get(i.id)
            if e is None:
                e = plain[i.id] = _plain_literal(self.ctx, i)
            return e
        return self.exprs[i.id]

    def value(self, o: Node, copy: bool = True) -> Expr:
        """An output: a fresh array that never aliases an argument or is a read-only view.
        Residuals (copy=False) may alias arguments: they are only read, by the matching _bwd."""
        if o.is_const:
            return self.ctx.literal_expr(o)
        if o.is_dim:
            return self.ctx.dim_expr(o)
        e = self.exprs[o.id]
        if copy and (o.is_param or (self.ctx.backend.caps.views and o.op.is_view(o) and o.shape != ()
                                    and not self.relabels_a_temporary(o))):
            return Expr(f"{e.at(PREC_POSTFIX)}.copy()", PREC_POSTFIX)
        return e

    def relabels_a_temporary(self, o: Node) -> bool:
        """o is a reshape or transpose (a chain of them) of an array this function made that
        nothing else reads or returns, such as a conv2d weight gradient (a GEMM's result as
        [O, C, KH, KW]): a fresh, writable array already, no copy needed."""
        while o.op.is_view(o):
            if not o.op.relabels:
                return False
            o = o.inputs[0]
            if o.is_leaf or self.uses.get(o.id, 0) != 1:
                return False
        return True

    def statement(self, text: str, n: Node | None) -> None:
        where = f"  # {place(n)}" if n is not None and n.span else ""
        self.lines.append(text + where)


# ---- whole functions --------------------------------------------------------------------------------------
def _fn_source(mod: ModuleContext, fn: Function) -> str:
    py_name = mod.fn_names[fn.name]
    names = mod.names.child()
    ctx = FnContext(mod, names)
    d = fn.derivative
    bwd = d is not None and d.part is Part.BWD
    n_res = d.n_residuals if bwd else 0
    wrt = list(d.wrt) if d is not None else []
    n_grads = d.n_gradients if d is not None else 0
    has_seed = d is not None and d.has_seed

    # parameters, by what they hold: residuals (bwd) arrive packed; `seed` is keyword-only
    params = list(fn.params)
    slots = [port.slot for port in d.params] if d is not None else [Slot.PRIMAL] * len(params)
    res_params = [p for p, s in zip(params, slots) if s in (Slot.RESIDUAL, Slot.SIZE)]
    seed_param = next((p for p, s in zip(params, slots) if s is Slot.SEED), None)
    res_ids = {p.id for p in res_params}  # (a _bwd of a long chain has thousands: not a list scan each)
    plain = [p for p in params if p is not seed_param and p.id not in res_ids]
    # `out`, `seed` and `residuals` are this function's own keywords: a source
    # parameter with one of those names is renamed in the Python signature
    out_var = "out" if n_grads else None
    res_var = "residuals" if bwd else None  # also when empty: the signature never changes
    for special in ("out", "seed", "residuals"):
        names.taken.add(special)
    labels = []
    for p in params:
        label = p.attr("name")
        own = label in ("out", "seed", "residuals")
        var = "seed" if p is seed_param else names.fresh(label + "_" if own else label)
        ctx.vars[p.id] = var
        labels.append(label)
    sig = [ctx.vars[p.id] for p in plain]
    if res_var:
        sig.insert(0, res_var)
    kw = []
    if seed_param is not None:
        kw.append(f"{ctx.vars[seed_param.id]}=1.0")
    if out_var:
        kw.append(f"{out_var}=None")
    sig_text = ", ".join(sig + (["*"] + kw if kw else []))

    lines: list[str] = [f"def {py_name}({sig_text}):"]
    lines += _indent(_docstring(mod, fn, labels, n_res, has_seed, out_var))
    body: list[str] = []
    fwd_name = mod.fn_names[d.pair[0]] if bwd and d.pair else "the matching _fwd"
    if res_var:
        unpack = ", ".join(ctx.vars[p.id] for p in res_params) + ("," if len(res_params) == 1 else "")
        if mod.options.checks:
            check = f"{ctx.helper('residual_tuple')}({res_var}, {len(res_params)}, {fn.name!r}, {fwd_name!r})"
            body.append(f"{unpack} = {check}" if res_params else check)
        elif res_params:
            body.append(f"{unpack} = {res_var}")
    arrays = [checks.Arg(ctx.vars[p.id], p, lab, residual=p.id in res_ids) for p, lab in zip(params, labels)
              if p.attr("carries") is None]
    ctx.fn_name = fn.name
    ctx.params = {a.node.id: a.shown if a.residual else f"argument `{a.label}`" for a in arrays}
    carriers = {p.attr("carries"): ctx.vars[p.id] for p in params if p.attr("carries") is not None}
    checked = [a for a in arrays if not a.residual]
    if mod.options.checks:  # residuals first: they fix the sizes the cotangents are checked against
        body += checks.residual_lines(ctx, fn.name, fwd_name, [a for a in arrays if a.residual])
        body += checks.convert_lines(ctx, fn.name, checked)
        body += checks.rank_lines(ctx, fn.name, arrays)
    else:
        body += checks.coerce_lines(ctx, checked)
    if mod.options.checks:
        sym_lines, bound = checks.bind_symbols(ctx, arrays, carriers)
        body += sym_lines
        body += checks.shape_lines(ctx, fn.name, arrays, bound)
        body += checks.size_lines(ctx, fn.name, mod.order(fn), bound)
    else:  # only the sizes the code uses are read, each before the body (ctx.dim binds it on first use)
        ctx.unbound = {sym: src for sym, (src, _) in checks.symbol_sources(arrays, carriers).items()}
        bindings_at = len(body)
    b = Body(ctx, fn)
    bufs = [names.fresh(f"out_{w}") for w in wrt] if n_grads else []
    if bufs and mod.options.fuse:
        b.out_bufs = {g.id: buf for g, buf in zip(fn.outputs[len(fn.outputs) - n_grads:], bufs)}
    outs = b.emit()
    early = []
    if b.accumulated:  # a fused loop adds into the caller's buffers: they are unpacked (and checked) first
        early.append(" = ".join(bufs) + " = None")
        early.append(f"if {out_var} is not None:")
        early.append(f"    {_unpack(bufs)} = {_out_source(ctx, fn, out_var, n_grads, wrt, arrays)}")
    returns = _returns(ctx, fn, outs, out_var, n_grads, wrt, bufs, early=bool(early),
                       accumulated=[g.id in b.accumulated for g in fn.outputs[len(fn.outputs) - n_grads:]])
    if not mod.options.checks:
        body[bindings_at:bindings_at] = ctx.binding_lines
    if b.return_span is not None and b.return_span.span is not None:
        n = b.return_span
        returns[-1] += f"  # {place(n)}"
    if any(n.op.quiet for n in mod.order(fn)):
        # never a floating-point warning (as PyTorch): a masked branch may compute inf/nan
        # (sqrt of a negative) that `where` then drops; exp overflows to an exact 0 in sigmoid
        body += early
        body.append(f"with {ctx.helper('quiet')}():")
        body += _indent(b.lines + returns)
    else:
        body += early + b.lines + returns
    lines += _indent(body)
    return "\n".join(lines) + "\n"


def _body_source(mod: ModuleContext, fn: Function, py_name: str, source: str = "") -> str:
    """A loop body as a function: no argument checks (the loop passes what it was given), the
    new carries returned as a tuple, a carry only an update reads written in place."""
    names = mod.names.child()
    ctx = FnContext(mod, names)
    ctx.fn_name = fn.name
    ctx.source_fn = source
    for p in fn.params:
        ctx.vars[p.id] = names.fresh(p.attr("name"))
    arrays = [checks.Arg(ctx.vars[p.id], p, p.attr("name")) for p in fn.params if p.attr("carries") is None]
    carriers = {p.attr("carries"): ctx.vars[p.id] for p in fn.params if p.attr("carries") is not None}
    ctx.unbound = {sym: src for sym, (src, _) in checks.symbol_sources(arrays, carriers).items()}
    b = Body(ctx, fn)
    b.in_place = in_place_updates(fn)
    # no blocked loops: a body's arrays are one step's (an RNN's [64, 128]: one block), and a
    # blocked loop's closure and call cost 1.5-1.8 us twice a step (W10: 1.14x hand without, 1.23x with)
    b.fuse = False
    outs = b.emit()
    seen: set[str] = set()
    texts = []
    for e in outs:  # two carries never share an array: one may be written in place
        texts.append(f"{e.at(PREC_POSTFIX)}.copy()" if e.text in seen else e.text)
        seen.add(e.text)
    lines = [f"def {py_name}({', '.join(ctx.vars[p.id] for p in fn.params)}):",
             f'    """One step of the loop at {place(fn.outputs[0]) if fn.outputs and fn.outputs[0].span else "?"}."""']
    body = ctx.binding_lines + b.lines + [f"return {', '.join(texts)},"]
    if any(n.op.quiet for n in mod.order(fn)):
        body = [f"with {ctx.helper('quiet')}():"] + _indent(body)
    lines += _indent(body)
    return "\n".join(lines) + "\n"


def _out_source(ctx: FnContext, fn: Function, out_var, n_grads: int, wrt, arrays=None) -> str:
    """The out= buffers as a tuple: checked (one per wrt name, dtype, shape, writeable, and none
    overlapping an argument when `arrays` are given: a loop then adds into them while reading those)."""
    if not ctx.mod.options.checks:
        return f"{out_var} if isinstance({out_var}, (tuple, list)) else ({out_var},)"
    grad_nodes = fn.outputs[len(fn.outputs) - n_grads:]
    specs = ", ".join(f"({w!r}, {ctx.dtype_const(g.dtype)}, {ctx.shape(g.shape)})" for w, g in zip(wrt, grad_nodes))
    extra = ""
    if arrays:
        pairs = [f"({a.var}, {a.shown!r})" for a in arrays if a.node.type.rank]
        extra = f", ({', '.join(pairs)}{',' if len(pairs) == 1 else ''})" if pairs else ""
    return f"{ctx.helper('out_buffers')}({out_var}, ({specs},), {fn.name!r}{extra})"


def _unpack(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def _returns(ctx: FnContext, fn: Function, outs: list[Expr], out_var, n_grads: int, wrt, bufs=(),
             early: bool = False, accumulated=()) -> list[str]:
    d = fn.derivative
    if d is not None and d.part is Part.FWD:
        n_out = d.n_primal_outputs
        primal = outs[:n_out]
        res = outs[n_out:]
        primal_text = primal[0].text if n_out == 1 and not d.primal_multi else _tuple(primal)
        return [f"return {primal_text}, {_tuple(res)}"]
    if n_grads:
        head, grads = outs[: len(outs) - n_grads], outs[len(outs) - n_grads:]
        lines = [f"if {out_var} is not None:"]
        if not early:
            lines.append(f"    {_unpack(list(bufs))} = {_out_source(ctx, fn, out_var, n_grads, wrt)}")
        for buf, g, done in zip(bufs, grads, list(accumulated) or [False] * len(bufs)):
            if not done:  # (a fused loop has added the others in, block by block)
                lines.append(f"    {buf} += {g.text}")
        if d.part is Part.BWD:
            lines.append(f"    return {_tuple([Expr(b) for b in bufs])}")
            lines.append(f"return {_tuple(grads)}")
        else:
            lines.append(f"    return {', '.join([h.text for h in head] + list(bufs))}")
            lines.append(f"return {', '.join(e.text for e in head + grads)}")
        return lines
    if len(outs) == 1 and not fn.multi:
        return [f"return {outs[0].text}"]
    return [f"return {', '.join(e.text for e in outs)}" if len(outs) > 1 else f"return {_tuple(outs)}"]


def _tuple(exprs: list[Expr]) -> str:
    if len(exprs) == 1:
        return f"({exprs[0].text},)"
    return "(" + ", ".join(e.text for e in exprs) + ")"


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line if line else "" for line in lines]


def _docstring(mod: ModuleContext, fn: Function, labels: list[str], n_res: int, has_seed: bool, out_var) -> list[str]:
    typ = checks.spec_text  # str(t.strong())

    params = list(zip(labels, fn.params))
    plain = params[n_res: len(params) - (1 if has_seed else 0)]
    sig = [f"{lab}: {typ(p.type)}" for lab, p in plain]
    if n_res:
        sig.insert(0, "residuals")
    if has_seed:
        sig.append(f"*, seed: {typ(fn.params[-1].type)} = 1.0")
    if out_var:
        sig.append(("" if has_seed else "*, ") + "out=None")
    outs = [typ(o.type) for o in fn.outputs]
    d = fn.derivative
    fwd = d is not None and d.part is Part.FWD
    if fwd:
        prim = outs[:d.n_primal_outputs]
        result = f"({prim[0] if len(prim) == 1 and not d.primal_multi else '(' + ', '.join(prim) + ')'}, residuals)"
    else:
        result = outs[0] if len(outs) == 1 and not fn.multi and d is None else "(" + ", ".join(outs) + ")"
    head = f"{fn.name}({', '.join(sig)}) -> {result}"
    text = [f'"""{sanitize_docstring(head)}', ""]
    if d is not None:
        text.append(sanitize_docstring(d.summary))
        text.append("")
    if fwd:
        text.append("Residuals (what the matching _bwd needs; never mutated there):")
        for name, o in zip(d.residual_names, fn.outputs[d.n_primal_outputs:]):
            text.append(f"    {sanitize_docstring(name)}: {typ(o.type)}")
        text.append("")
    if out_var:
        text.append("out=: gradients are added into these arrays in place and the same arrays are returned.")
    if fn.span is not None:
        text.append(f"Source: {sanitize_docstring(fn.span.file)}:{fn.span.line}")
    text.append('"""')
    return text


# ---- modules -------------------------------------------------------------------------------------------------
def generate(module: Module, options: Options, version: str) -> str:
    mod = ModuleContext(module, options, version)
    fn_sources = [_fn_source(mod, f) for f in module.functions]
    backend = mod.backend
    source_name = sanitize_docstring(module.source.path)
    doc = [f'"""Generated by tapeless {version} from {source_name}: do not edit, recompile.', ""]
    doc.append(f"Backend: {backend.name}. Argument checks: {'on' if options.checks else 'off'}.")
    doc.append("Functions:")
    for f in module.functions:
        py = mod.fn_names[f.name]
        note = f" (the source name `{sanitize_docstring(f.name)}`, renamed)" if py != f.name else ""
        doc.append(f"    {py}{note}")
    doc.append('"""')
    out = doc + [""]
    stdlib = set()
    if "quiet" in _closure(mod):
        stdlib |= set(backend.imports)
    table = helpers()
    for h in _closure(mod):
        if h != "checks":
            stdlib |= set(table[h].imports)
    out += sorted(stdlib) + ([""] if stdlib else [])
    out += [f"import {backend.module} as {backend.alias}"] if backend.module != backend.alias else [
        f"import {backend.module}"]
    out += [f"import {m}" for m in sorted(set(backend.modules) | mod.kernel_modules)]
    out.append("")
    if backend.preamble:
        out += [backend.preamble.rstrip("\n"), ""]
    for dt in sorted(mod.dtype_consts, key=lambda d: d.short):
        out.append(f"_{dt.short.upper()} = {backend.alias}.dtype({backend.alias}.{dt.numpy_name})")
    for dt in sorted(mod.scalar_types, key=lambda d: d.short):
        out.append(f"_{dt.numpy_name} = {backend.alias}.{dt.numpy_name}")
    if mod.dtype_consts or mod.scalar_types:
        out.append("")
    for name in _closure(mod):
        # (a whole-word `xp.` only: `logaddexp.accumulate` is not `logaddenp.`)
        src = re.sub(r"\bxp\.", f"{backend.alias}.", checks.CHECK_HELPERS) if name == "checks" else \
            backend.helper_source(table[name])
        out += ["", src.rstrip("\n"), ""]
    if mod.forms:
        out += ["", _numba().form_sources(mod.forms).rstrip("\n"), ""]
    for src in fn_sources + mod.body_sources + mod.kernel_sources:
        out += ["", src.rstrip("\n"), ""]
    if mod.cupy_kernel_sources:
        out += ["", "# The fused chains' CUDA kernels (compiled by CuPy on first use, cached on disk)."]
        for src in mod.cupy_kernel_sources:
            out += [src.rstrip("\n"), ""]
    out += ["", "# What each function is, for tapeless.runtime.gradcheck and other tools.", "__tapeless__ = {"]
    for f in module.functions:
        out.append(f"    {mod.fn_names[f.name]!r}: {_table_entry(mod, f)!r},")
    out.append("}")
    # the source this module was made from (a repr: never code), for gradcheck's f64 rebuild
    out.append(f"__tapeless_source__ = {module.source.text!r}")
    return "\n".join(out).rstrip("\n") + "\n"


def _table_entry(mod: ModuleContext, f: Function) -> dict:
    """What `__tapeless__` says of a function: its kind, parameters and output count, and for a
    derivative its typed record (core/derivative.py) as plain data, names as in this module."""
    info = {"kind": f.kind, "params": tuple(f.param_names), "n_outputs": len(f.outputs),
            "in_types": tuple(type_data(p.type) for p in f.params),
            "out_types": tuple(type_data(o.type) for o in f.outputs)}
    d = f.derivative
    if d is not None:
        info["of"] = mod.fn_names.get(d.of, d.of)
        info["wrt"] = d.wrt
        if d.part is Part.BWD:
            info["n_residuals"] = d.n_residuals
        if d.part is Part.FWD:
            info["n_outputs"] = d.n_primal_outputs
    nodes = mod.order(f)
    if any(n.op.detaches for n in nodes):
        info["uses_stop_gradient"] = True
    # the lowest floating precision on the way from the arguments to the results: gradcheck's
    # tolerance (an f64 gradient of f32 values is only as exact as f32)
    floats = [n.dtype for n in (*f.params, *nodes) if n.dtype.is_float]
    if floats:
        info["lowest_float"] = min(floats, key=lambda dt: dt.itemsize).short
    if f.name in mod.module.batch:  # a sum or a mean over a symbol's axis? (autodiff/batch.py)
        info["batch"] = dict(mod.module.batch[f.name])
    if d is not None:
        record = d.table()
        del record["of"], record["wrt"]
        if d.pair is not None:
            record["pair"] = tuple(mod.fn_names[name] for name in d.pair)
        info.update(record)
    return info


def type_data(t) -> tuple:
    """A type as plain data for `__tapeless__`: (dtype, shape), a dimension being an int, a size
    symbol's name, or a polynomial as ((symbols, coefficient), ...) (tapeless.runtime.signature
    evaluates them), so tools (jax_function's declared result shapes, torch_function's dtype
    check, dask_grad's batch axis) know every argument's and result's type without running it."""
    def dim(d):
        if isinstance(d, int):
            return d
        return d.symbol_name or tuple((tuple(m), c) for m, c in d.terms)

    return (t.dtype.short, tuple(dim(d) for d in t.shape))


def _closure(mod: ModuleContext) -> list[str]:
    names = helper_closure(n for n in mod.helpers_used if n != "checks")
    return (["checks"] if "checks" in mod.helpers_used else []) + names


def _numba():
    from .kernels import numba_writer  # (imports nothing of numba: the generated module does)

    return numba_writer


def unread_inits(items: list, uses: dict[int, int]) -> set[int]:
    """Ids of constant arrays (`full`) made only to be a loop's carry whose every row the loop sets
    before reading it (loops.overwritten_carries): a dead array may be taken as it is, unfilled."""
    out: set[int] = set()
    seen: set[tuple] = set()
    for item in items:
        if isinstance(item, Node) and item.op is ops.for_loop and group_key(item) not in seen:
            seen.add(group_key(item))
            members = sum(1 for m in items if isinstance(m, Node) and m.op is ops.for_loop
                          and group_key(m) == group_key(item))
            inits = parts(item)[1]
            for j in overwritten_carries(item):
                i = inits[j]
                if (not i.inputs and i.op.writes_into(i) and uses.get(i.id, 0) == members
                        and sum(x is i for x in inits) == 1):
                    out.add(i.id)
    return out


def taken_later(items: list, at: int, into: dict) -> set[int]:
    """Ids of dead arrays (`into`) of the type of a constant array made after position `at`, which
    dead_array will write it into: the first such array for each."""
    out: set[int] = set()
    for item in items[at + 1:]:
        if isinstance(item, Node) and not item.inputs and item.op.writes_into(item):
            for x in into.get((item.dtype, item.shape), ()):
                if x.id not in out:
                    out.add(x.id)
                    break
    return out


def _temporary(user: Node, at: int, last_read: dict[int, int], viewed: set[int], out_ids: set[int]) -> bool:
    """user's first input is a fresh array of the function's own that nothing reads after user
    (at: user's position), nor through a view, nor user twice: user may write over it."""
    n = user.inputs[0]
    return (fresh_array(n) and n.id not in out_ids and last_read.get(n.id) == at
            and n.id not in viewed and sum(i is n for i in user.inputs) == 1)
