"""Text -> AST, with syntax errors a person can read.

The file is cut into top-level items (a line starting with `fn` or a directive word,
`grad`, `vjp`, `jvp`, `hvp`, starts one) and each item is parsed on its own, so one syntax
error does not hide the next item's. Tokens come from lark's basic lexer; the
separator logic below sits between lexer and LALR parser (docs/language.md, "Lexical rules"):

* a line end inside ( ) or [ ] is ignored;
* line ends and `;` become one `_SEP` token, runs of them collapse, and those
  right after `{`, right before `}` or at either end of an item are dropped.

The bracket stack kept on the way is what lets an error say "missing `}` for
the `fn` opened at 3:1" instead of "unexpected end of input".

An item is first parsed by quick.py (the same lexer and table, the same separator rules, no
parse tree); only an item it rejects goes through lark's interactive parser below, for the
message.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import lark
from lark import Token
from lark.lexer import BasicLexer, LexerThread
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
)
from tapeless.grammar import DIRECTIVE_WORDS, KEYWORDS
from tapeless.grammar import parser as _lark_parser

from ..core.diagnostics import Sink, UserError
from ..core.source import SourceFile, Span
from . import quick
from . import syntax as ast


class _KeepSeparators:
    """lark post-lexer hook: keeps the line-end and `;` terminals that no rule names."""

    always_accept = ("NEWLINE", "SEMICOLON")

    def process(self, stream):
        return stream


_POSTLEX = _KeepSeparators()


def _parser() -> lark.Lark:
    return _lark_parser(_POSTLEX)


@functools.lru_cache(maxsize=None)
def _lexer() -> BasicLexer:
    """The basic lexer, built once: `Lark.lex` builds a new one per call for an LALR parser
    (~1 ms each; a file of 2,000 small fns spent most of its parse building lexers)."""
    return BasicLexer(_parser().lexer_conf)


def _tokens(text: str):
    return _POSTLEX.process(LexerThread.from_text(_lexer(), text).lex(None))


# A top-level item starts a line: `fn NAME(` or `grad NAME wrt` (a body line such as
# `grad = x` is a statement, and gets the keyword error it deserves).
_DIRECTIVES = "|".join(DIRECTIVE_WORDS)
_DIRECTIVE_LIST = ", ".join(f"`{w}`" for w in DIRECTIVE_WORDS)
_ITEM_START = re.compile(rf"[ \t\f]*(fn\s+\w+\s*\(|({_DIRECTIVES})\s+\w+\s+wrt\b|fn\s*$)")
_CLOSER = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_TEXT = {"LPAR": "(", "LSQB": "[", "LBRACE": "{", "RPAR": ")", "RSQB": "]", "RBRACE": "}"}


_ITEM_NAME = re.compile(rf"[ \t\f]*(?:fn\s+(\w+)|({_DIRECTIVES})\s+(\w+)\s+wrt\b(?:.*\bas\s+(\w+))?)")


def parse(source: SourceFile, sink: Sink) -> ast.Module:
    """Parse a whole file. Items with syntax errors are reported to `sink` and left out;
    the names they would have defined are kept in `Module.broken`, so that the rest of
    the file can still be checked without complaining that those names are unknown."""
    items: list = []
    broken: set[str] = set()
    for first, last in _item_ranges(source.lines):
        text = "\n".join(source.lines[first:last])
        try:
            items.extend(_parse_chunk(source, text, first))
        except UserError as e:
            sink.error(e.span, e.message)
            m = _ITEM_NAME.match(source.lines[first]) if first < len(source.lines) else None
            if m:
                name = m[1] or m[4] or f"{m[3]}_{m[2]}"
                broken.update({name, name + "_fwd", name + "_bwd"})
    return ast.Module(tuple(items), frozenset(broken))


def _item_ranges(lines: list[str]) -> list[tuple[int, int]]:
    starts = [i for i, line in enumerate(lines) if _ITEM_START.match(line)]
    if not starts or any(line.strip() and not line.lstrip().startswith("#") for line in lines[: starts[0]]):
        starts = [0] + starts  # text before the first item is parsed too, so it is reported
    bounds = starts + [len(lines)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]


@dataclass
class _Open:
    token: Token  # the opening bracket
    owner: Token | None  # for `{`: the `fn` keyword of the function


def _shifted(tokens, lines: int):
    """Tokens of a chunk that starts `lines` lines into the file, with the file's line numbers
    (lexing the chunk alone, not after that many blank lines: linear in the file's length)."""
    for tok in tokens:
        tok.line += lines
        if tok.end_line is not None:
            tok.end_line += lines
        yield tok


def _parse_chunk(source: SourceFile, text: str, first: int = 0) -> list:
    try:
        return quick.parse_items(source, text, first, _parser(), _lexer())  # the AST as rules reduce
    except (quick.Reject, UserError) as e:
        found = e
    # an error: parsed again with lark's parser, keeping the state before each token, which a
    # syntax message is computed from (a syntax error comes first, as it is found first)
    _syntax_check(source, text, first)
    if isinstance(found, UserError):
        raise found  # (a number too large and such, in an item without syntax errors)
    raise AssertionError(f"the quick parse refused what lark's parser accepts: {text[:200]!r}")


def _syntax_check(source: SourceFile, text: str, first: int) -> None:
    """Raise the UserError for the first syntax error of the item, if it has one."""
    p = _parser()
    ip = p.parse_interactive()
    stack: list[_Open] = []
    last_opener: Token | None = None  # the last `fn`, `for` or `while`: what a `{` belongs to
    refused: Token | None = None  # a `while` or `break` the item has (quick.UNSUPPORTED)
    before = ip
    prev: list[Token] = []  # the last token fed (a one-element list, for the error path)
    try:
        for tok in _separated(_shifted(_tokens(text), first), stack):
            before = ip.copy(deepcopy_values=False)  # the state an error message is computed from
            ip.feed_token(tok)
            prev[:] = [tok]
            if tok.type in ("FN", "FOR", "WHILE"):
                last_opener = tok
            if tok.value in quick.UNSUPPORTED and tok.type != "NAME" and refused is None:
                refused = tok
            if tok.type in _CLOSER:
                stack.append(_Open(tok, last_opener if tok.type == "LBRACE" else None))
            elif tok.type in _TEXT and stack and _CLOSER[stack[-1].token.type] == tok.type:
                stack.pop()
        before = ip.copy(deepcopy_values=False)
        ip.feed_eof()
    except UnexpectedInput as e:
        if refused is not None and isinstance(e, UnexpectedToken) and not (
                prev and prev[0] is refused and e.token.type == "EQUAL"):  # (what follows hardly matters)
            raise UserError(quick.UNSUPPORTED[refused.value], _token_span(source, refused)) from None
        if isinstance(e, UnexpectedCharacters):
            raise UserError(_char_message(text, e), _point(source, e.line + first, e.column)) from None
        if isinstance(e, UnexpectedToken):
            raise _token_error(source, "\n" * first + text, e, set(before.accepts()), stack,
                               prev[0] if prev else None) from None
        raise UserError("syntax error", _point(source, e.line + first, e.column)) from None  # pragma: no cover


def _separated(tokens, stack: list[_Open]):
    """Apply the separator rules to a raw token stream (see the module docstring)."""
    pending: Token | None = None
    prev: Token | None = None
    for tok in tokens:
        if tok.type == "NEWLINE" and stack and stack[-1].token.type != "LBRACE":
            continue
        if tok.type in ("NEWLINE", "SEMICOLON"):
            if pending is None or pending.type == "NEWLINE":
                pending = tok  # a `;` in a run is the more useful token to point at
            continue
        if pending is not None and prev is not None and prev.type != "LBRACE" and tok.type != "RBRACE":
            yield Token.new_borrow_pos("_SEP", pending.value, pending)
        pending = None
        prev = tok
        yield tok


# ---- error messages -----------------------------------------------------------
_NAMES = {
    "RPAR": "`)`", "LPAR": "`(`", "RSQB": "`]`", "LSQB": "`[`", "RBRACE": "`}`", "LBRACE": "`{`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "DOT": "`.`", "ARROW": "`->`", "POW": "`**`",
    "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/` or `@`", "COMPARE": "a comparison",
    "NAME": "a name", "INT": "a number", "FLOAT": "a number", "STRING": "a string",
    "ELLIPSIS": "`...`", "_SEP": "a line break or `;`", "$END": "the end of the file",
}
_REFUSED = {"WHILE", "BREAK"}
_EXPR_START = {"NAME", "INT", "FLOAT", "STRING", "TRUE", "FALSE", "INF", "PI", "NONE", "LPAR", "LSQB", "ADD_OP"}
_OPERATORS = {"ADD_OP", "MUL_OP", "POW", "COMPARE", "LSQB", "DOT", "LPAR"}


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type == "_SEP":
        return "`;`" if tok.value == ";" else "the end of the line"
    if tok.type == "NAME":
        return f"name `{tok.value}`"
    if tok.value in KEYWORDS:
        return f"keyword `{tok.value}`"
    if tok.type in ("INT", "FLOAT"):
        return f"number `{tok.value}`"
    return f"`{tok.value}`"


def _expected_text(names: list[str]) -> str:
    words = []
    for n in names:
        w = _NAMES.get(n) or f"`{n.lower()}`"
        if w not in words:
            words.append(w)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _token_error(
    source: SourceFile, text: str, e: UnexpectedToken, expected: set[str], stack: list[_Open],
    prev: Token | None = None,
) -> UserError:
    """`expected` comes from accepts() on the state before the token: LALR's own
    `e.expected` merges look-aheads across contexts and would list tokens that
    cannot follow here. `prev` is the last token accepted."""
    tok = e.token
    found = _describe(tok)
    expected = expected - _REFUSED  # never suggested
    if prev is not None and prev.type in ("INT", "FLOAT") and tok.type in ("INT", "FLOAT", "NAME") and \
            tok.line == prev.end_line and tok.column == prev.end_column:
        whole = prev.value + tok.value  # `1.5.2` lexes as `1.5` `.2`, `2x` as `2` `x`
        return UserError(f"malformed number `{whole}`",
                         source.span(prev.line, prev.column, tok.end_line, tok.end_column))
    if tok.type == "RBRACE" and not stack:
        return UserError("unmatched `}`: it closes nothing", _token_span(source, tok))
    if tok.type == "WRT" and prev is not None and prev.value in DIRECTIVE_WORDS:
        return UserError(f"`{prev.value}` needs the name of the function to differentiate, "
                         f"found keyword `wrt`", _token_span(source, tok))
    if prev is not None and tok.type == "RBRACE" and \
            tok.line > prev.end_line and expected & {"INT", "NAME"} and expected <= _EXPR_START | {"RPAR", "RSQB"}:
        # the line break before `}` was dropped: the expression is missing at the end of prev's line
        return UserError("expected an expression, found the end of the line",
                         source.span(prev.end_line, prev.end_column, prev.end_line, prev.end_column + 1))
    if tok.type == "$END":
        span = (source.span(prev.end_line, prev.end_column, prev.end_line, prev.end_column + 1)
                if prev is not None else SourceFile(source.path, text).end_span())
        if stack:
            top = stack[-1]
            closer = _TEXT[_CLOSER[top.token.type]]
            if top.owner is not None:
                where = f"{top.owner.line}:{top.owner.column}"
                return UserError(f"missing `{closer}` for the `{top.owner.value}` opened at {where}", span)
            where = f"{top.token.line}:{top.token.column}"
            return UserError(f"missing `{closer}` for the `{top.token.value}` opened at {where}", span)
    else:
        span = _token_span(source, tok)
    if tok.type == "EQUAL" and prev is not None and prev.type in ("FOR", "RETURN", "WHILE", "BREAK"):  # `for = 1`
        return UserError(f"`{prev.value}` is a keyword and cannot be used as a name", _token_span(source, prev))
    if tok.value in KEYWORDS and tok.type != "NAME" and "NAME" in expected:
        return UserError(f"`{tok.value}` is a keyword and cannot be used as a name", span)
    if tok.type == "COMPARE" and "COMPARE" not in expected and expected & {"ADD_OP", "MUL_OP"}:
        return UserError("comparisons cannot be chained (`a < b < c`); compare two values at a time", span)
    if expected <= _EXPR_START | {"RSQB", "RPAR", "ELLIPSIS", "COLON"} and "INT" in expected:
        return UserError(f"expected an expression, found {found}", span)
    if "EQUAL" in expected and "COMMA" in expected and not expected & (_OPERATORS - {"LSQB"}):
        return UserError(
            f"expected `=`, found {found}: a statement is `name = expression`, `name[index] = expression`, "
            "a `for` loop or `return expression`", span
        )
    if "FN" in expected and not stack:
        return UserError(
            f"expected `fn` or a derivative directive ({_DIRECTIVE_LIST}), found {found}: "
            "statements belong inside a function",
            span,
        )
    if "_SEP" in expected and tok.type != "$END" and not expected & {"NAME", "INT"}:
        return UserError(f"expected a line break or `;` before {found}", span)
    names = sorted(expected - _OPERATORS) if expected - _OPERATORS else sorted(expected)
    if stack and _CLOSER[stack[-1].token.type] in expected:
        top = stack[-1].token
        names = [n for n in ("COMMA", _CLOSER[top.type]) if n in expected]
        where = f"{top.line}:{top.column}"
        return UserError(
            f"expected {_expected_text(names)} (to close the `{top.value}` at {where}), found {found}", span
        )
    order = ["_SEP", "$END"]
    names.sort(key=lambda n: (n in order, n))
    return UserError(f"expected {_expected_text(names)}, found {found}", span)


def _char_message(text: str, e: UnexpectedCharacters) -> str:
    ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
    if ch == '"':
        return "unterminated string: a string ends with `\"` on the same line"
    if ch == "'":
        return "unexpected character `'`: strings are written in double quotes"
    if ch == "!":
        return "unexpected character `!`: did you mean `!=`?"
    if ch in "&|~":
        return f"unexpected character `{ch}`: there are no logical operators; use `where` on comparisons"
    shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
    return f"unexpected character `{shown}`"


def _point(source: SourceFile, line: int, col: int) -> Span:
    return source.span(line, col, line, col + 1)


def _token_span(source: SourceFile, tok: Token) -> Span:
    if tok.type == "_SEP":  # the end of a line: point just past its text
        return source.span(tok.line, tok.column, tok.line, tok.column + 1)
    return source.span(tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)
