"""A function's AST -> typed IR.

Lowering and type checking are one walk: every node is built by its primitive's type rule
as it is lowered (nodes.apply), so the IR that comes out is typed, and a rule's complaint is
reported at the construct it came from.

* Names are SSA: rebinding `x = x + 1` just makes `x` point at a new node (and hints the
  node's name, ir.hint).
* Calls between functions are inlined: the callee's IR is re-applied with the arguments in
  place of its parameters and its size symbols bound to the caller's dimensions. The callee
  comes from the driver (driver.Program.resolve), which lowers or derives it on demand and
  reports recursion; lowering knows nothing of derivatives.
* The language's operators and built-in functions map to primitives in
  primitives/builtin_functions.py.
* An expression that failed yields None ("poison"); anything built on poison is silently
  poison too, so one mistake gives one diagnostic, and independent mistakes each give their
  own.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Protocol

from tapeless.grammar import KEYWORDS

from ..core.diagnostics import Sink, UserError
from ..core.ir import Function, Node, hint, reset_span, set_span, span_scope, topo_order
from ..core.source import SourceFile, Span
from ..core.substitute import inline
from ..core.types import Dim, DimLike, DType, TensorType, dim_text, parse_dtype
from ..primitives import algebra as B
from ..primitives.call import call, keeps_call
from ..primitives.builtin_functions import (
    AXES,
    AXIS,
    BOOL,
    BUILTINS,
    DIM,
    DTYPE,
    INDEX,
    INT,
    LIST,
    NAMED_CONSTANTS,
    NEGATE,
    OPERATORS,
    REQUIRED,
    REST,
    SHAPE,
    SPEC,
    NESTED,
    ORD,
    TENSOR,
    Builtin,
    static_dim,
    transpose_all,
)
from . import lower_loops as L
from . import syntax as ast


class Poison(Exception):
    """An error already reported: unwind to the statement."""


# Lowering recurses once per level of nesting; an expression nested deeper than this is lowered
# bottom-up in slices of this many levels (Lowerer.lower_deep_first), so recursion stays bounded.
_STAGE = 200


@dataclass
class Scope:
    fn: str
    env: dict[str, Node] = field(default_factory=dict)
    symbols: dict[str, Dim] = field(default_factory=dict)
    loop: L.Loop | None = None  # the innermost loop around the statements lowered in this scope
    loop_vars: dict[str, int] = field(default_factory=dict)  # name -> line of its `for`
    # names local to a loop's iteration (name -> (line of the loop, is its variable)): for the
    # message when one is used after the loop; one dict shared by a function's scopes
    loop_locals: dict[str, tuple[int, bool]] = field(default_factory=dict)
    assigned_at: dict[str, Span] = field(default_factory=dict)  # name -> its last assignment
    carry_vars: dict[int, str] = field(default_factory=dict)  # node id -> name, of the enclosing loops' carries

    def child(self, loop: L.Loop) -> Scope:
        """The scope of a loop body: outer names as they are, the loop's variable added."""
        return Scope(self.fn, dict(self.env), self.symbols, loop, {**self.loop_vars, loop.var: loop.line},
                     self.loop_locals, carry_vars=dict(self.carry_vars))


class Items(Protocol):
    """What lowering asks of the file around a function (driver.Program answers)."""

    def defines(self, name: str) -> bool: ...
    def resolve(self, name: str, span: Span) -> Function: ...
    def unknown_function(self, ident: ast.Ident, exclude=()) -> None: ...


