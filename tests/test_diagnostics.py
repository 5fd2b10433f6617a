"""The error corpus (tests/errors/*.tl) and the diagnostics contract of docs/language.md ("Errors").

Each file in tests/errors states what the compiler must report, in comment lines at its top:

    # expect: LINE:COL: <a substring of the message>     one per diagnostic, in order
    # expect-not: <text no message may contain>          optional
    # xfail: <what is wrong today>                       optional: a known defect

The expectations sit above the code they describe (they are comments, so positions below them
are the file's true positions). An `xfail:` line marks that file's test as a strict xfail:
the expectation is what a good compiler *should* say, and the reason says what it says today.
When the compiler is fixed the test XPASSes and fails: delete the `# xfail:` line then.

Every diagnostic must be `file:line:col: error: message`, then the source line and a caret line
whose first caret sits under column COL (as a terminal shows it: tabs expanded), exit status 1,
and never a traceback or "internal error".

CRLF and CR-only files (eol_*.tl) must be kept byte for byte: do not let git or an editor
normalise their line ends.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from tapeless.compiler import CompileError, compile_source
from tapeless.compiler.tools.cli import main

TESTS = Path(__file__).resolve().parent
ERRORS = TESTS / "errors"
REPO = TESTS.parent
EXAMPLES = REPO / "examples"

_EOL = re.compile(r"\r\n|\r|\n")  # docs/language.md, "Lexical rules": the only line ends
_EXPECT = re.compile(r"#\s*expect:\s*(\d+):(\d+):\s?(.*)")
_EXPECT_NOT = re.compile(r"#\s*expect-not:\s?(.*)")
_XFAIL = re.compile(r"#\s*xfail:\s*(.*)")
_HEADER = re.compile(r"(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.*)")
_EXCERPT = re.compile(r"(?P<gutter> *(?P<line>\d+) \| )(?P<text>.*)")
_SUMMARY = re.compile(r"(\d+) errors?")
# The `~` that marks weakly typed values (literals) inside the compiler is not user vocabulary.
_WEAK_MARK = re.compile(r"\b(?:f16|f32|f64|i32|i64|bool)(?:\[[^\]]*\])?~")


# ---- the corpus ---------------------------------------------------------------------------------
@dataclass
class Expected:
    line: int
    col: int
    text: str


@dataclass
class ErrorFile:
    path: Path
    lines: list[str]  # the file's lines, line ends removed (as the compiler counts them)
    expected: list[Expected] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    xfail: str | None = None


def read_error_file(path: Path) -> ErrorFile:
    text = path.read_bytes().decode("utf-8")
    spec = ErrorFile(path, _EOL.split(text))
    for line in spec.lines:  # the header: the comment lines at the top
        if not line.startswith("#"):
            break
        if m := _EXPECT.fullmatch(line):
            spec.expected.append(Expected(int(m[1]), int(m[2]), m[3]))
        elif m := _EXPECT_NOT.fullmatch(line):
            spec.forbidden.append(m[1])
        elif m := _XFAIL.fullmatch(line):
            spec.xfail = m[1]
    return spec


ERROR_FILES = sorted(ERRORS.glob("*.tl"))


def _params():
    out = []
    for path in ERROR_FILES:
        spec = read_error_file(path)
        marks = [pytest.mark.xfail(strict=True, reason=spec.xfail)] if spec.xfail else []
        out.append(pytest.param(spec, id=path.stem, marks=marks))
    return out


def test_corpus_is_well_formed():
    assert len(ERROR_FILES) >= 60
    for path in ERROR_FILES:
        spec = read_error_file(path)
        assert spec.expected, f"{path.name}: no `# expect:` line"
        body = spec.lines[next(i for i, line in enumerate(spec.lines) if not line.startswith("#")):]
        assert not any(re.match(r"#\s*(expect|xfail)", line) for line in body), \
            f"{path.name}: `# expect:`/`# xfail:` lines belong in the header at the top"
        for e in spec.expected:
            assert 1 <= e.line <= len(spec.lines), f"{path.name}: expected line {e.line} is not in the file"
            assert 1 <= e.col <= len(spec.lines[e.line - 1]) + 1, f"{path.name}: column {e.col} is off the line"
            assert e.text.strip(), f"{path.name}: empty expected message"
            assert not spec.lines[e.line - 1].startswith("# expect"), f"{path.name}: {e} points into the header"


# ---- reading what the CLI printed -----------------------------------------------------------------
@dataclass
class Rendered:
    file: str
    line: int
    col: int
    message: str
    excerpt: str  # the source line as printed, gutter included
    gutter: int  # width of the `  12 | ` gutter
    excerpt_line: int
    carets: str


def parse_rendered(stderr: str) -> tuple[list[Rendered], int | None]:
    """Split CLI output into diagnostics; fail on anything that is not part of one."""
    lines = stderr.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[Rendered] = []
    summary = None
    i = 0
    while i < len(lines):
        h = _HEADER.fullmatch(lines[i])
        if h is None:
            m = _SUMMARY.fullmatch(lines[i])
            assert m and i == len(lines) - 1, f"unexpected output line {i + 1}: {lines[i]!r}\n{stderr}"
            summary = int(m[1])
            break
        assert i + 2 < len(lines), f"diagnostic without source line and carets:\n{stderr}"
        x = _EXCERPT.fullmatch(lines[i + 1])
        assert x, f"no source line after {lines[i]!r}:\n{stderr}"
        out.append(Rendered(h["file"], int(h["line"]), int(h["col"]), h["msg"], lines[i + 1],
                            len(x["gutter"]), int(x["line"]), lines[i + 2]))
        i += 3
        while i < len(lines) and lines[i].startswith("  note: "):
            i += 1
    return out, summary


def _display(text: str) -> str:
    return text.expandtabs(8)


def _cols(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _shown(text: str) -> str:
    """What an excerpt prints for a source line: a character that is not printable (a control,
    U+2028, U+2029, a format character) as its Python escape, never raw (tabs may stay tabs)."""
    return "".join(c if c == "\t" or c.isprintable() else repr(c)[1:-1] for c in text)


def check_output(spec: ErrorFile, shown_path: str, rc: int, stdout: str, stderr: str) -> None:
    for stream in (stdout, stderr):
        assert "Traceback" not in stream and "internal error" not in stream, stream
    assert rc == 1, f"exit status {rc}, expected 1\n{stderr}"
    diags, summary = parse_rendered(stderr)
    got = [(d.line, d.col) for d in diags]
    want = [(e.line, e.col) for e in spec.expected]
    assert got == want, f"diagnostics at {got}, expected {want}\n{stderr}"
    assert summary == len(diags), f"summary line says {summary} errors for {len(diags)}\n{stderr}"
    for d, e in zip(diags, spec.expected):
        where = f"{spec.path.name}:{d.line}:{d.col}"
        assert d.file == shown_path, f"{where}: header names {d.file!r}, not {shown_path!r}"
        assert e.text in d.message, f"{where}: {d.message!r} does not contain {e.text!r}"
        assert not _WEAK_MARK.search(d.message), f"{where}: internal weak-type mark `~` in {d.message!r}"
        # the source line, as the file has it
        assert d.excerpt_line == d.line, f"{where}: excerpt of line {d.excerpt_line}"
        # (as the file has it; tabs may be printed as is or expanded to the terminal's tab stops)
        source = spec.lines[d.line - 1]
        gutter = d.excerpt[: d.gutter]
        if len(source) > 160:  # a long line is shown as a window: "..." + part of it + "..."
            body = d.excerpt[d.gutter:]
            inner = body.removeprefix("...").removesuffix("...")
            lo = _shown(source).find(inner)
            assert lo >= 0 and len(inner) <= 160, f"{where}: excerpt {d.excerpt!r} is not a window of line {d.line}"
            assert body.startswith("...") == (lo > 0), f"{where}: a window not at the start begins with ..."
            gutter, source = gutter + ("..." if lo else ""), source[lo:lo + len(inner)]
            d = replace(d, col=d.col - lo)
        shown = {_display(gutter + _shown(source))}
        assert _display(d.excerpt.removesuffix("...")) in shown, (
            f"{where}: excerpt {d.excerpt!r} is not line {d.line}: {source!r}")
        # carets under the column, as a terminal shows it
        m = re.fullmatch(r"([ \t]*)(\^+)", d.carets)
        assert m, f"{where}: not a caret line: {d.carets!r}"
        caret_at = _cols(_display(m[1]))
        column_at = _cols(_display(gutter + _shown(source[: d.col - 1])))
        assert caret_at == column_at, (
            f"{where}: carets start at display column {caret_at + 1}, the text of column {d.col} at "
            f"{column_at + 1}\n{d.excerpt}\n{d.carets}")
        assert caret_at + len(m[2]) <= _cols(_display(gutter + _shown(source))) + 1, \
            f"{where}: carets run past the line"
    for text in spec.forbidden:
        for d in diags:
            assert text not in d.message, f"{spec.path.name}:{d.line}:{d.col}: {d.message!r} contains {text!r}"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# ---- the tests ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", _params())
def test_error_file(spec: ErrorFile, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ERRORS)  # so diagnostics name the file as `name.tl`, as a user would type it
    out_py = tmp_path / "out.py"
    rc, out, err = run_cli(["compile", spec.path.name, "-o", str(out_py)], capsys)
    check_output(spec, spec.path.name, rc, out, err)
    assert not out_py.exists(), "a module was written for a file with errors"


@pytest.mark.parametrize("path", ERROR_FILES, ids=lambda p: p.stem)
def test_ir_command_reports_the_same(path: Path, capsys, monkeypatch, tmp_path):
    """`tapeless ir` goes through the same front end: same diagnostics, same exit status."""
    monkeypatch.chdir(ERRORS)
    compiled = run_cli(["compile", path.name, "-o", str(tmp_path / "out.py")], capsys)
    typed = run_cli(["ir", path.name, "--stage", "typed"], capsys)
    assert typed[0] == compiled[0]
    assert typed[2] == compiled[2]


SUBPROCESS_FILES = ["eol_crlf", "eol_cr", "unicode_text", "multi_independent_errors", "syntax_missing_rbrace",
                    "tab_single", "caret_after_line_separators"]


@pytest.mark.parametrize("name", SUBPROCESS_FILES)
def test_error_file_real_process(name: str, capsys, monkeypatch, tmp_path):
    """The installed entry point in a fresh interpreter prints what the in-process CLI prints."""
    spec = read_error_file(ERRORS / f"{name}.tl")
    env = dict(os.environ, PYTHONUTF8="1")
    env.pop("TAPELESS_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "tapeless.compiler.tools.cli", "compile", f"{name}.tl",
                           "-o", str(tmp_path / "out.py")],
                          cwd=ERRORS, env=env, capture_output=True, timeout=120)
    stdout, stderr = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    check_output(spec, f"{name}.tl", proc.returncode, stdout, stderr)
    monkeypatch.chdir(ERRORS)
    rc, out, err = run_cli(["compile", f"{name}.tl", "-o", str(tmp_path / "out2.py")], capsys)
    assert (rc, err) == (proc.returncode, stderr)


def test_example_broken_broadcast(capsys, monkeypatch, tmp_path):
    """examples/broken_broadcast.tl: "[3] and [3, 2] do not broadcast ... 3 against 2"."""
    monkeypatch.chdir(REPO)
    rc, out, err = run_cli(["compile", "examples/broken_broadcast.tl", "-o", str(tmp_path / "out.py")], capsys)
    spec = ErrorFile(EXAMPLES / "broken_broadcast.tl",
                     _EOL.split((EXAMPLES / "broken_broadcast.tl").read_text(encoding="utf-8")),
                     [Expected(4, 12, "cannot broadcast f32[3] and f32[3, 2]: axis -1 has size 3 on the left "
                                      "and 2 on the right")])
    check_output(spec, "examples/broken_broadcast.tl", rc, out, err)


# Valid programs found while building the corpus that the compiler cannot compile today.
VALID_EDGE_CASES = [
    pytest.param("fn f(x: f32[N]) -> f32 {\n    return sum(zeros([3]))\n}\n", id="sum-of-constructor"),
    pytest.param("\ufefffn f(x: f32) -> f32 {\n    return x\n}\n", id="utf8-bom"),  # as some editors write
    pytest.param("fn f(x: f32[3]) -> f32 {\n    return sum(x[0:99999999999999999999])\n}\n",
                 id="huge-slice-bound"),  # NumPy clamps slice bounds, so x[0:<huge>] is x
    pytest.param("fn f(x: f32[3]) -> f32 {\n    return sum(x[0:10])\n}\n", id="large-slice-bound"),
    pytest.param("fn f(x: f32) -> f32 {\n\treturn x\t# tab\n}\n", id="tabs"),
    pytest.param("fn f(x: f32) -> f32 {\r\n    return x  # Größe\r\n}\r\n", id="crlf-non-ascii"),
]


@pytest.mark.parametrize("source", VALID_EDGE_CASES)
def test_valid_edge_input_compiles(source: str, capsys, tmp_path):
    path = tmp_path / "edge.tl"
    path.write_bytes(source.encode("utf-8"))
    rc, out, err = run_cli(["compile", str(path), "-o", str(tmp_path / "edge.py")], capsys)
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc == 0, err


# ---- robustness: mutated programs -------------------------------------------------------------------
# Seeds whose own text already crashes the compiler (each is a strict xfail above) would only
# rediscover that crash.
KNOWN_CRASH_SEEDS = {"crash_huge_int_literal.tl", "crash_huge_index.tl"}

_TOKEN = re.compile(r'"[^"\r\n]*"|[A-Za-z_][A-Za-z0-9_]*|[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|->|\*\*|[=!<>]='
                    r'|\.\.\.|\s+|.', re.S)
_JUNK = list("()[]{},:;=+-*/@<>.\"'#!&|$~`\\") + [
    "->", "**", "==", "...", "\n", "\r", "\r\n", "\t", " ", "fn", "grad", "vjp", "jvp", "wrt", "as", "return",
    "None", "true", "-1", "0", "2", "1.5", "1e-3", "N", "x", "é", "\x00", "[0]", "[..., None]", ".T", ", axis=0"]


def _mutate(text: str, rng: random.Random) -> str:
    tokens = _TOKEN.findall(text) or [""]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(tokens))
        kind = rng.randrange(7)
        if kind == 0:
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, tokens[i])
        elif kind == 2 and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif kind == 3:
            tokens.insert(i, rng.choice(_JUNK))
        elif kind == 4:
            tokens[i] = rng.choice(tokens)
        elif kind == 5:
            tokens = tokens[:i]
        else:  # one character out of a token
            t = tokens[i]
            if t:
                k = rng.randrange(len(t))
                tokens[i] = t[:k] + t[k + 1:]
        tokens = tokens or [""]
    return "".join(tokens)


def test_mutated_programs_fail_only_with_compile_errors():
    seeds = sorted(EXAMPLES.glob("*.tl")) + [p for p in ERROR_FILES if p.name not in KNOWN_CRASH_SEEDS]
    rng = random.Random(20250101)
    failures = []
    count = 0
    for path in seeds:
        original = path.read_bytes().decode("utf-8")
        for _ in range(4):
            text = _mutate(original, rng)
            count += 1
            lines = _EOL.split(text)
            try:
                compile_source(text, path="fuzz.tl")
            except CompileError as e:
                rendered = e.render()
                if "Traceback" in rendered or not e.diagnostics:
                    failures.append((path.name, text, "bad CompileError: " + rendered))
                for d in e.diagnostics:
                    s = d.span
                    if s is None or not (1 <= s.line <= len(lines) and 1 <= s.col <= len(lines[s.line - 1]) + 1):
                        failures.append((path.name, text, f"diagnostic outside the text: {s}: {d.message}"))
            except Exception as e:  # noqa: BLE001 - exactly what this test looks for
                failures.append((path.name, text, f"{type(e).__name__}: {e}"))
    assert count >= 300
    assert not failures, "\n\n".join(f"from {name}: {why}\n{text!r}" for name, text, why in failures[:5])


def test_deep_and_long_programs_compile(tl):
    """A 500-term sum, 150 nested calls of sin and 400 statements: the parser keeps only the
    state stack per token (no deep copy of the trees built so far), and lowering has room to
    recurse once per level of nesting."""
    terms = " + ".join(f"{i} * x" for i in range(500))
    nested = "sin(" * 150 + "x" + ")" * 150
    lines = "".join(f"    y{i} = y{i - 1} + x\n" for i in range(1, 400))
    m = tl(f"fn f(x: f64) -> f64 {{ return {terms} }}\n"
           f"fn g(x: f64) -> f64 {{ return sin({nested}) }}\n"
           f"fn h(x: f64) -> f64 {{\n    y0 = x\n{lines}    return y399\n}}\n"
           "grad f wrt x\ngrad h wrt x\n")
    assert m.f(2.0) == 2.0 * sum(range(500)) and m.f_grad(1.0)[1] == sum(range(500))
    assert m.h_grad(1.0) == (400.0, 400.0)
    want = 2.0
    for _ in range(151):
        want = np.sin(want)
    assert m.g(2.0) == want


def test_line_separators_print_escaped_with_the_carets_under_the_error(capsys, tmp_path):
    """U+2028 used to be printed raw: a terminal (or str.splitlines) breaks the line there and
    the carets land under other text. The exact picture, through the CLI."""
    path = tmp_path / "sep.tl"
    path.write_bytes("fn f(x: f64) -> f64 {\n    return x \u2028+ y\n}\n".encode("utf-8"))
    rc, out, err = run_cli(["compile", str(path), "-o", str(tmp_path / "sep.py")], capsys)
    assert rc == 1 and out == ""
    assert err.splitlines()[1:3] == ["   2 |     return x \\u2028+ y",
                                     " " * 20 + "^" * 6]  # under the 6 characters of `\\u2028`
    assert "\u2028" not in err and "\u2029" not in err
