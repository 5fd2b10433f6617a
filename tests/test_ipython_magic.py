"""`%%tapeless` (runtime/ipython.py): a cell compiled, imported and its functions bound; errors
shown as the compiler's diagnostics with nothing bound; the options of `tapeless compile`."""
from __future__ import annotations

import builtins
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("IPython", reason="the %%tapeless magic is an IPython extension (pip install ipython)")

from tapeless.compiler import pipeline  # noqa: E402
from tapeless.compiler.core.source import SourceFile  # noqa: E402
from tapeless.runtime import loader  # noqa: E402

LAYER = """\
fn layer(x: f64[N, D], w: f64[D], b: f64) -> f64 {
    z = tanh(x @ w + b)
    return sum(z * z)
}
grad layer wrt w, b
"""
BAD = """\
fn f(x: f64[3], y: f64[3, 2]) -> f64 {
    return sum(x + y)
}
"""
NAMES = ("layer", "layer_grad", "layer_grad_fwd", "layer_grad_bwd")


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """An IPython shell of the module's own (its profile and history in a temporary directory)
    with the extension loaded the way a notebook loads it."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    mp = pytest.MonkeyPatch()
    mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    # the shell replaces __main__ and adds __IPYTHON__ and display to builtins: put them back after
    mp.setitem(sys.modules, "__main__", sys.modules["__main__"])
    added = {"__IPYTHON__", "display"} - set(vars(builtins))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "NoColor"  # (tracebacks are read as text)
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "tapeless.runtime.ipython")
    yield ip
    ip.run_line_magic("unload_ext", "tapeless.runtime.ipython")
    InteractiveShell.clear_instance()
    for name in added:
        vars(builtins).pop(name, None)
    mp.undo()


@pytest.fixture
def ip(shell, cache):
    """The shell with a cache directory of the test's own and none of the names tests bind."""
    for name in (*NAMES, "f", "f_grad", "f_grad_fwd", "f_grad_bwd", "model"):
        shell.user_ns.pop(name, None)
    return shell


def run(ip, line: str, cell: str):
    """Run the cell as a notebook does (so an exception escaping the magic would be shown as a traceback)."""
    result = ip.run_cell(f"%%tapeless {line}\n{cell}")
    assert result.error_in_exec is None and result.error_before_exec is None
    return result


def entry_text(module) -> str:
    """The generated module's text, without the cache entry's two-line header."""
    with open(module.__file__, encoding="utf-8") as f:
        return "".join(f.readlines()[2:])


def test_the_cell_functions_are_bound_and_compute_value_and_gradient(ip, capsys):
    run(ip, "--name model", LAYER)
    out = capsys.readouterr()
    assert out.out.strip() == f"tapeless: defined {', '.join(NAMES)} and module model"
    assert out.err == ""
    model = ip.user_ns["model"]
    assert set(model.__tapeless__) == set(NAMES)
    for name in NAMES:
        assert ip.user_ns[name] is getattr(model, name)

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal(3), 0.3
    ip.user_ns.update(x=x, w=w, b=b)
    ip.run_cell("value, dw, db = layer_grad(x, w, b)")
    z = np.tanh(x @ w + b)
    dz = 2 * z * (1 - z * z)
    np.testing.assert_allclose(ip.user_ns["value"], np.sum(z * z), rtol=1e-12)
    np.testing.assert_allclose(ip.user_ns["dw"], x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(ip.user_ns["db"], np.sum(dz), rtol=1e-12)
    np.testing.assert_allclose(ip.user_ns["layer"](x, w, b), np.sum(z * z), rtol=1e-12)


def test_errors_show_the_diagnostic_with_a_caret_and_no_traceback_and_bind_nothing(ip, capsys):
    result = run(ip, "--name model", BAD)
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        "<tapeless cell>:2:16: error: cannot broadcast f64[3] and f64[3, 2]: axis -1 has size 3 on the left and 2 "
        "on the right (shapes align from the right; sizes must match or be 1)",
        "   2 |     return sum(x + y)",
        "                      ^^^^^",
        "1 error",
    ]
    assert "Traceback" not in out.out + out.err and out.out == ""
    assert result.result is None  # nothing shown as the cell's value either
    assert "f" not in ip.user_ns and "model" not in ip.user_ns


def test_a_cell_that_fails_leaves_the_previous_definitions_alone(ip, capsys):
    run(ip, "", LAYER)
    before = ip.user_ns["layer_grad"]
    run(ip, "", LAYER.replace("z * z", "z * q"))  # q is not defined
    err = capsys.readouterr().err
    assert "<tapeless cell>:3:" in err and "^" in err
    assert ip.user_ns["layer_grad"] is before


