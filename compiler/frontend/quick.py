"""The quick parse: text -> AST in one pass, for an item without syntax errors.

lark's LALR parser builds a parse tree (with positions propagated through every node) that a
transformer then walks again; at ~30 µs a token that was most of a large file's parse. Here
the same grammar runs on lark's own tables (its lexer's regular expression, its LALR table,
its rules' child filters), but in a small loop that builds each AST node as its rule reduces.

It only handles input that parses: on anything else it raises `Reject` and parse.py parses
the item again with lark's interactive parser, whose state every syntax message is computed
from. So messages come from one place, and this file never has to explain an error.
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple

from lark.lexer import UnlessCallback

from ..core.diagnostics import UserError
from ..core.source import SourceFile, Span
from . import syntax as ast


class Reject(Exception):
    """The item has a syntax error (or a character lark's lexer refuses)."""


# Statements the grammar parses only to refuse them with a message (parse.py uses these too,
# for a `while` or `break` that is followed by a syntax error).
UNSUPPORTED = {
    "while": "`while` loops are not supported: use `for NAME in range(...)`",
    "break": "`break` is not supported: a `for` loop runs its whole range",
}


class _Tok(NamedTuple):
    type: str
    value: str
    ext: tuple  # (line, col, end_line, end_col), as lark's token would have them


# ---- lexer ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _lexer_tables(lexer):
    """lark's basic lexer as data: its one alternation (the same terminals in the same order, so
    the same match), the keyword table of its `unless` callbacks and the ignored terminals."""
    scanner = lexer.scanner  # (built on first use; builds `lexer.callback` too)
    pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanner.terminals)
    keywords: dict[str, dict[str, str]] = {}
    for type_, callback in lexer.callback.items():
        assert isinstance(callback, UnlessCallback), callback  # keywords are the only callbacks
        keywords[type_] = {t.pattern.value: t.name for t in callback.scanner.terminals}
    return re.compile(pattern, lexer.g_regex_flags).match, keywords, lexer.ignore_types


_CLOSE = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}


def _tokens(lexer, text: str, first: int):
    """The tokens the parser sees: lark's, numbered from line first + 1, with the separator rules
    of parse.py (`_separated`) applied: line ends in ( ) and [ ] dropped, runs of line ends and
    `;` one `_SEP`, none right after `{` or before `}` or at either end."""
    match, keywords, ignore = _lexer_tables(lexer)
    names = keywords.get("NAME", {})
    out: list[_Tok] = []
    open_: list[str] = []  # the closers of the open brackets, innermost last
    pending = None  # the separator run waiting for the next token: its first token (or `;`)
    line, line_start, pos, end = first + 1, 0, 0, len(text)
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise Reject
        type_, value = m.lastgroup, m.group()
        col = pos - line_start + 1
        pos = m.end()
        if type_ == "NEWLINE":
            ext = (line, col, line + 1, 1)
            line, line_start = line + 1, pos
            if open_ and open_[-1] != "RBRACE":
                continue
        elif type_ in ignore:
            continue  # (a comment or blanks: no line end inside either)
        else:
            ext = (line, col, line, col + len(value))
            if type_ == "NAME":
                type_ = names.get(value, "NAME")
            elif type_ == "STRING" and "\n" in value:  # pragma: no cover (the pattern excludes it)
                raise Reject
        if type_ == "NEWLINE" or type_ == "SEMICOLON":
            if pending is None or pending.type == "NEWLINE":
                pending = _Tok(type_, value, ext)  # a `;` in a run is the token to point at
            continue
        if pending is not None and out and out[-1].type != "LBRACE" and type_ != "RBRACE":
            out.append(_Tok("_SEP", pending.value, pending.ext))
        pending = None
        out.append(_Tok(type_, value, ext))
        if type_ in _CLOSE:
            open_.append(_CLOSE[type_])
        elif open_ and open_[-1] == type_:
            open_.pop()
    return out


# ---- parser -----------------------------------------------------------------------------------
class _Rule(NamedTuple):
    size: int  # symbols on the right-hand side
    include: tuple  # (index, splice, Nones before it) per kept child, as lark's child filter keeps them
    trailing_nones: int
    expand1: bool  # a `?rule` with one child is that child
    build: object  # (source, kept children, extent of the rule's text) -> value (an _Ast builder)
    lhs: str  # the rule's name: the goto after reducing
    unit: bool  # a `?rule` of one symbol kept as is (`sum: product`): only the state changes


def _span(src: SourceFile, ext) -> Span:
    return Span(src.path, *ext)


@functools.lru_cache(maxsize=None)
def _tables(lark_parser):
    """lark's LALR table with each rule turned into a _Rule."""
    lark_parser = lark_parser.parser.parser.parser
    table = lark_parser.parse_table
    rules = {}
    states = {}
    for state, actions in table.states.items():
        row = {}
        for type_, (action, arg) in actions.items():
            if action.name == "Shift":
                row[str(type_)] = (True, arg)  # (plain str keys: lark's names hash and compare slowly)
            else:
                if arg not in rules:
                    rules[arg] = _rule(arg)
                row[str(type_)] = (False, rules[arg])
        states[state] = row
    return states, table.start_states["start"], table.end_states["start"]


