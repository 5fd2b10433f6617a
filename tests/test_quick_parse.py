"""frontend/quick.py parses an item in one pass on lark's own tables (no parse tree); lark's
parser runs only to word a syntax error. The two must accept exactly the same items, or a
valid item would be an internal error and an invalid one would slip through unreported:
checked here on every .tl file of the repository and on 1,500 fuzz inputs (grammar-derived,
typed and mutated ones, seed 7)."""
from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.inputs import make_input
from tapeless.compiler.core.diagnostics import UserError
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.frontend import parse as P
from tapeless.compiler.frontend import quick

REPO = Path(__file__).resolve().parent.parent


def _verdicts(name: str, text: str):
    """(item text, quick accepts, lark accepts) for each item of a file; an item whose AST cannot
    be built for another reason (a number too large) is left out."""
    source = SourceFile.from_text(name, text)
    for first, last in P._item_ranges(source.lines):
        chunk = "\n".join(source.lines[first:last])
        try:
            quick.parse_items(source, chunk, first, P._parser(), P._lexer())
            by_quick = True
        except quick.Reject:
            by_quick = False
        except UserError:
            continue
        try:
            P._syntax_check(source, chunk, first)
            by_lark = True
        except UserError:
            by_lark = False
        yield chunk, by_quick, by_lark


def _files():
    for path in sorted(REPO.glob("**/*.tl")):
        yield str(path.relative_to(REPO)), path.read_bytes().decode("utf-8", "replace")
    for i in range(1500):
        inp = make_input(7, i)
        yield inp.describe(), inp.text


def test_quick_parse_accepts_exactly_what_lark_accepts():
    wrong, seen = [], {True: 0, False: 0}
    for name, text in _files():
        for chunk, by_quick, by_lark in _verdicts(name, text):
            seen[by_lark] += 1
            if by_quick != by_lark:
                wrong.append(f"{name}: quick {'accepts' if by_quick else 'rejects'}, lark "
                             f"{'accepts' if by_lark else 'rejects'}: {chunk[:200]!r}")
    assert not wrong, "\n".join(wrong[:10])
    assert seen[True] > 1000 and seen[False] > 200  # both kinds were tried
