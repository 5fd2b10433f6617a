"""Every derivative the corpus asks for matches PyTorch, from values recorded once.

tests/reference/corpus_refs.json was written by tests/reference/make_corpus_refs.py (run
by hand with torch and tapeless installed) from hand-written PyTorch transcriptions of the
corpus programs (tests/reference/corpus_torch.py); see tests/reference/README.md. Torch is
*not* needed here: this module only reads the recorded numbers.

For every corpus program (tests/corpus.py: tests/cases/*.tl and examples/*.tl except
broken*.tl), compiled as tests/test_corpus.py compiles it:
* a program with a `grad`/`vjp`/`jvp`/`hvp` directive must be recorded, with one entry per
  generated derivative function, and its code must not have changed since recording
  (comments aside); otherwise the test fails and asks for the script to be re-run;
* for each recorded function and seed, the inputs must still be what
  `inputs_for(module, of, text, seed)` draws (SHA-256 of the bytes, dtype and shape)
  and the cotangents (vjp), tangents (jvp, `default_rng(2000 + seed)`) and vectors (hvp,
  `default_rng(4000 + seed)`) the documented rules, so drift in the sampling is caught
  instead of comparing against stale numbers;
* the generated function (`NAME(*args)` for grad, `NAME(*args, *cts)` for vjp,
  `NAME(*args, *tangents)` for jvp, `NAME(*args, *v)` for hvp), the function it
  differentiates (`of`) and, for grad/vjp, the `NAME_fwd`/`NAME_bwd` split must reproduce
  PyTorch's outputs, gradients, output tangents (`torch.func.jvp`) and Hessian-vector
  products (`torch.autograd.functional.hvp`) (dtype, shape, value);
* second order for every `grad`: for each function G of `grad F wrt W [as G]`, the program
  with `hvp F wrt W as G_hvp_ref` appended must reproduce the `hvp_refs` entry (value,
  gradient and Hessian-vector product); a grad function without one fails as above.

Where PyTorch does not define the value. tapeless deliberately gives exactly 0 where
PyTorch gives NaN (docs/language.md, "Where PyTorch and JAX return NaN"): in
tests/cases/masked.tl, `where(x > 0, sqrt(x), 0)` at x <= 0, torch multiplies the zero
cotangent of the untaken branch by sqrt'(x) = NaN. Those entries are recorded as null,
only for functions listed with a reason in corpus_torch.TORCH_UNDEFINED (the entry's
`torch_undefined`); there tapeless must be exactly 0, and everywhere else (where torch is
finite) it is compared as usual. A null in any other entry, or a non-finite tapeless
value anywhere, fails.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from corpus import PROGRAMS, ROOT, inputs_for

REFS_PATH = Path(__file__).parent / "reference" / "corpus_refs.json"
REGENERATE = ("re-run `cd /work/main && <python with torch and tapeless> tests/reference/make_corpus_refs.py` "
              "(a new or changed program first needs its PyTorch transcription in "
              "tests/reference/corpus_torch.py; see tests/reference/README.md) and review the diff of "
              "tests/reference/corpus_refs.json")
SEEDS = ("0", "1")

# Tolerances by the dtype of the compared array: (rtol, atol as a fraction of max|want|).
# f64: the programs are small (sizes 3..6) and both sides evaluate the same formulas in
#   IEEE double; they differ only in summation order (matmul, einsum, reductions) and in
#   libm vs. torch's elementwise kernels. Observed over all f64 functions and both seeds:
#   at most 3.3e-15 relative elementwise (reductions.tl d_x) and 2.5e-16 normwise; most
#   results are bit-identical. rtol 1e-12 / atol 1e-13 * max|want| leave a margin of
#   ~300x for another BLAS or CPU and are still far below any real derivative error.
# f32 (mlp, attention, constructors, layer, linear; d_a of dtypes.tl): eps is 1.2e-7 and
#   the forward passes contain long f32 dot products (784 terms in mlp.tl and layer.tl),
#   which NumPy's BLAS and torch sum in different orders. Against a float64 evaluation of
#   the same inputs (6 seeds) each side is off by at most 1.5e-6 * max|want|, and the
#   largest tapeless-vs-torch difference was 1.7e-6 * max|want| (attention d_q); the
#   recorded seeds give at most 1.35e-6 (layer d_w). Elementwise relative error means
#   nothing for entries that are small cancelling sums (layer d_w has entries 1e-5 of its
#   largest and differs there by 7.6e-3 relative), so the check is normwise:
#   atol 1e-5 * max|want| (about 6x the worst observed) plus rtol 1e-5.
TOLERANCES = {np.dtype(np.float64): (1e-12, 1e-13), np.dtype(np.float32): (1e-5, 1e-5)}
# Per-program loosening, each with its reason: {program: (rtol, atol, reason)}. Empty on purpose.
PROGRAM_TOLERANCES: dict[str, tuple[float, float, str]] = {}
# Jvp output tangents use TOLERANCES (logistic.tl, f32: 8.6e-8 relative observed), and so do
# Hessian-vector products in f64: observed over every hvp function and hvp_ref and both seeds
# at most 7.2e-15 relative (reductions.tl; most bit-identical), apart from the two
# HVP_TOLERANCES below.
# f32 Hessian-vector products get atol 3e-5 * max|want| instead of 1e-5 (HV_TOLERANCES): Hv
# of a long f32 dot product is two of them (X v, then X^T (...)), and the reference itself
# is the less accurate side. layer.tl's Hv (784-term sums, N = 3) differs from PyTorch by
# 8.7e-6 * max|want| (seed 1; the worst of seeds 0-11); against a float64 evaluation of the
# same inputs PyTorch is off by 7.4e-6 and tapeless by 1.3e-6 there. 3e-5 is 3.4x the worst
# observed. (mlp.tl's Hv is ill-conditioned in f32 because its softmax saturates, logits
# ~1000 apart: seeds 3 and 9 differ by up to 4.4e-4 between the two, each as far from
# float64; the recorded seeds 0 and 1 agree to 7.1e-7 where they were recorded, and its
# Hv wrt b2, ~1e-20, needs the absolute tolerance given in HVP_TOLERANCES.)
HV_TOLERANCES = {np.dtype(np.float64): TOLERANCES[np.dtype(np.float64)], np.dtype(np.float32): (1e-5, 3e-5)}
# Three Hessian-vector products need their own absolute tolerance, applied to their Hv
# comparisons only: {(program, function): (rtol, absolute atol, reason[, the wrt names it is
# for; all when absent])}.
HVP_TOLERANCES: dict[tuple[str, str], tuple[float, float, str]] = {
    ("tests/cases/losses.tl", "losses_grad_hvp_ref"): (
        1e-12, 1e-9,
        "torch's own error, not tapeless': PyTorch's double backward of binary_cross_entropy "
        "divides by (p + 1e-12)^2 (1 - p + 1e-12)^2 instead of p^2 (1 - p)^2 (checked: torch's "
        "d2/dp2 equals (p^2 - 2py + y) / ((p + eps)^2 (1 - p + eps)^2) to 1e-16 and differs from "
        "y / p^2 + (1 - y) / (1 - p)^2 by 4e-11 at p = 0.05), so each Hessian entry is off by "
        "about 2e-12 (1/p + 1/(1 - p)) relative, and more where H_pp v_p and H_py v_y cancel. "
        "Against a 50-digit mpmath evaluation tapeless's Hv wrt p is exact to 4.3e-15, torch's "
        "off by 3.2e-10 relative (1.8e-10 absolute on |Hv| <= 10; seed 0). atol 1e-9 absolute "
        "(1e-10 of max|Hv|) covers it; rtol stays 1e-12."),
    ("tests/cases/multi.tl", "use_polar_grad_hvp_ref"): (
        1e-12, 1e-14,
        "the Hessian is exactly 0: use_polar is sum(r * (y / r)) = sum(y). tapeless gives exact "
        "zeros; torch's double backward leaves rounding noise (at most 4e-16, from cancelling "
        "terms of size ~1, the size of the gradient), so a tolerance relative to max|Hv| (noise) "
        "means nothing; 1e-14 absolute is 1e-14 relative to the gradient."),
    ("tests/cases/mlp.tl", "mlp_grad_hvp_ref"): (
        1e-5, 1e-4,
        "Hv wrt b2 is a saturated softmax's residue: at seed 0 its one non-zero entry is "
        "-8.68e-20 (a class probability ~1e-20 times the tangent; seed 1 gives exact zeros), so "
        "atol relative to max|Hv wrt b2| means nothing. Its float32 value moves with the "
        "rounding of logits ~500 by the BLAS kernel: on a SkylakeX OpenBLAS 0.3.31 machine "
        "(2026-12-01) tapeless gives -8.6766e-20, PyTorch -8.6755e-20 (1.2e-4 relative), with "
        "tapeless's code unchanged from the machine the reference passed on to 7e-7. The other "
        "Hv arrays (max |Hv| 3 to 48) keep HV_TOLERANCES (9.6e-6 absolute at most there); for b2, "
        "1e-4 absolute is 3e-5 of the smallest of those scales, the bound they get.",
        ("b2",)),
}

# Comparisons that fail because of a confirmed compiler bug: {(program, function): reason}.
# Marked xfail(strict=True), so the test fails (XPASS) once the bug is fixed.
KNOWN_BUGS: dict[tuple[str, str], str] = {}
KNOWN_SPLIT_BUGS: dict[tuple[str, str], str] = {}
KNOWN_HVP_REF_BUGS: dict[tuple[str, str], str] = {}  # keyed by (program, G_hvp_ref)

DERIVATIVE_KINDS = ("grad", "vjp", "jvp", "hvp")
TANGENT_SEED_OFFSET, HVP_VECTOR_SEED_OFFSET = 2000, 4000


# ---------------------------------------------------------------- helpers (copies of make_corpus_refs.py's)
def code_sha256(text: str) -> str:
    """SHA-256 of the program without comments and blank lines, each line stripped."""
    lines = [re.sub(r"#.*", "", line).strip() for line in text.splitlines()]
    return hashlib.sha256("\n".join(l for l in lines if l).encode()).hexdigest()


def array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def expected_cotangents(outputs: list[dict], seed: int) -> list[np.ndarray]:
    """The rule documented in make_corpus_refs.py and recorded in the header."""
    rng = np.random.default_rng(1000 + seed)
    cts = []
    for o in outputs:
        dtype, shape = np.dtype(o["dtype"]), tuple(o["shape"])
        cts.append(np.asarray(rng.standard_normal(shape)).astype(dtype) if dtype.kind == "f"
                   else np.zeros(shape, dtype))
    return cts


def expected_normals(inputs: list[np.ndarray], offset: int, seed: int) -> list[np.ndarray]:
    """Tangents (offset 2000) and hvp vectors (offset 4000): rng = default_rng(offset + seed),
    then per wrt input in order rng.standard_normal(shape).astype(dtype)."""
    rng = np.random.default_rng(offset + seed)
    return [np.asarray(rng.standard_normal(a.shape)).astype(a.dtype) for a in inputs]


def hvp_ref_directive(m, grad_name: str) -> tuple[str, str]:
    """(name, directive) of the extra hvp recorded for the grad function `grad_name`
    (a copy of make_corpus_refs.py's)."""
    meta = m.__tapeless__[grad_name]
    name = f"{source_name(m, grad_name)}_hvp_ref"
    return name, f"hvp {source_name(m, meta['of'])} wrt {', '.join(meta['wrt'])} as {name}"


def source_name(m, name: str) -> str:
    """A generated function's name in the .tl source (`lambda` for `lambda_`)."""
    return getattr(m, name).__doc__.splitlines()[0].split("(")[0].strip()


def dec(d: dict) -> np.ndarray:
    """A recorded array; null (a non-finite PyTorch value) becomes NaN."""
    return np.array(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def program_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------- the reference file
_REFS = None


def refs() -> dict:
    global _REFS
    if _REFS is None:
        if not REFS_PATH.exists():
            pytest.fail(f"{REFS_PATH} is missing; {REGENERATE}", pytrace=False)
        _REFS = json.loads(REFS_PATH.read_text())
    return _REFS


def _recorded_functions(kinds=DERIVATIVE_KINDS, section: str = "programs") -> list:
    """(program, function) pairs in the reference file, read when collecting."""
    try:
        data = json.loads(REFS_PATH.read_text())
    except (OSError, ValueError):
        return []
    return [(prog, name) for prog, p in data.get(section, {}).items()
            for name, f in p.get("functions", {}).items() if f.get("kind") in kinds]


def _params(known_bugs: dict, kinds=DERIVATIVE_KINDS, section: str = "programs") -> list:
    out = []
    for prog, name in _recorded_functions(kinds, section):
        marks = ([pytest.mark.xfail(strict=True, reason=known_bugs[(prog, name)])]
                 if (prog, name) in known_bugs else [])
        out.append(pytest.param(prog, name, id=f"{prog}::{name}", marks=marks))
    return out


def directive_functions(m) -> list[str]:
    return [k for k, v in m.__tapeless__.items() if v["kind"] in DERIVATIVE_KINDS]


def test_reference_file_header():
    header = refs()["header"]
    assert header["torch_version"] and header["date"] and header["command"]
    assert [str(s) for s in header["seeds"]] == list(SEEDS)


def test_no_stale_programs():
    """Every recorded program is still in the corpus."""
    names = {program_name(p) for p in PROGRAMS}
    stale = sorted(set(refs()["programs"]) - names)
    assert not stale, f"recorded programs no longer in the corpus: {stale}; {REGENERATE}"
    stale = sorted(set(refs().get("hvp_refs", {})) - names)
    assert not stale, f"hvp_refs: recorded programs no longer in the corpus: {stale}; {REGENERATE}"


@pytest.mark.parametrize("path", PROGRAMS, ids=program_name)
def test_every_derivative_is_recorded(path, tl):
    """A program that asks for a derivative has a recorded PyTorch reference for each
    generated grad/vjp function, taken from its current code."""
    program, text = program_name(path), path.read_text()
    m = tl(text, path=path.name)
    names = directive_functions(m)
    entry = refs()["programs"].get(program)
    if entry is None:
        if names:
            pytest.fail(f"{program} asks for derivatives ({', '.join(names)}) but no PyTorch reference "
                        f"is recorded; {REGENERATE}", pytrace=False)
        return
    if entry["code_sha256"] != code_sha256(text):
        pytest.fail(f"{program} changed since its PyTorch reference was recorded; {REGENERATE}", pytrace=False)
    missing = [n for n in names if n not in entry["functions"]]
    if missing:
        pytest.fail(f"{program}: no PyTorch reference is recorded for {missing}; {REGENERATE}", pytrace=False)
    stale = [n for n in entry["functions"] if n not in names]
    assert not stale, f"{program}: recorded functions {stale} are no longer generated; {REGENERATE}"

    # second order for every grad: the hvp_refs entry of each grad function
    grads = [k for k in names if m.__tapeless__[k]["kind"] == "grad"]
    refs_entry = refs().get("hvp_refs", {}).get(program)
    if not grads:
        assert refs_entry is None, f"{program} has no grad directive but hvp_refs are recorded; {REGENERATE}"
        return
    if refs_entry is None or refs_entry["code_sha256"] != code_sha256(text):
        pytest.fail(f"{program}: no (current) PyTorch hvp reference is recorded for its grad functions "
                    f"{grads}; {REGENERATE}", pytrace=False)
    wanted = {}
    for g in grads:
        ref, directive = hvp_ref_directive(m, g)
        wanted[ref] = (g, directive)
    recorded = {k: (v["grad_function"], v["directive"]) for k, v in refs_entry["functions"].items()}
    if recorded != wanted:
        pytest.fail(f"{program}: the recorded hvp_refs {recorded} differ from those of its grad directives "
                    f"{wanted}; {REGENERATE}", pytrace=False)


# ---------------------------------------------------------------- comparisons
def assert_matches(got, want: dict, what: str, program: str, allow_undefined: bool = False,
                   absolute: tuple[float, float] | None = None, tolerances: dict | None = None):
    """Compare a tapeless array with a recorded PyTorch array (full or sampled). `tolerances`
    replaces TOLERANCES (HV_TOLERANCES for Hessian-vector products); `absolute` = (rtol, atol)
    replaces both, atol then being absolute (HVP_TOLERANCES)."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(want["dtype"]), f"{what}: dtype {got.dtype}, PyTorch gives {want['dtype']}"
    assert list(got.shape) == want["shape"], f"{what}: shape {got.shape}, PyTorch gives {tuple(want['shape'])}"
    if got.dtype.kind == "f":
        assert np.all(np.isfinite(got)), f"{what}: tapeless gives non-finite values {got!r}"
    rtol, atol = (tolerances or TOLERANCES).get(got.dtype, (0, 0))
    if program in PROGRAM_TOLERANCES:
        rtol, atol, _reason = PROGRAM_TOLERANCES[program]
    torch_version = refs()["header"]["torch_version"]
    if absolute is not None:
        assert "sample" not in want, f"{what}: an absolute tolerance for a sampled array"
        rtol = absolute[0]

    if "sample" in want:  # a large array: every stride-th element, plus its sum and norm
        stride = want["sample_stride"]
        sample = np.array(want["sample"], dtype=want["dtype"])
        got_sample = got.reshape(-1)[::stride]
        np.testing.assert_allclose(got_sample, sample, rtol=rtol, atol=atol * float(np.max(np.abs(sample))),
                                   err_msg=f"{what} (every {stride}th element): tapeless vs PyTorch {torch_version}")
        g64 = got.astype(np.float64).reshape(-1)
        norm = float(np.linalg.norm(g64))
        assert abs(norm - want["norm"]) <= rtol * want["norm"], (
            f"{what}: 2-norm {norm!r}, PyTorch {torch_version} gives {want['norm']!r}")
        # |sum(got - want)| <= sqrt(size) * |got - want|_2, and the difference is at most
        # rtol (relative, normwise) of the array
        bound = rtol * math.sqrt(got.size) * want["norm"]
        assert abs(float(np.sum(g64)) - want["sum"]) <= bound, (
            f"{what}: sum {float(np.sum(g64))!r}, PyTorch {torch_version} gives {want['sum']!r}")
        return

    w = dec(want)
    undefined = ~np.isfinite(w) if w.dtype.kind == "f" else np.zeros(w.shape, bool)
    if undefined.any():
        assert allow_undefined, (
            f"{what}: the recorded PyTorch value is not finite at {np.argwhere(undefined).tolist()} but the "
            f"function is not listed in corpus_torch.TORCH_UNDEFINED; {REGENERATE}")
        # PyTorch gives NaN there; tapeless deliberately gives exactly 0 (docs/language.md)
        np.testing.assert_array_equal(got[undefined], 0, err_msg=f"{what}: where PyTorch is undefined "
                                      "(NaN), tapeless must give exactly 0")
    defined = ~undefined
    scale = float(np.max(np.abs(w[defined]), initial=0.0))
    atol = absolute[1] if absolute is not None else atol * scale
    np.testing.assert_allclose(got[defined], w[defined], rtol=rtol, atol=atol,
                               err_msg=f"{what}: tapeless vs PyTorch {torch_version}"
                                       + (" (HVP_TOLERANCES)" if absolute is not None else ""))


def _load_function(program: str, name: str, tl):
    """(module, text, recorded entry) for one recorded function, checked against the
    current program and compiled module."""
    path = ROOT / program
    if not path.exists() or path not in PROGRAMS:
        pytest.fail(f"{program} is recorded but no longer in the corpus; {REGENERATE}", pytrace=False)
    text = path.read_text()
    entry = refs()["programs"][program]
    if entry["code_sha256"] != code_sha256(text):
        pytest.fail(f"{program} changed since its PyTorch reference was recorded; {REGENERATE}", pytrace=False)
    m = tl(text, path=path.name)
    rec = entry["functions"][name]
    meta = m.__tapeless__.get(name)
    if meta is None or meta["kind"] not in DERIVATIVE_KINDS:
        pytest.fail(f"{program}: {name} is recorded but no longer generated; {REGENERATE}", pytrace=False)
    current = {"kind": meta["kind"], "of": meta["of"], "wrt": list(meta["wrt"]), "params": list(meta["params"]),
               "n_outputs_of": m.__tapeless__[meta["of"]]["n_outputs"]}
    recorded = {k: rec[k] for k in current}
    if recorded != current:
        pytest.fail(f"{program}: {name} changed since its PyTorch reference was recorded "
                    f"(recorded {recorded}, now {current}); {REGENERATE}", pytrace=False)
    missing = [s for s in SEEDS if s not in rec["seeds"]]
    if missing:
        pytest.fail(f"{program}: {name}: seeds {missing} not recorded; {REGENERATE}", pytrace=False)
    if rec.get("torch_undefined") is not None:
        assert rec["torch_undefined"].strip(), f"{program}: {name}: torch_undefined needs its reason"
    return m, text, rec


def _arguments(m, text: str, rec: dict, seed: str, where: str):
    """The inputs as the corpus draws them today, checked against the recorded ones, and
    the cotangents (vjp) checked against the rule."""
    of_params = list(m.__tapeless__[rec["of"]]["params"])
    args = inputs_for(m, rec["of"], text, int(seed))
    r = rec["seeds"][seed]
    assert list(r["inputs"]) == of_params, f"{where}: recorded parameters differ; {REGENERATE}"
    for k, a in zip(of_params, args):
        a = np.asarray(a)
        ri = r["inputs"][k]
        same = (str(a.dtype) == ri["dtype"] and list(a.shape) == ri["shape"] and array_sha256(a) == ri["sha256"])
        assert same, f"{where}: input {k} drawn by inputs_for differs from the recorded one; {REGENERATE}"
        if "data" in ri:
            assert np.array_equal(dec(ri), a), f"{where}: recorded data of input {k} does not match its sha256"
    cts = []
    if rec["kind"] == "vjp":
        cts = [dec(c) for c in r["cotangents"]]
        assert len(cts) == rec["n_outputs_of"]
        for i, (c, e) in enumerate(zip(cts, expected_cotangents(r["outputs"], int(seed)))):
            assert c.dtype == e.dtype and np.array_equal(c, e), f"{where}: cotangent {i} not drawn by the rule"
    elif rec["kind"] in ("jvp", "hvp"):
        # tangents / vectors: drawn by the rule today, stored like inputs (sha256, data if small)
        key, offset, what = (("tangents", TANGENT_SEED_OFFSET, "tangent") if rec["kind"] == "jvp"
                             else ("v", HVP_VECTOR_SEED_OFFSET, "hvp vector"))
        wrt_args = [np.asarray(args[of_params.index(k)]) for k in rec["wrt"]]
        cts = expected_normals(wrt_args, offset, int(seed))
        assert list(r[key]) == rec["wrt"], f"{where}: recorded {key} are not one per wrt name; {REGENERATE}"
        for k, e in zip(rec["wrt"], cts):
            rv = r[key][k]
            same = (str(e.dtype) == rv["dtype"] and list(e.shape) == rv["shape"] and array_sha256(e) == rv["sha256"])
            assert same, f"{where}: the recorded {what} for {k} was not drawn by the rule; {REGENERATE}"
            if "data" in rv:
                assert np.array_equal(dec(rv), e), f"{where}: recorded data of the {what} for {k} does not match its sha256"
    return args, cts


def _split(result, n_outputs: int, n_grads: int, where: str):
    result = result if isinstance(result, tuple) else (result,)
    assert len(result) == n_outputs + n_grads, (
        f"{where}: returned {len(result)} values, expected {n_outputs} outputs + {n_grads} gradients")
    return list(result[:n_outputs]), list(result[n_outputs:])


@pytest.mark.parametrize(("program", "name"), _params(KNOWN_BUGS))
def test_matches_pytorch(program, name, tl):
    """The generated grad/vjp/jvp/hvp function and the function it differentiates, against PyTorch."""
    m, text, rec = _load_function(program, name, tl)
    _compare(m, text, rec, program, name)


def _compare(m, text: str, rec: dict, program: str, name: str):
    undefined_ok = rec.get("torch_undefined") is not None
    n_out, wrt = rec["n_outputs_of"], rec["wrt"]
    for seed in SEEDS:
        where = f"{program} {name} seed {seed}"
        r = rec["seeds"][seed]
        args, cts = _arguments(m, text, rec, seed, where)

        # the function differentiated, alone (for a directive on a derivative function, `of`
        # returns the value and gradients)
        outs = getattr(m, rec["of"])(*args)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        assert len(outs) == n_out, f"{where}: {rec['of']} returned {len(outs)} values, expected {n_out}"
        for i, (g, w) in enumerate(zip(outs, r["outputs"])):
            assert_matches(g, w, f"{where}: {rec['of']} output {i}", program)

        # the generated derivative function
        result = getattr(m, name)(*args, *cts)
        if rec["kind"] == "jvp":  # (*outputs, *output_tangents)
            got_out, got_tangents = _split(result, n_out, n_out, where)
            for i, (g, w) in enumerate(zip(got_out, r["outputs"])):
                assert_matches(g, w, f"{where}: output {i}", program)
            for i, (g, w) in enumerate(zip(got_tangents, r["output_tangents"])):
                assert_matches(g, w, f"{where}: output tangent {i}", program, allow_undefined=undefined_ok)
            continue
        n_hv = len(wrt) if rec["kind"] == "hvp" else 0  # hvp: (value, *d_wrt, *hv_wrt)
        got_out, got_grads = _split(result, n_out, len(wrt) + n_hv, where)
        for i, (g, w) in enumerate(zip(got_out, r["outputs"])):
            assert_matches(g, w, f"{where}: output {i}", program)
        for k, g in zip(wrt, got_grads):
            assert_matches(g, r["grads"][k], f"{where}: gradient wrt {k}", program, allow_undefined=undefined_ok)
        special = HVP_TOLERANCES.get((program, source_name(m, name)))
        for k, g in zip(wrt, got_grads[len(wrt):]):
            own = special is not None and (len(special) < 4 or k in special[3])
            assert_matches(g, r["hvp"][k], f"{where}: Hessian-vector product wrt {k}", program,
                           allow_undefined=undefined_ok, absolute=special[:2] if own else None,
                           tolerances=HV_TOLERANCES)


@pytest.mark.parametrize(("program", "name"), _params({**KNOWN_BUGS, **KNOWN_SPLIT_BUGS}, kinds=("grad", "vjp")))
def test_fwd_bwd_split_matches_pytorch(program, name, tl):
    """NAME_fwd then NAME_bwd(residuals[, *cts]) give PyTorch's outputs and gradients too."""
    m, text, rec = _load_function(program, name, tl)
    undefined_ok = rec.get("torch_undefined") is not None
    n_out, wrt = rec["n_outputs_of"], rec["wrt"]
    for seed in SEEDS:
        where = f"{program} {name}_fwd/_bwd seed {seed}"
        r = rec["seeds"][seed]
        args, cts = _arguments(m, text, rec, seed, where)
        outs, residuals = getattr(m, f"{name}_fwd")(*args)
        outs = list(outs) if n_out > 1 else [outs]
        for i, (g, w) in enumerate(zip(outs, r["outputs"])):
            assert_matches(g, w, f"{where}: output {i}", program)
        grads = getattr(m, f"{name}_bwd")(residuals, *cts)
        assert isinstance(grads, tuple) and len(grads) == len(wrt), f"{where}: _bwd returned {grads!r}"
        for k, g in zip(wrt, grads):
            assert_matches(g, r["grads"][k], f"{where}: gradient wrt {k}", program, allow_undefined=undefined_ok)


@pytest.mark.parametrize(("program", "name"), _params(KNOWN_HVP_REF_BUGS, kinds=("hvp",), section="hvp_refs"))
def test_hvp_ref_matches_pytorch(program, name, tl):
    """Second order for every grad directive: `hvp F wrt W as G_hvp_ref` appended to the
    program gives torch.autograd.functional.hvp's value, gradient and Hessian-vector product."""
    path = ROOT / program
    if not path.exists() or path not in PROGRAMS:
        pytest.fail(f"{program} is recorded but no longer in the corpus; {REGENERATE}", pytrace=False)
    text = path.read_text()
    entry = refs()["hvp_refs"][program]
    if entry["code_sha256"] != code_sha256(text):
        pytest.fail(f"{program} changed since its PyTorch hvp reference was recorded; {REGENERATE}", pytrace=False)
    rec = entry["functions"][name]
    m0 = tl(text, path=path.name)
    g = rec["grad_function"]
    if m0.__tapeless__.get(g, {}).get("kind") != "grad" or hvp_ref_directive(m0, g) != (name, rec["directive"]):
        pytest.fail(f"{program}: {name} ({rec['directive']!r}) no longer matches a grad directive; {REGENERATE}",
                    pytrace=False)
    m = tl(f"{text}\n{rec['directive']}\n", path=path.name)
    (generated,) = [k for k, v in m.__tapeless__.items() if v["kind"] == "hvp" and source_name(m, k) == name]
    meta = m.__tapeless__[generated]
    current = {"kind": meta["kind"], "of": meta["of"], "wrt": list(meta["wrt"]), "params": list(meta["params"]),
               "n_outputs_of": m.__tapeless__[meta["of"]]["n_outputs"]}
    recorded = {k: rec[k] for k in current}
    if recorded != current:
        pytest.fail(f"{program}: {name} changed since its PyTorch reference was recorded "
                    f"(recorded {recorded}, now {current}); {REGENERATE}", pytrace=False)
    missing = [s for s in SEEDS if s not in rec["seeds"]]
    if missing:
        pytest.fail(f"{program}: {name}: seeds {missing} not recorded; {REGENERATE}", pytrace=False)
    _compare(m, text, rec, program, generated)


def test_hvp_tolerances_are_used():
    """Every HVP_TOLERANCES entry names a recorded hvp function and carries its reason."""
    recorded = set(_recorded_functions(("hvp",))) | set(_recorded_functions(("hvp",), "hvp_refs"))
    for key, (_rtol, _atol, reason, *only) in HVP_TOLERANCES.items():
        assert key in recorded, f"HVP_TOLERANCES entry {key} is not a recorded hvp function"
        assert reason.strip(), f"HVP_TOLERANCES entry {key} needs its reason"
        if only:  # the wrt names it is for: each one the function is differentiated with respect to
            section = refs()["hvp_refs" if key[1].endswith("_hvp_ref") else "programs"]
            rec = section.get(key[0], {}).get("functions", {}).get(key[1])
            assert rec is not None and set(only[0]) <= set(rec["wrt"]), (
                f"HVP_TOLERANCES entry {key} names {only[0]}, not all among what it differentiates")