class Lowering:
    Poison = Poison  # (for lower_loops.py)

    def __init__(self, source: SourceFile, sink: Sink, items: Items, float64: bool = False):
        self.float64 = float64
        self.source = source
        self.sink = sink
        self.items = items
        # parameters of every function whose signature is sound, even if its body is not, so
        # directives and calls can still be checked against it
        self.signatures: dict[str, list[Node]] = {}
        self.sizes: dict[Function, int] = {}  # operations per called fn (primitives/call.py)
        self.lowered: dict[int, Node | None] = {}  # id(expr) -> node (None: failed), see lower_deep_first
        self.inferring = False  # lowering a loop body only for its types (lower_loops._weak_dtypes)

    # ---- functions --------------------------------------------------------------------------------------
    def lower_fn(self, fd: ast.FnDef) -> Function | None:
        scope = Scope(fd.name.name)
        params: list[Node] = []
        ok = True
        for i, p in enumerate(fd.params):
            try:
                t = self.param_type(p.type, scope)
            except Poison:
                ok = False
                scope.env.setdefault(p.name.name, None)  # its uses stay quiet: one error, not two
                continue
            name = p.name.name
            if name in scope.env:
                self.sink.error(p.name.span, f"duplicate parameter `{name}` in `{fd.name.name}`")
                ok = False
                continue
            node = B.param(name, t, i, p.span)
            params.append(node)
            scope.env[name] = node
        for name, node in scope.env.items():
            if node is not None and name in scope.symbols:
                self.sink.error(node.span, f"`{name}` is both a parameter and a size symbol of `{fd.name.name}`")
                ok = False
        if ok:
            self.signatures[fd.name.name] = params
        declared = None
        if fd.result is not None:
            try:
                declared = [self.param_type(t, scope, result=True) for t in fd.result]
            except Poison:
                ok = False
        outputs = self.lower_body(fd, scope)
        if outputs is None or not ok:
            return None
        outputs = self.check_result(fd, outputs, declared)
        if outputs is None:
            return None
        multi = len(outputs) > 1 or fd.result_is_tuple
        return Function(fd.name.name, tuple(params), tuple(outputs), fd.span, multi=multi)

    def dtype(self, d: DType) -> DType:
        return DType.F64 if self.float64 and d.is_float else d

    def param_type(self, te: ast.TypeExpr, scope: Scope, result: bool = False) -> TensorType:
        try:
            dtype = self.dtype(parse_dtype(te.dtype.name))
        except UserError as e:
            self.sink.error(te.dtype.span, e.message)
            raise Poison from None
        dims: list[DimLike] = []
        for d in te.dims or ():
            if isinstance(d.value, int):
                dims.append(d.value)
                continue
            if d.value in KEYWORDS:
                self.sink.error(d.span, f"`{d.value}` is a keyword and cannot be a size symbol")
                raise Poison
            if result and d.value not in scope.symbols:
                self.sink.error(d.span, f"size symbol `{d.value}` in the result type is not bound by a parameter")
                raise Poison
            dims.append(scope.symbols.setdefault(d.value, Dim.symbol(d.value)))
        return TensorType(dtype, tuple(dims))

    def lower_body(self, fd: ast.FnDef, scope: Scope) -> list[Node] | None:
        outputs = None
        failed = False
        for k, stmt in enumerate(fd.body):
            if outputs is not None:
                self.sink.error(stmt.span, "unreachable statement after `return`")
                failed = True
                break
            if not isinstance(stmt, ast.Return):
                failed = not self.statement(stmt, scope) or failed
                continue
            try:
                for value in stmt.values:
                    self.lower_deep_first(value, scope)
                outputs = self.ret(stmt, scope)
            except Poison:
                failed = True
                outputs = []
            finally:
                self.lowered.clear()
        if outputs is None and not failed:
            self.sink.error(fd.name.span, f"function `{fd.name.name}` has no `return`")
        if failed or not outputs:
            return None
        return outputs

    def statement(self, stmt: ast.Stmt, scope: Scope) -> bool:
        """Lower an assignment or a loop into scope; False if it failed (reported). The names
        a failed statement binds become None, so their later uses stay quiet."""
        if isinstance(stmt, ast.For):
            return L.lower_for(self, stmt, scope)
        if isinstance(stmt, ast.Return):  # (in a loop body: a function's own are lower_body's)
            line, col = stmt.span.line, stmt.span.col
            self.sink.error(Span(stmt.span.file, line, col, line, col + len("return")),
                            f"`return` inside a loop is not supported: assign to a name bound before "
                            f"the loop and return it after the loop")
            return False
        try:
            self.lower_deep_first(stmt.value, scope)
            if isinstance(stmt, ast.Assign):
                self.assign(stmt, scope)
            else:
                L.index_assign(self, stmt, scope)
            return True
        except Poison:
            for t in stmt.targets if isinstance(stmt, ast.Assign) else (stmt.target,):
                scope.env[t.name] = None  # type: ignore[assignment]
            return False
        finally:
            self.lowered.clear()

    def check_target(self, t: ast.Ident, scope: Scope) -> None:
        if t.name in scope.symbols:
            self.fail(t.span, f"cannot assign to `{t.name}`: it is a size symbol of `{scope.fn}`")
        if t.name in scope.loop_vars:
            self.fail(t.span, f"cannot assign to `{t.name}`: it is the variable of the `for` loop at line "
                              f"{scope.loop_vars[t.name]}")

    def assign(self, stmt: ast.Assign, scope: Scope) -> None:
        for t in stmt.targets:
            self.check_target(t, scope)
        if len(stmt.targets) == 1:
            values = [self.expr(stmt.value, scope)]
        else:
            values = self.multi(stmt.value, scope)
            if len(values) != len(stmt.targets):
                self.sink.error(stmt.value.span, f"{len(stmt.targets)} names on the left but the right side "
                                                 f"gives {len(values)} value(s)")
                raise Poison
        for t, v in zip(stmt.targets, values):
            hint(v, t.name)
            scope.env[t.name] = v
            scope.assigned_at[t.name] = t.span

    def ret(self, stmt: ast.Return, scope: Scope) -> list[Node]:
        if len(stmt.values) == 1:
            return self.multi(stmt.values[0], scope)
        out = []
        failed = False
        for v in stmt.values:
            try:
                out.append(self.expr(v, scope))
            except Poison:
                failed = True
        if failed:
            raise Poison
        return out

    def check_result(self, fd: ast.FnDef, outputs: list[Node], declared) -> list[Node] | None:
        ret = next(s for s in fd.body if isinstance(s, ast.Return))
        spans = list(ret.values) if len(ret.values) == len(outputs) else [ret.values[0]] * len(outputs)
        if declared is not None and len(declared) != len(outputs):
            self.sink.error(ret.values[0].span.to(ret.values[-1].span),
                            f"`{fd.name.name}` returns {len(outputs)} value(s) but its declared "
                            f"result has {len(declared)}")
            return None
        final = []
        for i, out in enumerate(outputs):
            if declared is not None:
                want = declared[i]
                got = out
                # a weak value takes the declared dtype, unless that would lose its kind (2.5 -> i32)
                if out.type.weak and "bif".index(out.dtype.kind) <= "bif".index(want.dtype.kind):
                    try:
                        got = B.retype(out, want.dtype)
                    except UserError as err:  # a literal too large for the declared type
                        self.sink.error(spans[i].span, err.message)
                        return None
                if got.dtype != want.dtype or got.shape != want.shape:
                    self.sink.error(spans[i].span, f"`{fd.name.name}` returns {out.type.strong()} but its "
                                                   f"declared result is {want}")
                    return None
                out = got
            if out.type.weak:
                out = B.retype(out, out.dtype, weak=False)
            final.append(out)
        return final

    # ---- expressions ---------------------------------------------------------------------------------------
    def fail(self, span: Span, message: str, *notes: str):
        self.sink.error(span, message, *notes)
        raise Poison

    def expr(self, e: ast.Expr, scope: Scope) -> Node:
        if type(e) is ast.Name and e.id in scope.env:  # a variable (most operands): what `name` gives
            if (node := scope.env[e.id]) is None:
                raise Poison
            return node
        if id(e) in self.lowered:  # lowered ahead, as a slice of a deep expression
            if (node := self.lowered[id(e)]) is None:
                raise Poison
            return node
        out = self.multi(e, scope) if isinstance(e, ast.Call) else [self._expr(e, scope)]
        if len(out) != 1:
            self.fail(e.span, f"`{e.func.name}` returns {len(out)} values; unpack them with "
                              f"`{', '.join('v%d' % i for i in range(len(out)))} = {e.func.name}(...)`")
        return out[0]

    def multi(self, e: ast.Expr, scope: Scope) -> list[Node]:
        """An expression that may stand for several values (a call of a multi-output function)."""
        if isinstance(e, ast.Call) and self.items.defines(e.func.name) and e.func.name not in scope.env:
            return self.user_call(e, scope)
        out = self._expr(e, scope)
        return list(out) if isinstance(out, tuple) else [out]  # a built-in's several results: topk

    def lower_deep_first(self, e: ast.Expr, scope: Scope) -> None:
        """Lower the operands every _STAGE levels down a deeply nested expression, deepest first,
        so the recursive lowering that follows meets a lowered operand within _STAGE levels:
        3,000 nested calls lower in linear time without deep recursion. Shallow expressions
        (nearly all) have nothing to lower ahead."""
        span = e.span
        if span.line == span.end_line and span.end_col - span.col < _STAGE:
            return  # each level down is at least one character shorter: fewer than _STAGE levels
        ahead, todo = [], [(e, 0)]
        while todo:
            x, depth = todo.pop()
            if depth and depth % _STAGE == 0:
                ahead.append(x)
            todo.extend((c, depth + 1) for c in self.value_operands(x, scope))
        for x in reversed(ahead):  # every operand is found after the expressions that contain it
            try:
                self.lowered[id(x)] = self.expr(x, scope)
            except Poison:
                self.lowered[id(x)] = None

    def value_operands(self, e: ast.Expr, scope: Scope) -> list[ast.Expr]:
        """The operands of e that lowering passes to `expr` (all but a dtype name or an einsum
        string, and the list that holds axes, a shape or concat's operands)."""
        if isinstance(e, (ast.BinOp, ast.Compare)):
            return [e.left, e.right]
        if isinstance(e, ast.UnOp):
            return [e.operand]
        if isinstance(e, ast.Attr):
            return [e.base]
        if isinstance(e, ast.Index):
            items = [x for i in e.items for x in ((i.start, i.stop, i.step) if isinstance(i, ast.Slice) else (i,))]
            return [e.base] + [i for i in items if i is not None and not isinstance(i, ast.EllipsisItem | ast.NoneLit)]
        if not isinstance(e, ast.Call) or e.func.name in scope.env:
            return []
        if self.items.defines(e.func.name):
            return list(e.args) + [k.value for k in e.kwargs]
        spec = BUILTINS.get("f64" if self.float64 and e.func.name in ("f16", "f32") else e.func.name)
        if spec is None:
            return []
        positional = [p.kind for p in spec.params if p.kind != REST]
        kinds = {p.name: p.kind for p in spec.params}
        given = [(positional[i] if i < len(positional) else REST, a) for i, a in enumerate(e.args)]
        given += [(kinds.get(k.name.name), k.value) for k in e.kwargs]
        out = []
        for kind, a in given:
            if kind in (LIST, AXES, SHAPE) and isinstance(a, ast.ListExpr):
                out.extend(a.items)
            elif kind in (TENSOR, REST, BOOL, AXIS, INT, DIM, AXES, SHAPE):
                out.append(a)
        return out

    def _expr(self, e: ast.Expr, scope: Scope) -> Node:
        token = set_span(e.span)  # (span_scope without its object: one per expression)
        try:
            return self._expr_inner(e, scope)
        finally:
            reset_span(token)

    def _expr_inner(self, e: ast.Expr, scope: Scope) -> Node:
        if isinstance(e, ast.Name):
            return self.name(e, scope)
        if isinstance(e, ast.Num):
            if isinstance(e.value, int) and not -2 ** 63 <= e.value < 2 ** 63:
                self.fail(e.span, f"the integer literal {e.text} does not fit in 64 bits")
            return B.literal(e.value)
        if isinstance(e, ast.Bool):
            return B.literal(e.value)
        if isinstance(e, ast.NamedConst):
            return B.literal(NAMED_CONSTANTS[e.id])
        if isinstance(e, ast.NoneLit):
            self.fail(e.span, "`None` is only allowed inside an index, as in `x[..., None]`")
        if isinstance(e, ast.Str):
            self.fail(e.span, "a string is only allowed as the first argument of `einsum`")
        if isinstance(e, ast.ListExpr):
            self.fail(e.span, "a list `[...]` is only allowed as a shape, an axis list or the first "
                              "argument of `concat`/`stack`")
        if isinstance(e, ast.BinOp):
            return self.binop_chain(e, scope)
        if isinstance(e, ast.UnOp):
            x = self.expr(e.operand, scope)
            if e.op == "-":
                return self.apply(e, NEGATE, x)
            if x.dtype == DType.BOOL:
                self.fail(e.span, "unary `+` is not defined on bool values")
            return x
        if isinstance(e, ast.Compare):
            a, b = self.operands(scope, e.left, e.right)
            return self.apply(e, OPERATORS[e.op], a, b)
        if isinstance(e, ast.Call):
            return self.builtin_call(e, scope)  # (a tuple for several results: expr() and multi() see to it)
        if isinstance(e, ast.Index):
            return self.index(e, scope)
        if isinstance(e, ast.Attr):
            x = self.expr(e.base, scope)
            if e.attr.name != "T":
                self.fail(e.attr.span, f"unknown attribute `.{e.attr.name}`; the only attribute is `.T` "
                                       "(transpose)")
            return transpose_all(x)
        if isinstance(e, (ast.Slice, ast.EllipsisItem)):
            self.fail(e.span, "slices and `...` are only allowed inside an index")
        raise AssertionError(f"unhandled expression {e!r}")  # pragma: no cover

    def binop_chain(self, e: ast.BinOp, scope: Scope) -> Node:
        """a + b - c + ... lowered in one loop down its left spine, not one nested call per term
        (a flat sum of 10,000 terms is a tree 10,000 deep). As for any operator, every operand
        is lowered even when one fails, so independent errors all show."""
        spine = []
        # down to an operand lowered ahead (lower_deep_first): not the whole spine again from
        # each of its slices, which made a flat 10,000-term sum quadratic
        while isinstance(e, ast.BinOp) and not (spine and id(e) in self.lowered):
            spine.append(e)
            e = e.left
        failed = False
        try:
            acc = self.expr(e, scope)
        except Poison:
            failed = True
        for b in reversed(spine):
            with span_scope(b.span):
                try:
                    right = self.expr(b.right, scope)
                    if not failed:
                        acc = self.apply(b, OPERATORS[b.op], acc, right)
                except Poison:
                    failed = True
        if failed:
            raise Poison
        return acc

    def operands(self, scope: Scope, *exprs: ast.Expr) -> list[Node]:
        """Each operand lowered, all of them even when one fails: independent errors all show."""
        out, failed = [], False
        for x in exprs:
            try:
                out.append(self.expr(x, scope))
            except Poison:
                failed = True
        if failed:
            raise Poison
        return out

    def apply(self, e: ast.Expr, op: str, *args: Node, **attrs) -> Node:
        """The primitive `op` (a name from builtin_functions' tables) applied; a rule's complaint
        is reported at the operand it names, or at the expression."""
        try:
            return B.apply(op, *args, **attrs)
        except UserError as err:
            span = e.span
            if isinstance(err.arg, int) and isinstance(e, ast.BinOp):
                span = (e.left, e.right)[err.arg].span if err.arg < 2 else span
            self.fail(err.span or span, err.message)

    def name(self, e: ast.Name, scope: Scope) -> Node:
        if e.id in scope.env:
            node = scope.env[e.id]
            if node is None:
                raise Poison
            return node
        if e.id in scope.symbols:
            return B.dim_value(scope.symbols[e.id])
        if self.items.defines(e.id) or e.id in BUILTINS:
            self.fail(e.span, f"`{e.id}` is a function; call it with arguments, as in `{e.id}(...)`")
        if e.id in scope.loop_locals:
            line, is_var = scope.loop_locals[e.id]
            note = (f"`{e.id}` is the variable of the `for` loop at line {line}: it exists only inside the loop"
                    if is_var else
                    f"`{e.id}` is first bound inside the `for` loop at line {line}, so it is local to one "
                    f"iteration; to keep its value after the loop, bind it before the loop")
            self.fail(e.span, f"unknown name `{e.id}`", note)
        candidates = list(scope.env) + list(scope.symbols)
        close = difflib.get_close_matches(e.id, candidates, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        self.fail(e.span, f"unknown name `{e.id}`{hint}")

    # ---- calls --------------------------------------------------------------------------------------------
    def builtin_call(self, e: ast.Call, scope: Scope) -> Node:
        name = e.func.name
        if name in scope.env:
            self.fail(e.func.span, f"`{name}` is a value, not a function")
        if self.float64 and name in ("f16", "f32"):
            name = "f64"
        spec = BUILTINS.get(name)
        if spec is None:
            self.items.unknown_function(e.func)
            raise Poison
        args, kwargs, spans = self.bind_args(e, spec, scope)
        try:
            with span_scope(e.span):
                return spec.lower(*args, **kwargs)
        except UserError as err:
            self.fail(err.span or self.arg_span(e, spec, err.arg, spans), err.message)

    def arg_span(self, e: ast.Call, spec: Builtin, arg, spans: dict[str, Span]) -> Span:
        if isinstance(arg, int) and spec.params and spec.params[0].kind == LIST:
            # the primitive counts its operands: the items of the list argument
            lst = e.args[0] if e.args else next((k.value for k in e.kwargs if k.name.name == spec.params[0].name), None)
            if isinstance(lst, ast.ListExpr) and arg < len(lst.items):
                return lst.items[arg].span
            return lst.span if lst is not None else e.span
        if isinstance(arg, int):
            if arg < len(e.args):
                return e.args[arg].span
            if arg < len(spec.params):
                arg = spec.params[arg].name
        if isinstance(arg, str) and arg in spans:
            return spans[arg]
        return e.span

    def bind_args(self, e: ast.Call, spec: Builtin, scope: Scope):
        """-> (argument values in parameter order, {}, argument spans by parameter name)."""
        given: dict[str, ast.Expr] = {}
        rest: list[ast.Expr] = []
        params = list(spec.params)
        positional = [p for p in params if p.kind != REST]
        has_rest = any(p.kind == REST for p in params)
        for i, a in enumerate(e.args):
            if i < len(positional):
                given[positional[i].name] = a
            elif has_rest:
                rest.append(a)
            else:
                self.fail(a.span, f"`{spec.name}` takes at most {len(positional)} argument(s), got {len(e.args)}")
        names = {p.name for p in params}
        for kw in e.kwargs:
            if kw.name.name not in names or any(p.kind == REST and p.name == kw.name.name for p in params):
                valid = ", ".join(p.name for p in params if p.kind != REST)
                self.fail(kw.name.span, f"`{spec.name}` has no argument `{kw.name.name}` (its arguments: {valid})")
            if kw.name.name in given:
                self.fail(kw.name.span, f"argument `{kw.name.name}` of `{spec.name}` is given twice")
            given[kw.name.name] = kw.value
        bound: dict[str, object] = {}
        spans = {k: v.span for k, v in given.items()}
        errors = False
        for p in params:
            if p.kind == REST:
                continue
            if p.name not in given:
                if p.default is REQUIRED:
                    self.fail(e.span, f"`{spec.name}` is missing its argument `{p.name}`")
                continue
            try:
                bound[p.name] = self.static_or_tensor(given[p.name], p.kind, spec.name, p.name, scope)
            except Poison:
                errors = True
        values = []
        for a in rest:
            try:
                values.append(self.expr(a, scope))
            except Poison:
                errors = True
        if errors:
            raise Poison
        # positional, in parameter order, defaults filled in: the lowering functions take them so
        ordered = [bound.get(p.name, p.default) for p in params if p.kind != REST]
        if has_rest:
            if not values:
                self.fail(e.span, f"`{spec.name}` needs at least one operand")
            ordered += values
        return ordered, {}, spans

    def static_or_tensor(self, a: ast.Expr, kind: str, fname: str, pname: str, scope: Scope):
        if kind == TENSOR:
            return self.expr(a, scope)
        if kind == SPEC:
            if not isinstance(a, ast.Str):
                self.fail(a.span, f"the first argument of `{fname}` must be a string such as \"ij,jk->ik\"")
            return a.value
        if kind == DTYPE:
            if isinstance(a, ast.Name) and DType.from_name(a.id):
                return self.dtype(DType.from_name(a.id))
            self.fail(a.span, f"`{pname}=` takes a dtype name: f16, f32, f64, i32, i64 or bool")
        if kind == LIST:
            if not isinstance(a, ast.ListExpr):
                self.fail(a.span, f"`{fname}` takes a list of values, as in `{fname}([a, b], axis=0)`")
            values, failed = [], False
            for item in a.items:
                try:
                    values.append(self.expr(item, scope))
                except Poison:
                    failed = True
            if failed:
                raise Poison
            return values
        if kind == BOOL:
            node = self.expr(a, scope)
            if node.is_const and node.dtype == DType.BOOL:
                return bool(node.attr("value"))
            self.fail(a.span, f"`{pname}=` takes `true` or `false`")
        if kind == AXES:
            if isinstance(a, ast.ListExpr):
                return tuple(self.static_int(i, pname, scope) for i in a.items)
            return self.static_int(a, pname, scope)
        if kind in (AXIS, INT):
            return self.static_int(a, pname, scope)
        if kind == DIM:
            return self.static_dim(a, pname, scope)
        if kind == ORD:
            if isinstance(a, ast.Str):
                return a.value
            node = self.expr(a, scope)
            if node.is_const and node.dtype.kind in "if":
                return float(node.attr("value"))
            self.fail(a.span, f"`{pname}=` takes a number, inf, -inf or a string such as \"fro\"")
        if kind == NESTED:
            if isinstance(a, ast.ListExpr):
                return tuple(tuple(self.static_int(j, pname, scope) for j in i.items) if isinstance(i, ast.ListExpr)
                             else self.static_int(i, pname, scope) for i in a.items)
            return self.static_int(a, pname, scope)
        if kind == SHAPE:
            if isinstance(a, ast.ListExpr):
                return tuple(self.static_dim(i, pname, scope, allow_hole=True) for i in a.items)
            return (self.static_dim(a, pname, scope),)
        raise AssertionError(kind)  # pragma: no cover

    def static_int(self, a: ast.Expr, pname: str, scope: Scope) -> int:
        node = self.expr(a, scope)
        if node.is_const and node.dtype.kind == "i":
            return int(node.attr("value"))
        self.fail(a.span, f"`{pname}` must be an integer known at compile time, got {node.type}")

    def static_dim(self, a: ast.Expr, pname: str, scope: Scope, allow_hole: bool = False) -> DimLike:
        node = self.expr(a, scope)
        d = static_dim(node)
        if d is None:
            self.fail(a.span, f"`{pname}` sizes must be integers or size symbols known at compile time, "
                              f"got {node.type}")
        if isinstance(d, int) and d < 0 and not (allow_hole and d == -1):
            self.fail(a.span, f"a size must not be negative, got {d}")
        return d

    def user_call(self, e: ast.Call, scope: Scope) -> list[Node]:
        fn = self.items.resolve(e.func.name, e.func.span)
        names = fn.param_names
        given: dict[int, ast.Expr] = {}
        if len(e.args) > len(names):
            self.fail(e.args[len(names)].span, f"`{fn.name}` takes {len(names)} argument(s), got {len(e.args)}")
        for i, a in enumerate(e.args):
            given[i] = a
        for kw in e.kwargs:
            if kw.name.name not in names:
                self.fail(kw.name.span, f"`{fn.name}` has no parameter `{kw.name.name}` "
                                        f"(its parameters: {', '.join(names)})")
            i = names.index(kw.name.name)
            if i in given:
                self.fail(kw.name.span, f"argument `{kw.name.name}` of `{fn.name}` is given twice")
            given[i] = kw.value
        missing = [names[i] for i in range(len(names)) if i not in given]
        if missing:
            self.fail(e.span, f"`{fn.name}` is missing argument(s): {', '.join(missing)}")
        args, failed = [], False
        for i in range(len(names)):
            try:
                args.append(self.expr(given[i], scope))
            except Poison:
                failed = True
        if failed:
            raise Poison
        env: dict[str, DimLike] = {}
        coerced = []
        for i, (p, a) in enumerate(zip(fn.params, args)):
            coerced.append(self.unify(fn, p, a, env, given[i].span))
        try:
            with span_scope(e.span):
                if keeps_call(fn, self._size(fn)):  # a large fn: called, not inlined (primitives/call.py)
                    return [call(fn, coerced, env)]
                return inline(fn, coerced, env)
        except UserError as err:
            self.fail(e.span, f"in the call of `{fn.name}`: {err.message}")

    def _size(self, fn: Function) -> int:
        """How many operations fn has (a call kept as a call counts one)."""
        if fn not in self.sizes:
            self.sizes[fn] = sum(1 for n in topo_order(fn.outputs) if not n.is_leaf)
        return self.sizes[fn]

    def unify(self, fn: Function, p: Node, a: Node, env: dict[str, DimLike], span: Span) -> Node:
        want = p.type
        pname = p.attr("name")
        # a weak value takes the parameter's dtype, unless that would lose its kind (2.5 -> i32)
        if a.type.weak and a.dtype != want.dtype and "bif".index(a.dtype.kind) <= "bif".index(want.dtype.kind):
            try:
                a = B.retype(a, want.dtype)
            except UserError as err:  # a literal too large for the parameter's type
                self.fail(span, err.message)
        if a.dtype != want.dtype:
            self.fail(span, f"argument `{pname}` of `{fn.name}` must be {want.dtype}, got {a.type}; "
                            f"convert it, e.g. `{want.dtype}(...)`")
        ok = a.type.rank == want.rank
        if ok:
            for pd, ad in zip(want.shape, a.shape):
                if isinstance(pd, int):
                    ok = ok and pd == ad
                else:
                    s = pd.symbol_name
                    if s in env:
                        ok = ok and env[s] == ad
                    else:
                        env[s] = ad
        if not ok:
            bound = ", ".join(f"{k} = {dim_text(v)}" for k, v in env.items())
            self.fail(span, f"argument `{pname}` of `{fn.name}` must have shape {want}, got {a.type}"
                            + (f" (with {bound})" if bound else ""))
        return a

    # ---- indexing ----------------------------------------------------------------------------------------
    def index(self, e: ast.Index, scope: Scope) -> Node:
        x = self.expr(e.base, scope)
        items = list(e.items)
        ells = [i for i in items if isinstance(i, ast.EllipsisItem)]
        if len(ells) > 1:
            self.fail(ells[1].span, "an index may contain only one `...`")
        used = sum(1 for i in items if not isinstance(i, (ast.EllipsisItem, ast.NoneLit)))
        if used > x.type.rank:
            self.fail(e.span, f"too many indices for {x.type}: {used} given for {x.type.rank} axes")
        out: list[tuple] = []
        dyns: list[tuple[int, Node, ast.Expr]] = []  # dynamic items: (position in out, node, item)
        axis = 0  # the axis of x the next item indexes
        for item in items:
            if isinstance(item, ast.EllipsisItem):
                out.extend([("s", None, None, 1)] * (x.type.rank - used))
                axis += x.type.rank - used
                continue
            if isinstance(item, ast.NoneLit):
                out.append(("n",))
                continue
            d = x.shape[axis]
            if isinstance(item, ast.Slice):
                vals = [self.index_int(v, scope, d) if v is not None else None for v in (item.start, item.stop)]
                step = self.index_int(item.step, scope) if item.step is not None else 1
                if step == 0:
                    self.fail(item.step.span, "a slice step must not be zero")
                out.append(("s", vals[0], vals[1], step))
            elif (node := L.dynamic(self, item, scope)) is not None:
                dyns.append((len(out), node, item))  # a full slice here; indexed after the static items
                out.append(("s", None, None, 1))
            else:
                k = self.index_int(item, scope, None, what="an index")
                if isinstance(d, int) and not -d <= k < d:
                    self.fail(item.span, f"index {k} is out of range for axis {axis} of {x.type} (size {d})")
                if isinstance(d, int) and k < 0:
                    k += d  # a canonical IR: negative indices on literal axes counted from the start
                out.append(("i", k))
            axis += 1
        # where each dynamic item's axis is after the static items (an integer removes its axis)
        dyns = [(sum(1 for o in out[:pos] if o[0] != "i"), node, item) for pos, node, item in dyns]
        while out and out[-1] == ("s", None, None, 1):
            out.pop()  # trailing full slices change nothing
        if out:
            x = self.apply(e, INDEX, x, items=tuple(out))
        return L.dyn_index(self, x, dyns) if dyns else x

    def index_int(self, a: ast.Expr, scope: Scope, size=None, what: str = "slice bounds") -> int:
        """A constant index or slice bound. Slice bounds beyond a literal size are clamped, as
        NumPy does (and so never overflow); an integer index is range-checked by the caller."""
        sign, inner = 1, a
        while isinstance(inner, ast.UnOp):
            sign = -sign if inner.op == "-" else sign
            inner = inner.operand
        if isinstance(inner, ast.Num) and isinstance(inner.value, int):
            v = sign * inner.value
        else:
            node = self.expr(a, scope)
            if node.is_const and node.dtype.kind == "i":
                v = int(node.attr("value"))
            elif node.is_dim:
                self.fail(a.span, f"{what} must be integer constants: `{format_dim_node(node)}` is a size "
                                  "symbol, known only when the function is called")
            elif what == "an index":
                self.fail(a.span, f"indexing with a tensor value ({node.type.strong()}) is not supported; "
                                  "use `take(x, idx, axis)` or `take_along_axis(x, idx, axis)`")
            else:
                self.fail(a.span, f"{what} must be integer constants, got {node.type.strong()}")
        if size is not None:
            limit = size + 1 if isinstance(size, int) else 2 ** 62
            v = max(-limit, min(limit, v))
        elif not -2 ** 63 <= v < 2 ** 63 and what != "an index":
            self.fail(a.span, f"the integer {v} does not fit in 64 bits")
        return v


def format_dim_node(node: Node) -> str:
    return dim_text(node.attr("dim"))
