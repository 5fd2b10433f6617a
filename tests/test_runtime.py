"""tapeless.runtime: load() and the import hook (the cache itself: test_cache.py)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tapeless.compiler import CompileError
from tapeless.runtime import install_import_hook, load, uninstall_import_hook

SRC = "fn double(x: f64[N]) -> f64[N] {\n    return x * 2\n}\n"


pytestmark = pytest.mark.usefixtures("cache")  # (conftest.py: a cache directory of each test's own)


def test_load_reports_compile_errors(tmp_path):
    src = tmp_path / "bad.tl"
    src.write_text("fn f(x: f64) -> f64 { return y }\n")
    with pytest.raises(CompileError, match="unknown name `y`"):
        load(src)


def test_load_reports_bad_options_files_and_caches_clearly(tmp_path, monkeypatch):
    """Never a bare int() or decode error from deep inside, and a cache that cannot be written
    is named, with the variable that moves it."""
    src = tmp_path / "m.tl"
    src.write_text("fn f(x: f64) -> f64 { return x * x }\n")
    with pytest.raises(ValueError, match="opt_level must be 0, 1 or 2, got 'x'"):
        load(src, opt_level="x")
    bad = tmp_path / "bad.tl"
    bad.write_bytes(b"fn f(x: f64) -> f64 { return x \xff }\n")
    with pytest.raises(ValueError, match=r"bad.tl: not UTF-8 text \(invalid start byte at byte 31\)"):
        load(bad)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(OSError, match="cannot write the compiled module of .*m.tl into the cache .*TAPELESS_CACHE_DIR"):
        load(src)


def test_tracebacks_point_into_the_generated_file(tmp_path):
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    m = load(src)
    with pytest.raises(ValueError) as info:
        m.double(np.ones((2, 2)))
    assert any(str(m.__file__) == tb.tb_frame.f_code.co_filename for tb in _frames(info.tb))


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_import_hook_finds_tl_files(tmp_path, monkeypatch):
    (tmp_path / "hooked_model.tl").write_text(SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = install_import_hook()
    try:
        import hooked_model

        assert hooked_model.double(np.ones(1)).tolist() == [2.0]
        assert hooked_model.__tl_source__.endswith("hooked_model.tl")
    finally:
        uninstall_import_hook(finder)
        sys.modules.pop("hooked_model", None)
    assert finder not in sys.meta_path


def test_the_readme_training_example_runs_and_learns(cache):
    """README's first command ends with `python examples/train_layer.py`: it must be in the
    repository (a fresh clone runs this test) and its loss must fall."""
    import re
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_layer.py"
    assert script.is_file(), "examples/train_layer.py is missing (is it ignored by .gitignore?)"
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    losses = [float(v) for v in re.findall(r"loss (\S+)", run.stdout)]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0], run.stdout
