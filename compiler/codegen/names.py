"""Safe Python identifiers for source names.

A `.tl` name may be any identifier that is not a tapeless keyword, so it can be
a Python keyword (`lambda`), a builtin (`sum`, `type`) or the backend alias
(`np`). Such names get a trailing underscore; repeats (SSA rebinding, inlined
calls) get `_1`, `_2`, ... Helper functions in generated modules all start with
`_`, so user names never shadow them either: those are reserved up front.
"""
from __future__ import annotations

import builtins
import functools
import keyword
import re

PYTHON_RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Names:
    def __init__(self, reserved=(), outer=frozenset()):
        # names never given out here; a frozenset is kept as it is (a child scope shares its
        # parent's, not a copy per function: a module of 1,000 fns would copy 1,000 names 1,000 times)
        self.reserved = reserved if isinstance(reserved, frozenset) and PYTHON_RESERVED <= reserved \
            else PYTHON_RESERVED | frozenset(reserved)
        self.outer = outer  # names an enclosing scope has taken: repeats here are numbered
        self.taken: set[str] = set()
        # base -> the number its next repeat tries first: names are never given back, so every
        # smaller number is still taken (without it, the n-th `a` of a chain tried n names)
        self.next: dict[str, int] = {}
        self._seen: tuple[int, frozenset] | None = None  # (len(taken), reserved | taken) for child()

    def child(self) -> "Names":
        """A scope for one function: sees everything taken here as reserved."""
        if self._seen is None or self._seen[0] != len(self.taken):  # (taken only grows)
            self._seen = (len(self.taken), self.reserved | self.taken)
        return Names(self._seen[1])

    def nested(self) -> "Names":
        """A scope for a function nested in this one: never a name taken here so far (that would
        shadow it); a repeat is numbered (`b1_1`), as in one scope."""
        return Names(self.reserved, frozenset(self.outer | self.taken))

    def fresh(self, base: str) -> str:
        if not _IDENT.match(base):  # never happens for parsed names; defensive for generated ones
            base = "v"
        if base in self.reserved or (base.startswith("__") and base.endswith("__")):
            base = base + "_"  # a keyword, a builtin, or a module dunder (__builtins__, __getattr__)
        name, k = base, self.next.get(base, 1)
        if name in self.taken or name in self.reserved or name in self.outer:
            name = f"{base}_{k}"
            while name in self.taken or name in self.reserved or name in self.outer:
                k += 1
                name = f"{base}_{k}"
            self.next[base] = k + 1
        self.taken.add(name)
        return name


def sanitize_comment(text: str, limit: int = 90) -> str:
    """Source text for a comment: no control characters (no line breaks), bounded length."""
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def sanitize_docstring(text: str) -> str:
    """Text safe inside a triple-quoted docstring: printable, no backslashes or quotes."""
    return "".join(c if c.isprintable() and c not in '\\"' else "?" for c in text)


def place(node) -> str:
    """`file.tl:LINE` of a node, safe in a comment or a string literal ('?' without a span)."""
    return f"{_file_for_comment(node.span.file)}:{node.span.line}" if node.span else "?"


@functools.lru_cache(maxsize=64)
def _file_for_comment(path: str) -> str:
    # (asked once per generated line: a file's few names, sanitized once each)
    return sanitize_comment(path, 60)
