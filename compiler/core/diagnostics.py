"""Diagnostics: errors in user input, collected in a sink and rendered once.

Rendering (docs/language.md, "Errors"):

    model.tl:3:9: error: cannot broadcast f32[3] with f32[3, 2]: ...
        y = a + b
            ^^^^^

A user error is never a Python traceback. The CLI exits 1 when a sink holds
errors and 2 ("internal error") when the compiler itself fails.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from .source import SourceFile, Span


@dataclass(frozen=True)
class Diagnostic:
    span: Span | None
    message: str
    notes: tuple[str, ...] = ()
    severity: str = "error"

    def render(self, source: SourceFile | None) -> str:
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{self.severity}: {self.message}"]
        if self.span and source is not None:
            out.extend(_excerpt(source, self.span))
        out.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(out)


TAB = 8  # tabs are expanded as a terminal would show the line, gutter included
WIDTH = 160  # a longer source line is shown as a window around the error


def _excerpt(source: SourceFile, span: Span) -> list[str]:
    line = source.line_text(span.line)
    shown = [_shown(c) for c in line]  # one piece per character (column)
    if not "".join(shown).strip():
        return []
    end = span.end_col if span.end_line == span.line else len(line) + 1
    end = min(end, len(line) + 1)
    start = span.col - 1
    lo, hi = 0, len(line)
    if len(line) > WIDTH:  # a window that starts a little before the error
        lo = max(0, min(start - 40, len(line) - WIDTH))
        hi = min(len(line), lo + WIDTH)
    left, right = ("..." if lo else ""), ("..." if hi < len(line) else "")
    gutter = f"{span.line:>4} | " + left
    # columns count characters; the picture expands tabs, shows escapes, counts wide (CJK)
    # characters twice and combining marks not at all, so the carets sit under the text
    start_at = _width((gutter + "".join(shown[lo:start])).expandtabs(TAB))
    end_at = _width((gutter + "".join(shown[lo:max(start, min(end - 1, hi))])).expandtabs(TAB))
    return [(gutter + "".join(shown[lo:hi])).expandtabs(TAB) + right, " " * start_at + "^" * max(1, end_at - start_at)]


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _shown(c: str) -> str:
    """A source character as the excerpt prints it. A line is what the grammar says (it ends at
    \n, \r\n or \r); a character that is not printable (a control, U+2028 and U+2029, which a
    terminal or `str.splitlines` would take as a line break, a zero-width or bidi format
    character, a space other than ' ') is shown as its Python escape (`\u2028`), so the line
    prints as one line and the carets count it at the width it is shown."""
    return c if c == "\t" or c.isprintable() else repr(c)[1:-1]


@dataclass
class Sink:
    """Collects diagnostics. `muted` sinks swallow them (used when re-checking inlined bodies)."""

    items: list[Diagnostic] = field(default_factory=list)
    muted: bool = False

    def error(self, span: Span | None, message: str, *notes: str) -> None:
        if not self.muted:
            self.items.append(Diagnostic(span, message, tuple(notes)))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic):
            return (d.span.line, d.span.col) if d.span else (0, 0)

        seen, out = set(), []
        for d in sorted(self.items, key=key):
            if (d.span, d.message) not in seen:
                seen.add((d.span, d.message))
                out.append(d)
        return out


class CompileError(Exception):
    """Raised by the pipeline when a file has errors; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic], source: SourceFile | None):
        self.diagnostics = diagnostics
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)

    def report(self) -> str:
        """What a tool prints (`tapeless compile`, the notebook magic): every diagnostic, then the count."""
        n = len(self.diagnostics)
        return f"{self.render()}\n{n} error{'s' if n != 1 else ''}"


class UserError(Exception):
    """A located error raised from deep inside a rule; caught and turned into a Diagnostic."""

    def __init__(self, message: str, span: Span | None = None, arg: int | str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.arg = arg  # which operand or argument is at fault (index or keyword), if known
