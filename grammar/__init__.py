"""The tapeless grammar (`tapeless.lark`) and a cached LALR parser for it."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

GRAMMAR_PATH = Path(__file__).with_name("tapeless.lark")


def grammar_text() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


def _directive_words() -> tuple[str, ...]:
    """The derivative directives (`grad`, `vjp`, ...) as the grammar's `directive_kind` rule lists
    them: a new directive is a word there and an entry in compiler/autodiff/directives.py."""
    m = re.search(r"^!directive_kind:(.*)$", grammar_text(), re.M)
    return tuple(re.findall(r'"(\w+)"', m.group(1)))


DIRECTIVE_WORDS = _directive_words()
# Words that can never be names (docs/language.md, "Names").
KEYWORDS = frozenset("fn return for in while break wrt as true false inf pi None".split()) | frozenset(DIRECTIVE_WORDS)


@lru_cache(maxsize=None)
def parser(postlex=None):
    """The LALR parser; `postlex` is the separator post-lexer from tapeless.compiler.frontend.parse."""
    import lark

    return lark.Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=postlex,
    )
