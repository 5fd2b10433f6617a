"""Running `tapeless` in-process on one input and judging what it did.

What every run must show (docs/architecture.md, "Tests"):
* exit status 0 or 1 (2 is an internal error), no Python traceback anywhere;
* exit 1 only with located diagnostics (`FILE:LINE:COL: error: ...`, the position inside the
  file), the CLI's own `tapeless: error: ...` form, argparse's usage form, or (check) the
  table whose summary says what disagreed; a row "could not evaluate" that names an exception
  only a bug raises (AttributeError, KeyError, RecursionError, ...) is an internal error;
* a compiled module is Python that compiles, imports only what generated code imports, runs
  nothing from the source (the canary of mutate.py never becomes code), and imports
  (NumPy backend);
* no file left beside the input but the output asked for.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import signal
import time
import types
import warnings
from dataclasses import dataclass, field

from tapeless.compiler.tools import cli

from .mutate import CANARY, tokens

IMPORTS = {"numpy", "cupy", "os", "contextvars", "contextlib", "math", "threading"}  # what emission writes
SPECIAL_IMPORTS = {"scipy.special", "cupyx.scipy.special"}  # only in a module that uses a special function
# exceptions that are a bug of the checker, never a property of the program or its sizes
CHECKER_BUG = re.compile(r"\((AttributeError|NameError|UnboundLocalError|AssertionError|KeyError|RecursionError): ")
SUMMARY = re.compile(r"^(\d+) of (\d+) derivative\(s\) agree with SymPy(.*)$", re.M)


class Timeout(BaseException):
    """Raised inside the command when its time is up (a BaseException: the CLI's handlers let it by)."""


@dataclass
class Run:
    argv: list[str]
    status: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    warnings: str = ""  # Python warnings, which a `tapeless` process prints on stderr before its own text


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)  # each one fails the test
    notes: list[str] = field(default_factory=list)  # counted and reported, never failing


def run_cli(argv: list[str], seconds: float) -> Run:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    timed_out = False

    def alarm(signum, frame):
        raise Timeout()

    can_alarm = hasattr(signal, "setitimer")
    old = signal.signal(signal.SIGALRM, alarm) if can_alarm else None
    if can_alarm:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    status = None
    # warnings are printed as a fresh `tapeless` process would print them (pytest would keep them)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = cli.main(argv)
                except SystemExit as e:  # argparse
                    status = e.code if isinstance(e.code, int) else 1
        except Timeout:
            timed_out = True
        finally:
            if can_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return Run(argv, status, out.getvalue(), err.getvalue(), time.perf_counter() - t0, timed_out, shown)


def source_lines(data: str | bytes) -> list[str]:
    """The lines diagnostics count, as core/source.py reads the file."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    text = text[1:] if text.startswith("\ufeff") else text
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def judge_diagnostics(display: str, stderr: str, data: str | bytes) -> list[str]:
    """Problems with an exit-1 error report (empty when it is well formed)."""
    if stderr.startswith(("tapeless: error: ", "usage: tapeless")):
        return []
    located = re.compile(re.escape(display) + r":(\d+):(\d+): error: ")
    if not located.match(stderr):
        return [f"exit 1 without a located diagnostic: {stderr[:300]!r}"]
    lines = source_lines(data)
    problems = []
    for m in located.finditer(stderr):
        line, col = int(m[1]), int(m[2])
        if not 1 <= line <= len(lines):
            problems.append(f"diagnostic at line {line}, the file has {len(lines)} lines")
        elif not 1 <= col <= len(lines[line - 1]) + 1:
            problems.append(f"diagnostic at {line}:{col}, the line has {len(lines[line - 1])} characters")
    if not re.search(r"\n\d+ errors?\n$", stderr):
        problems.append("the error report does not end with its count")
    return problems


def judge_module(text: str, where: str, backend: str, source: str) -> list[str]:
    """Problems with a generated module's text."""
    try:
        tree = compile(text, where, "exec", ast.PyCF_ONLY_AST)
        code = compile(tree, where, "exec")
    except (SyntaxError, ValueError) as e:
        return [f"the generated module does not compile: {type(e).__name__}: {e}"]
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, (ast.FunctionDef, ast.Assign, ast.ClassDef)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        else:
            problems.append(f"unexpected top-level statement in the module: {ast.unparse(node)[:120]!r}")
            continue
        problems += [f"the module imports {n}" for n in names if n.split(".")[0] not in IMPORTS
                     and not (n in SPECIAL_IMPORTS and "_special." in text)]
    if CANARY in text and not any(k == "name" and CANARY in t for k, t in tokens(source)):
        for node in ast.walk(tree):
            ident = getattr(node, "id", None) or getattr(node, "attr", None) or getattr(node, "name", None)
            if isinstance(ident, str) and CANARY in ident:
                problems.append(f"source text became code in the module: {ast.unparse(node)[:120]!r}")
                break
    if not problems and backend == "numpy":
        module = types.ModuleType("tl_fuzz_module")
        try:
            exec(code, module.__dict__)
        except Exception as e:  # noqa: BLE001 - any failure to import is the finding
            problems.append(f"the generated module does not import: {type(e).__name__}: {e}")
    return problems


