"""Golden files for the corpus: typed, adjoint and optimized IR and generated source
(NumPy at the default -O1; CuPy and numba for two each).

Regenerate on purpose only: `pytest tests/test_golden.py --update-golden`, then read the diff.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tapeless.compiler import compile_source, stage_text
from tapeless.compiler.core.source import SourceFile

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.tl"))
GOLDEN = HERE / "golden"
CUPY_CASES = {"mlp", "masked"}
NUMBA_CASES = {"mlp", "reductions"}  # (compiled only: numba itself is not needed to write the text)


def outputs(path: Path) -> dict[str, str]:
    source = SourceFile.from_text(f"cases/{path.name}", path.read_text())
    out = {
        "typed.txt": stage_text(source, "typed"),
        "adjoint.txt": stage_text(source, "adjoint"),
        "optimized.txt": stage_text(source, "optimized"),
        "numpy.py": compile_source(source, backend="numpy"),
    }
    if path.stem in CUPY_CASES:
        out["cupy.py"] = compile_source(source, backend="cupy")
    if path.stem in NUMBA_CASES:
        out["numba.py"] = compile_source(source, backend="numba")
    return out


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden(path: Path, update_golden: bool):
    for suffix, text in outputs(path).items():
        golden = GOLDEN / f"{path.stem}.{suffix}"
        if update_golden:
            golden.write_text(text)
            continue
        assert golden.exists(), f"{golden} is missing: run pytest --update-golden and read the diff"
        assert text == golden.read_text(), f"{golden.name} differs from the compiler's output (see git diff " \
                                           "after --update-golden if the change is intended)"


def test_every_golden_file_belongs_to_a_case():
    stems = {p.stem for p in CASES}
    for g in GOLDEN.iterdir():
        assert g.name.split(".")[0] in stems, f"stale golden file {g.name}"
