"""The `tapeless` command: exit statuses, atomic output, stages, internal errors."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from tapeless.compiler.tools import cli

GOOD = "fn f(x: f64[N]) -> f64 {\n    return sum(x * x)\n}\ngrad f wrt x\n"
BAD = "fn f(x: f64[3], y: f64[3, 2]) -> f64 {\n    return sum(x + y)\n}\n"


def run(*args):
    return subprocess.run([sys.executable, "-m", "tapeless.compiler.tools.cli", *args], capture_output=True, text=True)


def test_compile_writes_the_module_next_to_the_source(tmp_path):
    src = tmp_path / "model.tl"
    src.write_text(GOOD)
    r = run("compile", str(src))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "model.py").read_text()
    assert "def f_grad(" in text
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".model.py.*"))


def test_user_errors_exit_1_with_located_diagnostics_and_no_traceback(tmp_path):
    src = tmp_path / "bad.tl"
    src.write_text(BAD)
    r = run("compile", str(src))
    assert r.returncode == 1
    assert f"{src}:2:16: error: cannot broadcast f64[3] and f64[3, 2]" in r.stderr
    assert "    return sum(x + y)" in r.stderr and "^^^^^" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_failed_compile_never_clobbers_a_good_output(tmp_path):
    src = tmp_path / "m.tl"
    out = tmp_path / "m.py"
    src.write_text(GOOD)
    assert cli.main(["compile", str(src), "-o", str(out)]) == 0
    good = out.read_text()
    src.write_text(BAD)
    assert cli.main(["compile", str(src), "-o", str(out)]) == 1
    assert out.read_text() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py", "m.tl"]


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from tapeless.compiler import pipeline

    out = tmp_path / "m.py"

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.os, "replace", boom)
    with pytest.raises(OSError):
        pipeline.write_atomic(out, "x = 1\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data", ["x = 1\n", b"\x89PNG\r\n\x1a\n"], ids=["text", "bytes"])
def test_atomic_writes_get_ordinary_file_permissions(tmp_path, data):
    """mkstemp makes private files; a written module or picture is readable as any new file is."""
    import os

    from tapeless.compiler import pipeline

    out = tmp_path / "f"
    old = os.umask(0o022)
    try:
        pipeline.write_atomic(out, data)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    assert out.read_bytes() == (data.encode() if isinstance(data, str) else data)


def test_outputs_that_are_the_source_or_not_a_file_are_refused(tmp_path, capsys):
    """The source under another name (a symlink) is never overwritten, and a path that is not
    a regular file (a FIFO here; /dev/null for root) is never replaced by one."""
    import os

    src = tmp_path / "m.tl"
    src.write_text(GOOD)
    (tmp_path / "link.tl").symlink_to(src)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert cli.main(["compile", str(tmp_path / "link.tl"), "-o", str(src)]) == 1
    assert "refusing to overwrite the source file" in capsys.readouterr().err
    assert cli.main(["graph", str(src), "--fn", "f", "-o", str(tmp_path / "link.tl")]) == 1
    assert "refusing to overwrite the source file" in capsys.readouterr().err
    assert cli.main(["compile", str(src), "-o", str(fifo)]) == 1
    assert "not a regular file" in capsys.readouterr().err
    assert src.read_text() == GOOD and os.path.islink(tmp_path / "link.tl")
    assert not stat.S_ISREG(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_input_is_refused_not_read_forever(capsys):
    assert cli.main(["compile", "/dev/zero", "-o", "-"]) == 1
    assert "larger than 64 MiB" in capsys.readouterr().err


def test_missing_file_and_unwritable_output_are_user_errors(tmp_path, capsys):
    assert cli.main(["compile", str(tmp_path / "nope.tl")]) == 1
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "m.tl"
    src.write_text(GOOD)
    assert cli.main(["compile", str(src), "-o", str(tmp_path / "missing" / "m.py")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["compile", "-O", "3", "x.tl"], ["compile", "--backend", "torch", "x.tl"],
                                  ["frobnicate"], []])
def test_usage_mistakes_exit_1_not_2(argv, capsys):
    """Exit status 2 means a bug in tapeless; a wrong option is the user's, as any input error."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 1 and "error:" in capsys.readouterr().err


def test_ir_stages_print(tmp_path, capsys):
    src = tmp_path / "m.tl"
    src.write_text(GOOD)
    for stage in ("parsed", "typed", "adjoint"):
        assert cli.main(["ir", str(src), "--stage", stage]) == 0
    out = capsys.readouterr().out
    assert "return sum(x * x)" in out and "fn f(x: f64[N]) -> f64" in out and "grad f_grad(" in out


def test_compile_to_stdout_and_backends(tmp_path, capsys):
    src = tmp_path / "m.tl"
    src.write_text(GOOD)
    assert cli.main(["compile", str(src), "-o", "-", "--backend", "cupy", "--no-checks"]) == 0
    out = capsys.readouterr().out
    assert "import cupy as cp" in out and "_shape_error" not in out


def test_an_internal_error_exits_2_and_says_so(tmp_path, monkeypatch, capsys):
    from tapeless.compiler import pipeline

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "compile_file", broken)
    src = tmp_path / "m.tl"
    src.write_text(GOOD)
    assert cli.main(["compile", str(src)]) == 2
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err
    del pipeline


def test_console_script_is_installed():
    import shutil

    assert shutil.which("tapeless"), "the `tapeless` console script is not on PATH"



def test_version_prints_the_version_and_exits_0():
    from tapeless.compiler.pipeline import VERSION  # (the project's version: tests/test_packaging.py)

    r = run("--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"tapeless {VERSION}\n", "")


def test_version_without_installed_metadata_is_the_compilers_own(monkeypatch, capsys):
    """Run from a checkout that was never installed, --version falls back to pipeline.VERSION."""
    import importlib.metadata

    from tapeless.compiler.pipeline import VERSION

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"tapeless {VERSION}\n"
