"""`tapeless check` says on stderr which function it is checking once it has run for a second
(compiler/tools/progress.py); a quicker check prints its table alone. The second is a parameter
here, and the timer's work (Progress.reveal) is called directly: nothing depends on timing."""
from __future__ import annotations

import io
import os

import pytest

from tapeless.compiler import CompileError
from tapeless.compiler.tools import progress as progress_module
from tapeless.compiler.tools.check import run_check_command
from tapeless.compiler.tools.progress import AFTER, Progress

TWO = ("fn f(x: f64[N]) -> f64 { return sum(x * x) }\ngrad f wrt x\n"
       "fn g(x: f64[N]) -> f64 { return sum(exp(x)) }\nvjp g wrt x\n")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_check_past_the_threshold_names_each_function_as_it_starts(tmp_path, capsys):
    src = tmp_path / "m.tl"
    src.write_text(TWO)
    assert run_check_command(str(src), "", progress_after=0) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == ["tapeless check: checking f_grad (1 of 2)",
                                    "tapeless check: checking g_vjp (2 of 2)"]
    assert "2 of 2 derivative(s) agree with SymPy" in out.out and "tapeless check:" not in out.out


def test_a_check_under_the_threshold_prints_nothing_but_its_table(tmp_path, capsys):
    src = tmp_path / "m.tl"
    src.write_text(TWO)
    assert run_check_command(str(src), "", progress_after=3600) == 0
    out = capsys.readouterr()
    assert out.err == "" and "2 of 2 derivative(s) agree with SymPy" in out.out
    assert run_check_command.__defaults__ == (AFTER,) and AFTER == 1.0  # what `tapeless check` waits


def test_errors_in_the_file_are_all_that_stderr_says(tmp_path, capsys):
    """The compile before the checks shows no status, even past the threshold, so a report of
    errors (which the command line prints) reads as `tapeless compile`'s."""
    src = tmp_path / "bad.tl"
    src.write_text("fn f(x: f64[N]) -> f64 { return sum(y) }\ngrad f wrt x\n")
    with pytest.raises(CompileError, match="unknown name `y`"):
        run_check_command(str(src), "", progress_after=0)
    assert capsys.readouterr().err == ""


def test_the_status_appears_when_the_timer_fires_and_then_as_it_changes():
    stream = io.StringIO()
    with Progress(stream, after=3600, prefix="t: ") as p:
        assert p._timer.interval == 3600 and p._timer.function == p.reveal
        p.update("compiling")
        p.update("checking a (1 of 3)")
        assert stream.getvalue() == ""
        p.reveal()  # (what the timer does after `after` seconds)
        p.update("checking b (2 of 3)")
    assert stream.getvalue() == "t: checking a (1 of 3)\nt: checking b (2 of 3)\n"
    assert not p._timer.is_alive()


def test_a_timer_that_fires_after_the_end_writes_nothing():
    stream = io.StringIO()
    with Progress(stream, after=3600) as p:
        p.update("checking a (1 of 1)")
    p.reveal()
    assert stream.getvalue() == ""


def test_on_a_terminal_the_status_is_one_line_rewritten_and_erased_at_the_end(monkeypatch):
    monkeypatch.setattr(progress_module.shutil, "get_terminal_size", lambda: os.terminal_size((16, 24)))
    stream = Terminal()
    with Progress(stream, after=0, prefix="t: ") as p:
        p.update("checking a (1 of 2)")
        p.update("checking b (2 of 2)")
    erase = "\r\033[K"
    assert stream.getvalue() == f"{erase}t: checking a ({erase}t: checking b ({erase}"
    quiet = Terminal()
    with Progress(quiet, after=3600) as p:
        p.update("checking a (1 of 1)")
    assert quiet.getvalue() == ""  # nothing shown, nothing to erase