def _rule(rule) -> _Rule:
    """lark's `maybe_create_child_filter` and `ExpandSingleChild` for one rule, as data."""
    expansion, options = rule.expansion, rule.options
    if options.empty_indices:  # how many `[x]` placeholders (None) stand before each symbol
        bits = "".join(str(int(b)) for b in options.empty_indices)
        nones = [len(ones) for ones in bits.split("0")]
    else:
        nones = [0] * (len(expansion) + 1)
    include, waiting = [], 0
    for i, sym in enumerate(expansion):
        waiting += nones[i]
        if options.keep_all_tokens or not (sym.is_term and sym.filter_out):
            include.append((i, not sym.is_term and sym.name.startswith("_"), waiting))
            waiting = 0
    name = rule.alias or rule.origin.name
    build = getattr(_Ast, name, None)
    if build is None:
        assert name.startswith("_") or name == "start" or options.expand1, f"no AST for rule {name}"
        build = _children
    expand1 = bool(options.expand1 and not rule.alias)
    trailing = waiting + nones[len(expansion)]
    unit = expand1 and len(expansion) == 1 and include == [(0, False, 0)] and not trailing
    return _Rule(len(expansion), tuple(include), trailing, expand1, build, str(rule.origin.name), unit)


def parse_items(source: SourceFile, text: str, first: int, lark_parser, lexer) -> list:
    """The items of `text` (lines first+1... of the file) as AST nodes; Reject on a syntax error.
    `lark_parser` and `lexer` are parse.py's (whose tables this runs on)."""
    states, start, end = _tables(lark_parser)
    state_stack = [start]
    values: list = []
    extents: list = []  # per value: (line, col, end_line, end_col) of its text, or None if it has none
    for tok in _tokens(lexer, text, first) + [_Tok("$END", "", None)]:
        type_ = tok.type
        while True:
            action = states[state_stack[-1]].get(type_)
            if action is None:
                raise Reject
            shift, arg = action
            if shift:
                state_stack.append(arg)
                values.append(tok)
                extents.append(tok.ext)
                break
            if arg.unit:  # (most reductions: the expression rules' chain from atom up to expr)
                del state_stack[-1]
                state_stack.append(states[state_stack[-1]][arg.lhs][1])
                continue
            value, ext = _reduce(source, arg, values, extents)
            del state_stack[len(state_stack) - arg.size:]
            shift, goto = states[state_stack[-1]][arg.lhs]
            state_stack.append(goto)
            values.append(value)
            extents.append(ext)
            if type_ == "$END" and goto == end:
                return value


def _reduce(source: SourceFile, rule: _Rule, values: list, extents: list):
    n = rule.size
    if n:
        kids, exts = values[-n:], extents[-n:]
        del values[-n:], extents[-n:]
    else:
        kids, exts = [], []
    # lark's propagate_positions: from the first child with a position to the last one's end
    a = exts[0] if exts and exts[0] is not None else next((e for e in exts if e is not None), None)
    if a is None:
        ext = None
    else:
        b = exts[-1] if exts[-1] is not None else next(e for e in reversed(exts) if e is not None)
        ext = a if a is b else (a[0], a[1], b[2], b[3])
    kept: list = []
    for i, splice, nones in rule.include:
        if nones:
            kept += [None] * nones
        if splice:  # (a `_rule` or repetition: its children, in place; reusing the list keeps
            if kept:    # a left-recursive run of n statements linear, as lark's filter does)
                kept += kids[i]
            else:
                kept = kids[i]
        else:
            kept.append(kids[i])
    if rule.trailing_nones:
        kept += [None] * rule.trailing_nones
    if rule.expand1 and len(kept) == 1:
        return kept[0], ext
    return rule.build(source, kept, ext), ext


# ---- AST builders -----------------------------------------------------------------------------
def _children(src, c, ext):
    return c


def _tok_span(src: SourceFile, tok: _Tok) -> Span:
    return Span(src.path, *tok.ext)


def _ident(src, tok: _Tok) -> ast.Ident:
    return ast.Ident(tok.value, _tok_span(src, tok))


def _int(tok: _Tok, span: Span) -> int:
    if len(tok.value) > 100:  # int() refuses over 4300 digits; no dtype holds more than 20
        raise UserError(f"integer literal of {len(tok.value)} digits: too large for any integer type", span)
    return int(tok.value)