def test_bad_options_are_reported_without_a_traceback(ip, capsys):
    for line, message in [("--bogus", "unrecognized arguments: --bogus"),
                          ("-O 3", "argument -O: invalid choice: 3"),
                          ("--name 1x", "--name takes a Python identifier, got '1x'"),
                          ("--name class", "--name takes a Python identifier, got 'class'"),
                          ("--backend fortran", "unknown backend 'fortran'")]:
        run(ip, line, LAYER)
        out = capsys.readouterr()
        assert message in out.err, (line, out.err)
        assert "Traceback" not in out.out + out.err and out.out == ""
        assert "layer" not in ip.user_ns


def test_options_are_those_of_tapeless_compile(ip, capsys):
    x = np.ones((2, 2))  # not the f64[N] that f declares
    run(ip, "--name model", LAYER)
    checked = ip.user_ns["model"]
    run(ip, "--no-checks -O 0 --name model", LAYER)
    unchecked = ip.user_ns["model"]
    assert unchecked is not checked
    expected = pipeline.compile_source(SourceFile.from_text("<tapeless cell>", LAYER), checks=False, opt_level=0)
    assert entry_text(unchecked) == expected
    run(ip, "-O2 --name model", LAYER)  # joined, as the command line takes it
    expected = pipeline.compile_source(SourceFile.from_text("<tapeless cell>", LAYER), checks=True, opt_level=2)
    assert entry_text(ip.user_ns["model"]) == expected
    double = "fn f(x: f64[N]) -> f64[N] {\n    return x * 2\n}\n"
    run(ip, "", double)
    with pytest.raises(ValueError, match=r"f\(\): argument `x` must be f64\[N\] \(1-D\)"):
        ip.user_ns["f"](x)
    run(ip, "--no-checks", double)
    np.testing.assert_array_equal(ip.user_ns["f"](x), 2 * x)  # unchecked: the 2-D x goes through
    capsys.readouterr()


def test_the_numba_backend(ip, capsys):
    pytest.importorskip("numba", reason="--backend numba needs numba (pip install 'tapeless[numba]')")
    run(ip, "--backend numba --name model", LAYER)
    assert "import numba" in entry_text(ip.user_ns["model"])
    assert capsys.readouterr().err == ""


def test_the_same_cell_again_is_served_by_the_cache_and_an_edited_one_redefines(ip, capsys, monkeypatch):
    compiled = []
    real = loader._compile
    monkeypatch.setattr(loader, "_compile", lambda *a: compiled.append(a) or real(*a))
    run(ip, "", LAYER)
    first = ip.user_ns["layer"]
    run(ip, "", LAYER)
    assert len(compiled) == 1  # the second run imported the cached module
    assert ip.user_ns["layer"] is not first  # ...afresh: the names are bound again
    run(ip, "", LAYER.replace("sum(z * z)", "sum(z * z) * 2"))
    assert len(compiled) == 2
    x, w = np.full((2, 3), 0.1), np.full(3, 0.2)
    assert ip.user_ns["layer"](x, w, 0.0) == pytest.approx(2 * first(x, w, 0.0), rel=1e-12)
    capsys.readouterr()


def test_a_missing_backend_library_is_reported_plainly(ip, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    run(ip, "--backend numba", LAYER)
    assert capsys.readouterr().err == ("tapeless: error: the numba backend's modules import numba, "
                                       "which is not installed (pip install 'tapeless[numba]')\n")
    assert "layer" not in ip.user_ns


def test_tracebacks_from_a_cell_function_show_the_generated_lines(ip, capsys):
    run(ip, "", LAYER)
    ip.user_ns["np"] = np
    ip.run_cell("layer(np.ones(3), np.ones(3), 0.0)")
    out = capsys.readouterr().out
    assert "ValueError: layer(): argument `x` must be f64[N, D]" in out
    assert "tapeless_cell_" in out and "_rank_error('layer'" in out  # the cache entry's file and its lines


def test_a_warm_cell_does_not_import_the_compiler(ip, cache, tmp_path, capsys):
    """As a warm load(): the cached module is verified and imported, the compiler stays unloaded."""
    run(ip, "", LAYER)  # (cold: written into this test's cache)
    capsys.readouterr()
    script = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
              "from traitlets.config import Config\nc = Config()\nc.HistoryManager.hist_file = ':memory:'\n"
              "ip = InteractiveShell.instance(config=c)\nip.run_line_magic('load_ext', 'tapeless.runtime.ipython')\n"
              "r = ip.run_cell('%%tapeless\\n' + sys.argv[1])\nassert r.success\n"
              "print(sorted(n for n in sys.modules if n.startswith('tapeless.compiler')))\n")
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    out = subprocess.run([sys.executable, "-c", script, LAYER], capture_output=True, text=True, env=env)
    assert (out.returncode, out.stdout.splitlines()[-1]) == (0, "[]"), out.stderr
