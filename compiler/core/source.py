"""Source files and spans.

A `SourceFile` holds the text of a `.tl` file with its line ends normalised to
`\\n` (`\\r\\n` and `\\r` both end a line: docs/language.md, "Lexical rules"). Normalising changes
no line or column number, so every span points at the file the user wrote.
Lines and columns are 1-based and count characters.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from functools import cached_property

MAX_SOURCE_BYTES = 64 << 20  # a .tl file is text a person wrote; anything bigger is a mistake


class NotText(ValueError):
    """A source file that is not UTF-8 text; the message names the file and the byte."""


def decode(data: bytes, path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotText(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


@dataclass(frozen=True)
class Span:
    """A region of a source file: from (line, col) up to, not including, (end_line, end_col)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of self to the end of other."""
        return Span(self.file, self.line, self.col, other.end_line, other.end_col)


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown in diagnostics
    text: str  # line ends normalised to "\n"

    @classmethod
    def from_text(cls, path: str, text: str) -> "SourceFile":
        if text.startswith("\ufeff"):  # a UTF-8 byte-order mark (some editors write one) is not text
            text = text[1:]
        return cls(path, text.replace("\r\n", "\n").replace("\r", "\n"))

    @classmethod
    def read(cls, path: str, display: str | None = None) -> "SourceFile":
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)  # bounded: /dev/zero or an endless pipe never hangs us
        if len(data) > MAX_SOURCE_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_SOURCE_BYTES >> 20} MiB, not a .tl source")
        return cls.from_text(display or str(path), decode(data, path))

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 1 <= line <= len(self.lines) else ""

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        return Span(self.path, line, col, end_line, end_col)

    def end_span(self) -> Span:
        """A one-character span just after the last non-blank text (for "missing `}`")."""
        lines = self.lines
        n = len(lines)
        while n > 1 and not lines[n - 1].strip():
            n -= 1
        col = len(lines[n - 1].rstrip()) + 1
        return Span(self.path, n, col, n, col + 1)