class _Ast:
    """One builder per grammar rule (by its alias or name, as lark names a transformer's methods):
    (source, kept children, extent of the rule's text) -> what the rule stands for."""

    @staticmethod
    def fn_def(src, c, ext):
        name, params, _arrow, result, body = c
        types, is_tuple = result if result is not None else (None, False)
        return ast.FnDef(_ident(src, name), tuple(params), types, is_tuple, tuple(body), _span(src, ext))

    params = shape = body = subscripts = args = staticmethod(_children)

    @staticmethod
    def param(src, c, ext):
        return ast.Param(_ident(src, c[0]), c[1], _span(src, ext))

    @staticmethod
    def ret_single(src, c, ext):
        return (tuple(c), False)

    @staticmethod
    def ret_tuple(src, c, ext):
        return (tuple(c), True)

    @staticmethod
    def type(src, c, ext):
        name, shape = c
        return ast.TypeExpr(_ident(src, name), tuple(shape) if shape is not None else None, _span(src, ext))

    @staticmethod
    def dim_int(src, c, ext):
        span = _tok_span(src, c[0])
        size = _int(c[0], span)
        if size >= 1 << 63:
            raise UserError(f"size {size} is too large: sizes are 64-bit integers", span)
        return ast.DimExpr(size, span)

    @staticmethod
    def dim_name(src, c, ext):
        return ast.DimExpr(c[0].value, _tok_span(src, c[0]))

    @staticmethod
    def assign(src, c, ext):
        return ast.Assign(tuple(_ident(src, t) for t in c[:-1]), c[-1], _span(src, ext))

    @staticmethod
    def return_stmt(src, c, ext):
        return ast.Return(tuple(c), _span(src, ext))

    @staticmethod
    def index_assign(src, c, ext):
        name, items, value = c
        return ast.IndexAssign(_ident(src, name), tuple(items), value, _span(src, ext))

    @staticmethod
    def for_stmt(src, c, ext):
        var, iter_, body = c
        return ast.For(_ident(src, var), iter_, tuple(body), _span(src, ext))

    @staticmethod
    def while_stmt(src, c, ext):
        raise UserError(UNSUPPORTED["while"], Span(src.path, ext[0], ext[1], ext[0], ext[1] + len("while")))

    @staticmethod
    def break_stmt(src, c, ext):
        raise UserError(UNSUPPORTED["break"], _span(src, ext))

    @staticmethod
    def directive(src, c, ext):
        kind, fn, *rest = c
        alias, wrt = rest[-1], rest[:-1]
        return ast.Directive(kind, _ident(src, fn), tuple(_ident(src, w) for w in wrt),
                             _ident(src, alias) if alias is not None else None, _span(src, ext))

    @staticmethod
    def directive_kind(src, c, ext):
        return c[0].value

    # expressions
    @staticmethod
    def compare(src, c, ext):
        return ast.Compare(_span(src, ext), c[1].value, c[0], c[2])

    @staticmethod
    def binop(src, c, ext):
        return ast.BinOp(_span(src, ext), c[1].value, c[0], c[2])

    @staticmethod
    def unop(src, c, ext):
        return ast.UnOp(_span(src, ext), c[0].value, c[1])

    @staticmethod
    def index(src, c, ext):
        return ast.Index(_span(src, ext), c[0], tuple(c[1]))

    @staticmethod
    def slice(src, c, ext):
        start, _colon, stop, _colon2, step = c
        return ast.Slice(_span(src, ext), start, stop, step)

    @staticmethod
    def ellipsis(src, c, ext):
        return ast.EllipsisItem(_span(src, ext))

    @staticmethod
    def attr(src, c, ext):
        return ast.Attr(_span(src, ext), c[0], _ident(src, c[1]))

    @staticmethod
    def name(src, c, ext):
        return ast.Name(_span(src, ext), c[0].value)

    @staticmethod
    def int_lit(src, c, ext):
        span = _span(src, ext)
        return ast.Num(span, _int(c[0], span), c[0].value)

    @staticmethod
    def float_lit(src, c, ext):
        return ast.Num(_span(src, ext), float(c[0].value), c[0].value)

    @staticmethod
    def string_lit(src, c, ext):
        return ast.Str(_span(src, ext), c[0].value[1:-1])

    @staticmethod
    def true_lit(src, c, ext):
        return ast.Bool(_span(src, ext), True)

    @staticmethod
    def false_lit(src, c, ext):
        return ast.Bool(_span(src, ext), False)

    @staticmethod
    def inf_lit(src, c, ext):
        return ast.NamedConst(_span(src, ext), "inf")

    @staticmethod
    def pi_lit(src, c, ext):
        return ast.NamedConst(_span(src, ext), "pi")

    @staticmethod
    def none_lit(src, c, ext):
        return ast.NoneLit(_span(src, ext))

    @staticmethod
    def call(src, c, ext):
        name, args = c
        pos = tuple(a for a in args if not isinstance(a, ast.Keyword))
        kws = tuple(a for a in args if isinstance(a, ast.Keyword))
        seen_kw = False
        for a in args:  # as in Python: no positional argument after a keyword one
            if isinstance(a, ast.Keyword):
                seen_kw = True
            elif seen_kw:
                raise UserError("positional argument after a keyword argument", a.span)
        return ast.Call(_span(src, ext), _ident(src, name), pos, kws)

    @staticmethod
    def kwarg(src, c, ext):
        return ast.Keyword(_ident(src, c[0]), c[1], _span(src, ext))

    @staticmethod
    def list_lit(src, c, ext):
        return ast.ListExpr(_span(src, ext), tuple(c))