def judge(run: Run, command: str, display: str, data: str | bytes, outputs: dict, left: set[str],
          expected_files: set[str]) -> Verdict:
    """`outputs`: what a successful run must have written ({"module": path or "-", "dot": path})."""
    v = Verdict()
    if run.warnings:  # a leak from inside the compiler, not the CLI's report: counted, judged apart
        v.notes.append(f"a Python warning on stderr: {run.warnings.splitlines()[0][-160:]}")
    if run.timed_out:  # (interrupted anywhere: even between mkstemp and its cleanup, so a note)
        v.notes.append(f"timeout after {run.seconds:.1f} s")
        if left - expected_files:
            v.notes.append(f"files left after a timeout: {sorted(left - expected_files)}")
        return v
    for stream, name in ((run.stdout, "stdout"), (run.stderr, "stderr")):
        if "Traceback (most recent call last)" in stream:
            v.problems.append(f"a Python traceback on {name}")
    if run.status not in (0, 1):
        first = run.stderr.strip().splitlines()[:2]
        v.problems.append(f"exit status {run.status}: {' / '.join(first)[:300]}")
        return v
    extra = left - expected_files - ({os.path.basename(p) for p in outputs.values() if p != "-"}
                                    if run.status == 0 else set())
    if extra:
        v.problems.append(f"files left behind: {sorted(extra)}")
    if run.status == 1:
        if command == "check":
            m = SUMMARY.search(run.stdout)
            if m and ("disagree" in m[3] or "could not be checked" in m[3]):
                for line in run.stdout.splitlines():
                    bug = CHECKER_BUG.search(line) if ": error: " in line else None
                    if bug:  # the checker's own exception, reported as "could not evaluate"
                        v.problems.append(f"check hid an internal {bug[1]}: {line[:200]}")
                    elif ": FAIL: " in line or ": error: " in line:
                        v.notes.append(f"check {'FAIL' if ': FAIL: ' in line else 'could not check'}: {line[:200]}")
                return v
        v.problems += judge_diagnostics(display, run.stderr, data)
        if not run.stderr.strip():
            v.problems.append("exit 1 with nothing on stderr")
        return v
    if run.stderr.strip():
        v.notes.append(f"stderr on success: {run.stderr.strip().splitlines()[0][:160]}")
    if command == "compile":
        path = outputs["module"]
        text = run.stdout if path == "-" else _read(path)
        if text is None:
            v.problems.append(f"compile succeeded but wrote no {path}")
        else:
            backend = "cupy" if "cupy" in run.argv else "numpy"
            source = data if isinstance(data, str) else data.decode("utf-8", "replace")
            v.problems += judge_module(text, path, backend, source)
    elif command == "graph":
        path = outputs.get("dot", "-")
        text = run.stdout if path == "-" else _read(path)
        if not text or not text.lstrip().startswith("digraph"):
            v.problems.append(f"graph succeeded without DOT text: {(text or '')[:100]!r}")
    elif command == "check" and not SUMMARY.search(run.stdout):
        v.problems.append("check succeeded without its summary line")
    return v


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None

