"""The tapeless grammar (`tapeless.lark`) and a cached LALR parser for it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

GRAMMAR_PATH = Path(__file__).with_name("tapeless.lark")

# Words that can never be names (LANGUAGE.md §2).
KEYWORDS = frozenset("fn return grad vjp jvp hvp wrt as true false inf pi None".split())


def grammar_text() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def parser(postlex=None):
    """The LALR parser; `postlex` is the separator post-lexer from tapeless.compiler.parse."""
    import lark

    return lark.Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=postlex,
    )
