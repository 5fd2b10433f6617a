"""The module driver: orders the items of a file and builds each one.

    program = Program(source, tree, sink)
    program.type_all()        # the typed stage: every fn lowered (frontend/lower.py) and every
                              # directive checked (its function exists, wrt names float
                              # parameters, a scalar where the directive needs one)
    module = program.derive_all()   # the adjoint stage: every directive derived (autodiff/)

Items are built on demand and remembered, so a function may call one defined later, and a
fn may call a derivative function (`f_grad`): the typed stage derives that directive when
the call is lowered. A call that comes back to an item being built is a recursion error at
the call. Lowering never imports autodiff: it asks the driver for the functions it calls.

One intern table serves both stages, so the derivatives share the nodes of the functions
they differentiate, and the names the stages give (ir.hint) are one table too.
"""
from __future__ import annotations

import difflib

from tapeless.grammar import KEYWORDS

from .autodiff.batch import batch_table
from .autodiff.directives import DIRECTIVES, part_names
from .core.diagnostics import Sink, UserError
from .core.ir import Function, Graph, Module, Node, current_hints, graph_scope
from .core.source import SourceFile, Span
from .core.substitute import with_calls_expanded
from .frontend import syntax as ast
from .frontend.lower import Lowering, Poison
from .primitives.builtin_functions import BUILTINS


