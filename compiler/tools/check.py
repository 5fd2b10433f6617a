"""`tapeless check FILE.tl [--sizes N=3,M=2]`: every derivative of a file against SymPy.

The file goes through the pipeline's stages up to `adjoint`; sympy_check.py compares each
derivative with sympy.diff and this module prints the table and sets the exit status (1 on
any disagreement or any function it could not check).
"""
from __future__ import annotations

import sys

from .. import pipeline
from ..core.source import NotText, SourceFile
from ..core.types import symbols_in
from .progress import AFTER, Progress
from .sympy_check import Result, check_module


def format_table(results: list[Result]) -> str:
    rows = [("function", "result", "method", "elements", "time")]
    for r in results:
        rows.append((r.function, r.status, r.method or "-", str(r.elements), f"{r.seconds:.2f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.detail:
            lines.append(f"{r.function}: {r.status}: {r.detail}")
    return "\n".join(lines) + "\n"


def parse_sizes(text: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not name.isidentifier() or not value.isdigit():
            raise ValueError(f"--sizes takes NAME=SIZE pairs such as N=3,M=2, got {part!r}")
        if int(value) < 1:
            raise ValueError(f"--sizes: {name} must be at least 1, got {value}")
        if name in out:
            raise ValueError(f"--sizes gives {name} twice")
        out[name] = int(value)
    return out


def run_check_command(path: str, sizes: str, progress_after: float = AFTER) -> int:
    """The command; once it has run for `progress_after` seconds, stderr says which function is being
    checked (progress.py), so a long check is not silent and a quick one prints only its table."""
    with Progress(after=progress_after, prefix="tapeless check: ") as progress:
        results = _results(path, sizes, progress)
    if isinstance(results, int):
        return results
    sys.stdout.write(format_table(results))
    count = {s: sum(r.status == s for r in results) for s in ("pass", "FAIL", "skipped", "error")}
    sys.stdout.write(f"{count['pass']} of {len(results)} derivative(s) agree with SymPy"
                     + "".join(f", {count[s]} {word}" for s, word in (("FAIL", "disagree"), ("skipped", "skipped"),
                                                                    ("error", "could not be checked")) if count[s])
                     + "\n")
    return 1 if count["FAIL"] or count["error"] else 0


def _results(path: str, sizes: str, progress: Progress) -> list[Result] | int:
    """Every derivative's result, or the exit status of an input error (reported on stderr)."""
    try:
        source = SourceFile.read(path, path)
    except OSError as e:
        sys.stderr.write(f"tapeless: error: {path}: {e.strerror}\n")
        return 1
    except NotText as e:
        sys.stderr.write(f"tapeless: error: {e}\n")
        return 1
    try:
        size_map = parse_sizes(sizes)
    except ValueError as e:
        sys.stderr.write(f"tapeless: error: {e}\n")
        return 1
    module = pipeline.ir_stage(source)
    known = {s for fn in module.functions for p in fn.params for d in p.shape for s in symbols_in(d)}
    unknown = sorted(set(size_map) - known)
    if unknown:
        sys.stderr.write(f"tapeless: error: --sizes names {', '.join(unknown)}, which no function's parameters "
                         f"use (sizes: {', '.join(sorted(known)) or 'none'})\n")
        return 1
    # (the compile before is left without a status: its errors, if any, must be all stderr says)
    return check_module(module, source.text, size_map,
                        on_start=lambda name, k, n: progress.update(f"checking {name} ({k} of {n})"))
