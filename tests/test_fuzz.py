"""Fuzzing every `tapeless` command (tests/fuzz/): grammar-derived programs, well-typed random
programs and mutations of the corpus, run in-process through compile (each -O level, CuPy,
--no-checks, standard output, the default path), ir (each stage), graph and check.

Every run must exit 0 or 1 without a traceback, exit 1 only with a located diagnostic (or the
CLI's own error forms), write a compiled module that is importable Python running nothing from
the source, and leave no stray file (tests/fuzz/oracle.py). The seed is fixed: a failure names
its input, which `python tests/fuzz/long_run.py --profile ci --only N` replays.

TAPELESS_FUZZ=N changes the number of inputs (default 1000), TAPELESS_FUZZ_SEED the seed; the
long mode (50,000 inputs in parallel processes, with a summary) is tests/fuzz/long_run.py.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fuzz.campaign import COMPILE_VARIANTS, GRAPH_VARIANTS, Stats, label_of, run_campaign, summary
from fuzz.inputs import CI, make_input
from fuzz.mutate import CANARY
from fuzz.oracle import Run, judge, judge_diagnostics, judge_module, run_cli
from tapeless.compiler.pipeline import STAGES

INPUTS = int(os.environ.get("TAPELESS_FUZZ", "1000"))
SEED = int(os.environ.get("TAPELESS_FUZZ_SEED", "0"))
GOOD = "fn f(x: f64[N]) -> f64 {\n    return sum(x * x)\n}\ngrad f wrt x\n"


@pytest.fixture(scope="module")
def campaign() -> Stats:
    stats = run_campaign(SEED, 0, INPUTS, CI)
    print("\n" + summary(stats))
    return stats


def test_fuzzed_inputs_never_crash_any_command(campaign):
    shown = "\n".join(f.report() for f in campaign.failures[:8])
    assert not campaign.failures, (
        f"{len(campaign.failures)} fuzzed run(s) broke the CLI's contract (replay one with "
        f"`python tests/fuzz/long_run.py --profile ci --seed {SEED} --only N`, shrink it with --minimize N):\n"
        f"{shown}\n{summary(campaign)}")


def test_every_command_and_variant_is_fuzzed_and_some_inputs_succeed(campaign):
    """The generators still reach every command and its success path (a grammar or builtin change
    that made every input fail early would leave the later stages unfuzzed)."""
    if INPUTS < 1000:
        pytest.skip("the shares are judged on 1,000 inputs or more")
    assert sum(campaign.inputs.values()) == INPUTS
    labels = [label_of("compile", v) for v in COMPILE_VARIANTS] + [f"ir --stage {s}" for s in STAGES]
    labels += [label_of("graph", v) for v in GRAPH_VARIANTS]
    for label in labels:
        assert campaign.status[label][0] >= 5, f"{label}: too few runs succeed\n{summary(campaign)}"
        assert campaign.status[label][1] >= 5, f"{label}: too few runs fail\n{summary(campaign)}"
    checks = {k: v for k, v in campaign.status.items() if k.startswith("check")}
    assert sum(c[0] for c in checks.values()) >= 3 and sum(c[1] for c in checks.values()) >= 3, summary(campaign)


def test_inputs_are_reproducible():
    for i in (0, 1, 7, 40, 999):
        assert make_input(SEED, i).data == make_input(SEED, i).data


# ---- the oracle catches what it is there to catch ---------------------------------------------------
def test_an_internal_error_is_a_problem(tmp_path, monkeypatch):
    from tapeless.compiler.tools import cli

    src = tmp_path / "p.tl"
    src.write_text(GOOD)
    monkeypatch.setattr(cli, "compile_file", lambda *a, **k: {}["boom"])
    run = run_cli(["compile", str(src), "-o", str(tmp_path / "o.py")], 10)
    assert run.status == 2
    assert "exit status 2" in judge(run, "compile", str(src), GOOD, {"module": str(tmp_path / "o.py")},
                                    {"p.tl"}, {"p.tl"}).problems[0]


def test_unlocated_or_misplaced_diagnostics_are_problems():
    assert judge_diagnostics("p.tl", "p.tl:1:5: error: bad\n    x\n1 error\n", "fn f(x) {}") == []
    assert judge_diagnostics("p.tl", "tapeless: error: p.tl: no such file\n", "") == []
    assert judge_diagnostics("p.tl", "error: something went wrong\n", "fn f") != []
    assert "line 3" in judge_diagnostics("p.tl", "p.tl:3:1: error: bad\n1 error\n", "one line")[0]
    assert "1:40" in judge_diagnostics("p.tl", "p.tl:1:40: error: bad\n1 error\n", "short")[0]


def test_injected_code_and_foreign_imports_are_problems():
    assert judge_module("import numpy as np\n\ndef f(x):\n    return np.exp(x)\n", "m.py", "numpy", "") == []
    injected = f"import numpy as np\n__tapeless_source__ = ''\n{CANARY}()\n"
    assert any("unexpected top-level" in p for p in judge_module(injected, "m.py", "numpy", ""))
    inside = f"def f(x):\n    {CANARY}()\n    return x\n"
    assert any("became code" in p for p in judge_module(inside, "m.py", "numpy", ""))
    assert any("imports subprocess" in p for p in judge_module("import subprocess\n", "m.py", "numpy", ""))
    assert any("does not compile" in p for p in judge_module("def f(:\n", "m.py", "numpy", ""))


def test_stray_files_and_tracebacks_are_problems(tmp_path):
    run = Run(["compile"], 1, "", "Traceback (most recent call last):\n  ...\np.tl:1:1: error: x\n1 error\n", 0.1)
    problems = judge(run, "compile", "p.tl", "x", {"module": "o.py"}, {"p.tl", ".o.py.123.tmp"}, {"p.tl"}).problems
    assert any("traceback" in p for p in problems) and any("files left behind" in p for p in problems)


# ---- a few runs through the installed command, in its own process ------------------------------------
@pytest.mark.parametrize("index, command", [(4, ["compile", "-O2"]), (3, ["ir", "--stage", "optimized"]),
                                            (1, ["graph", "--fn", "layer"]), (20, ["check"])])
def test_subprocess_smoke(index, command, tmp_path):
    inp = make_input(SEED, index)
    src = tmp_path / "prog.tl"
    src.write_bytes(inp.data if isinstance(inp.data, bytes) else inp.data.encode())
    argv = [command[0], str(src), *command[1:]]
    outputs = {}
    if command[0] == "compile":
        outputs["module"] = str(tmp_path / "out.py")
        argv += ["-o", outputs["module"]]
    r = subprocess.run([sys.executable, "-m", "tapeless.compiler.tools.cli", *argv], capture_output=True, text=True,
                       timeout=300, check=False)
    run = Run(argv, r.returncode, r.stdout, r.stderr, 0.0)
    verdict = judge(run, command[0], str(src), inp.data, outputs, {p.name for p in tmp_path.iterdir()}, {"prog.tl"})
    assert not verdict.problems, (inp.describe(), argv, verdict.problems, r.stderr[-800:])