class Program:
    def __init__(self, source: SourceFile, tree: ast.Module, sink: Sink, float64: bool = False):
        """`float64`: every floating dtype in the file is read as f64 (gradcheck's reference build)."""
        self.source = source
        self.tree = tree
        self.sink = sink
        self.graph = Graph()
        self.defs: dict[str, ast.FnDef | ast.Directive] = {}  # an item by the name it defines
        self.emitted: dict[str, Span] = {}  # every name a generated module will define
        self.owner: dict[str, str] = {}  # NAME_fwd, NAME_bwd -> NAME
        self.broken = set(tree.broken)  # names from items that did not parse: never "unknown"
        self.results: dict[str, list[Function] | None] = {}
        self.batch: dict[str, dict | None] = {}  # fn name -> autodiff/batch.py's table, made once
        self.checked: dict[str, tuple[Function, list[int]] | None] = {}  # a directive's (F, wrt indices)
        self.stack: list[str] = []
        self.lowering = Lowering(source, sink, self, float64)
        for item in tree.items:
            self._declare(item)

    # ---- the stages ---------------------------------------------------------------------------
    def type_all(self) -> Module:
        """Every fn lowered, every directive checked, in the file's order: the typed module."""
        with graph_scope(graph=self.graph):
            for item in self._items():
                if isinstance(item, ast.FnDef):
                    self.build(item.name.name)
                else:
                    self.check(item)
            self.typed = self.module(fns_only=True)
        return self.typed

    def derive_all(self) -> Module:
        """Every directive derived: the module with all its functions, in the file's order."""
        with graph_scope(graph=self.graph):
            for item in self._items():
                self.build(_name(item))
            return self.module()

    def module(self, fns_only: bool = False) -> Module:
        functions, pending = [], []
        for item in self._items():
            if fns_only and not isinstance(item, ast.FnDef):
                pending += part_names(item.emitted_name, DIRECTIVES[item.kind])
                continue
            functions.extend(self.results.get(_name(item)) or [])
        batch = {}
        for f in functions:
            if f.name not in self.batch:
                self.batch[f.name] = batch_table(f, self.source)
            if self.batch[f.name] is not None:
                batch[f.name] = self.batch[f.name]
        return Module(self.source, tuple(functions), current_hints(), tuple(pending), batch)

    def _items(self):
        for item in self.tree.items:
            if self.defs.get(_name(item)) is item:  # (a duplicate is reported already)
                yield item

    # ---- names --------------------------------------------------------------------------------
    def _declare(self, item) -> None:
        if isinstance(item, ast.FnDef):
            names = [(item.name.name, item.name.span)]
        else:
            span = item.alias.span if item.alias else item.fn.span
            names = [(n, span) for n in part_names(item.emitted_name, DIRECTIVES[item.kind])]
        for name, span in names:
            if name in KEYWORDS:
                self.sink.error(span, f"`{name}` is a keyword and cannot name a function")
            if name in self.emitted:
                prev = self.emitted[name]
                self.sink.error(span, f"`{name}` is defined twice (first at {prev.line}:{prev.col})")
                return
        for name, span in names:
            self.emitted[name] = span
            self.owner[name] = names[0][0]
        self.defs[names[0][0]] = item

    def defines(self, name: str) -> bool:
        """Whether `name` is a fn or a directive's function of this file (callable in .tl code)."""
        return name in self.defs

    def unknown_function(self, ident: ast.Ident, exclude=()) -> None:
        if ident.name in self.broken:
            return  # a function with a syntax error: reported already
        if ident.name in self.emitted and ident.name not in exclude:  # NAME_fwd/NAME_bwd, or a broken definition
            self.sink.error(ident.span, f"`{ident.name}` is generated for Python callers and cannot be called "
                                        f"in a .tl file; call the function it derives from, or its grad/vjp")
            return
        candidates = [n for n in list(self.emitted) + list(BUILTINS) if n not in exclude and n != ident.name]
        close = difflib.get_close_matches(ident.name, candidates, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        self.sink.error(ident.span, f"unknown function `{ident.name}`{hint}")

    # ---- building items on demand -----------------------------------------------------------------
    def build(self, name: str) -> list[Function] | None:
        """The functions of the item defining `name`, built once (None: it failed, reported)."""
        if name in self.results:
            return self.results[name]
        item = self.defs[name]
        self.stack.append(name)
        try:
            if isinstance(item, ast.FnDef):
                fn = self.lowering.lower_fn(item)
                result = [fn] if fn is not None else None
            else:
                result = self.derive(item)
        finally:
            self.stack.pop()
        self.results[name] = result
        return result

    def resolve(self, name: str, span: Span) -> Function:
        """The callable function `name` (a fn, or a directive's NAME), for a call at `span`."""
        if name in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(name):] + [name])
            self.sink.error(span, f"recursive call: {cycle}; tapeless inlines calls, so recursion is not allowed")
            raise Poison
        fns = self.build(name)
        if not fns:
            raise Poison
        return fns[0]

    # ---- directives -------------------------------------------------------------------------------
    def check(self, d: ast.Directive) -> tuple[Function, list[int]] | None:
        """(F, the wrt parameters' indices) when the directive is sound; None after reporting."""
        key = _name(d)
        if key not in self.checked:
            pushed = self.stack[-1:] != [key]  # (build() has pushed it when deriving)
            if pushed:
                self.stack.append(key)
            try:
                self.checked[key] = self._check(d)
            finally:
                if pushed:
                    self.stack.pop()
        return self.checked[key]

    def _check(self, d: ast.Directive) -> tuple[Function, list[int]] | None:
        name = d.fn.name
        directive = DIRECTIVES[d.kind]
        if name in self.broken:
            return None  # its syntax error is reported already
        if name not in self.defs:
            base = self.owner.get(name)
            if base is not None and base != name and not isinstance(self.defs.get(base), ast.FnDef):
                self.sink.error(d.fn.span, f"`{name}` is generated Python only; a directive can differentiate "
                                           f"`{base}` (or any fn), not its _fwd/_bwd halves")
            else:
                self.unknown_function(d.fn, exclude=set(part_names(d.emitted_name, directive)))
            return None
        try:
            target = self.resolve(name, d.fn.span)
        except Poison:
            # the body failed (reported); the signature alone still checks the wrt list
            if name in self.lowering.signatures:
                self._wrt(d, name, self.lowering.signatures[name])
            return None
        wrt = self._wrt(d, target.name, list(target.params))
        ok = wrt is not None
        if directive.scalar_only and target.outputs:
            outs = target.outputs
            if len(outs) != 1 or outs[0].type.rank != 0 or not outs[0].dtype.is_float:
                shown = ", ".join(str(o.type) for o in outs)
                self.sink.error(d.fn.span, f"`{d.kind}` needs a function returning one floating-point scalar; "
                                           f"`{target.name}` returns {shown}{directive.scalar_hint}")
                ok = False
        return (target, wrt) if ok else None

    def _wrt(self, d: ast.Directive, fname: str, params: list[Node]) -> list[int] | None:
        """Indices of the wrt parameters; None (after reporting) when any is wrong."""
        names = [p.attr("name") for p in params]
        wrt: list[int] = []
        ok = True
        for w in d.wrt:
            if w.name not in names:
                self.sink.error(w.span, f"`{w.name}` is not a parameter of `{fname}` "
                                        f"(its parameters: {', '.join(names)})")
                ok = False
                continue
            i = names.index(w.name)
            if i in wrt:
                self.sink.error(w.span, f"`{w.name}` is named twice in `wrt`")
                ok = False
                continue
            p = params[i]
            if not p.dtype.is_float:
                self.sink.error(w.span, f"cannot differentiate with respect to `{w.name}`: it is {p.type}, "
                                        "not floating point")
                ok = False
                continue
            wrt.append(i)
        return wrt if ok else None

    def derive(self, d: ast.Directive) -> list[Function] | None:
        checked = self.check(d)
        if checked is None:
            return None
        target, wrt = checked
        try:
            target = with_calls_expanded(target)
            return DIRECTIVES[d.kind].derive(d.emitted_name, target, wrt, d.span)
        except UserError as e:
            self.sink.error(e.span or d.span, e.message)
            return None


def _name(item) -> str:
    return item.name.name if isinstance(item, ast.FnDef) else item.emitted_name
