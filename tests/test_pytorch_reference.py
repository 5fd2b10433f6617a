"""Every built-in's value and VJP against PyTorch, from values recorded once.

tests/reference/torch_refs.json was written by tests/reference/make_torch_refs.py
(run by hand with torch installed; see tests/reference/README.md). Torch is *not*
needed here: this module only reads the recorded numbers.

For each catalogue case with a `torch` expression and each recorded seed:
* the recorded inputs must equal `case.inputs(seed)` and the recorded cotangents the
  documented rule (so a change to the catalogue or its sampling is caught, not silently
  compared against stale numbers);
* `m.f(*inputs)` and `m.f_vjp(*inputs, *cotangents)` must reproduce PyTorch's outputs
  and `torch.autograd.grad` results (dtype, shape and value).
A catalogue case without a recorded entry fails, asking for the script to be re-run.

Forward mode and second order, from the `jvp` and `hvp` sections of the same file:
* `m.f_jvp(*inputs, *tangents)` (`case.source()` emits `jvp f wrt ...`) must return
  `torch.func.jvp`'s outputs and output tangents; the recorded tangents must be the
  documented rule (`default_rng(2000 + seed)`, one standard normal per wrt parameter in
  its dtype);
* each case is wrapped into a scalar `g(*params, c_out0, ...) = sum(f(...) * c_out0) + ...`
  (the weights are parameters: `.tl` has no constant arrays) and compiled with
  `hvp g wrt <the case's wrt>`; `m.g_hvp(*inputs, *c, *v)` must return
  `torch.autograd.functional.hvp`'s value, gradient and Hessian-vector product, with `c`
  (`default_rng(3000 + seed)`, per output) and `v` (`default_rng(4000 + seed)`, per wrt
  parameter) checked against their rules. Piecewise-linear cases (relu, abs, clip, max,
  ...) have a zero Hessian almost everywhere; torch gives 0 and so must tapeless.

The catalogue draws inputs away from the points where tapeless deliberately differs
from PyTorch (docs/language.md, "Conventions": masked branches give 0 rather than NaN, ...), so any
mismatch here is a real finding.

The second half replays the PyTorch tutorial walkthroughs (polynomial, B = 5A, one
layer with BCE, .grad accumulation and zero_grad, detach) as small `.tl` programs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalogue import CASES, Case

REFS_PATH = Path(__file__).parent / "reference" / "torch_refs.json"
REGENERATE = ("re-run `cd /work/main && <python with torch> tests/reference/make_torch_refs.py` "
              "(see tests/reference/README.md) and review the diff of tests/reference/torch_refs.json")
SEEDS = ("0", "1")

# Tolerances by the dtype of the compared array: (rtol, atol as a fraction of max|want|).
# f64: both sides evaluate the same formulas in IEEE double; the only differences are
#   summation order (matmul / einsum / reductions) and libm vs. torch's own elementwise
#   kernels. Observed: at most 2e-14 relative (matmul_batch), most results bit-identical.
# f32 (mean_f32, the one-layer walkthrough): eps is 1.2e-7, and single elements can be
#   tens of ulp apart where the gradient is a cancelling difference: 1 - tanh(a)^2 near
#   |a| ~ 2.5 from a tanh that differs by 1 ulp between NumPy and torch, and the batch
#   sum of (sigmoid(z) - y) * x. Observed: 2.5e-6 / 6.2e-6 relative on such elements,
#   below 1e-7 * max|want| absolute. Hence elementwise rtol 1e-5 or normwise 1e-6.
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-13), np.dtype(np.float32): (1e-5, 1e-6)}
# Forward mode and second order use the same tolerances. Observed over all cases, both seeds:
#   jvp output tangents: f64 at most 2.0e-13 relative elementwise (einsum_ellipsis, on a
#     small cancelling entry: 1.3e-16 normwise) and 1.4e-15 normwise; mean_f32 9.2e-8.
#   hvp (gradient, Hv): f64 at most 2.5e-14 relative (einsum_bcast) apart from binary_cross_entropy,
#     whose Hv wrt p differs by 3.8e-11 relative: that is torch's error, not tapeless'
#     (torch's double backward of binary_cross_entropy divides by (p + 1e-12)^2 (1 - p + 1e-12)^2;
#     against a 50-digit mpmath evaluation tapeless is exact to 4.2e-16, torch off by 3.8e-11,
#     bounded by about 2e-12 (1/p + 1/(1 - p)) <= 4.3e-11 on the case's domain p in
#     [0.05, 0.95], so rtol 1e-10 holds). mean_f32: 2.5e-6 relative, 2.1e-7 normwise.
#   Piecewise-linear cases (relu, abs, clip, maximum, max, ...) have Hv exactly 0 on both sides.
# Per-case loosening, each with its reason: {case name: (rtol, atol, reason)}.
_TRIGAMMA = ("torch's trigamma (polygamma(1, x), the derivative of digamma) is off by up to 4.8e-10 relative "
             "against a 40-digit mpmath evaluation on [0.5, 2]; scipy.special's, which tapeless calls, by 2e-16")
CASE_TOLERANCES: dict[str, tuple[float, float, str]] = {
    "lgamma": (2e-9, 2e-9, _TRIGAMMA),
    "polygamma": (2e-9, 2e-9, _TRIGAMMA),
    # (its hvp is torch.func's forward over reverse: autograd.functional.hvp gives NaN, see
    # make_torch_refs.FORWARD_OVER_REVERSE)
    "logcumsumexp": (2e-9, 2e-12, "torch's forward-over-reverse Hv of logcumsumexp is off by up to 1.2e-9 "
                     "relative (6e-13 normwise) on a small cancelling entry: against a 50-digit mpmath "
                     "evaluation tapeless is exact to 1e-14 there"),
}


def _load() -> dict:
    if not REFS_PATH.exists():
        pytest.fail(f"{REFS_PATH} is missing; {REGENERATE}", pytrace=False)
    return json.loads(REFS_PATH.read_text())


_REFS = None


def refs() -> dict:
    global _REFS
    if _REFS is None:
        _REFS = _load()
    return _REFS


def dec(d: dict) -> np.ndarray:
    return np.array(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def expected_cotangents(outputs: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """The rule documented in make_torch_refs.py and recorded in the header."""
    rng = np.random.default_rng(1000 + seed)
    return [np.asarray(rng.standard_normal(o.shape)).astype(o.dtype) for o in outputs]


def split_vjp(result, n_outputs: int, n_grads: int):
    """(*outputs, *grads) -> (outputs, grads); also accepts the grads as one trailing tuple."""
    result = result if isinstance(result, tuple) else (result,)
    if len(result) == n_outputs + 1 and isinstance(result[-1], tuple):
        result = result[:-1] + result[-1]
    assert len(result) == n_outputs + n_grads, (
        f"vjp returned {len(result)} values, expected {n_outputs} outputs + {n_grads} gradients")
    return list(result[:n_outputs]), list(result[n_outputs:])


def assert_matches(got, want: np.ndarray, what: str, case_name: str | None = None):
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, PyTorch gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, PyTorch gives {want.shape}"
    rtol, atol = TOLERANCES.get(want.dtype, (0, 0))
    if case_name in CASE_TOLERANCES:
        rtol, atol, _reason = CASE_TOLERANCES[case_name]
    atol = atol * float(np.max(np.abs(want), initial=0.0))  # normwise: relative to the largest entry
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                               err_msg=f"{what}: tapeless vs PyTorch {refs()['header']['torch_version']}")


# ---------------------------------------------------------------- catalogue cases
TORCH_CASES = [c for c in CASES if c.torch]


def test_reference_file_header():
    header = refs()["header"]
    assert header["torch_version"] and header["date"] and header["command"]
    assert [str(s) for s in header["seeds"]] == list(SEEDS)


def test_no_stale_entries():
    """Every recorded case still exists in the catalogue with a torch expression."""
    names = {c.name for c in TORCH_CASES}
    stale = sorted(set(refs()["cases"]) - names)
    assert not stale, f"recorded cases no longer in the catalogue: {stale}; {REGENERATE}"


def _entry(case: Case) -> dict:
    entry = refs()["cases"].get(case.name)
    if entry is None:
        pytest.fail(f"case {case.name!r} has a torch expression but no PyTorch reference is recorded; "
                    f"{REGENERATE}", pytrace=False)
    current = {"torch": case.torch, "params": case.params, "wrt": list(case.grad_params())}
    recorded = {k: entry[k] for k in current}
    if recorded != current:
        pytest.fail(f"case {case.name!r} changed since its PyTorch reference was recorded "
                    f"(recorded {recorded}, now {current}); {REGENERATE}", pytrace=False)
    missing = [s for s in SEEDS if s not in entry["seeds"]]
    if missing:
        pytest.fail(f"case {case.name!r}: seeds {missing} not recorded; {REGENERATE}", pytrace=False)
    return entry


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.name)
def test_matches_pytorch(case: Case, tl):
    entry = _entry(case)
    wrt = case.grad_params()
    m = tl(case.source())
    for seed in SEEDS:
        rec = entry["seeds"][seed]
        where = f"{case.name} seed {seed}"

        # The recorded inputs are what the catalogue draws today.
        inputs = case.inputs(int(seed))
        assert list(rec["inputs"]) == list(inputs), f"{where}: recorded parameters differ; {REGENERATE}"
        for k, v in inputs.items():
            r = dec(rec["inputs"][k])
            assert r.dtype == v.dtype and r.shape == v.shape and np.array_equal(r, v), (
                f"{where}: input {k} drawn by the catalogue differs from the recorded one; {REGENERATE}")

        outputs = [dec(o) for o in rec["outputs"]]
        cts = [dec(c) for c in rec["cotangents"]]
        for i, (c, e) in enumerate(zip(cts, expected_cotangents(outputs, int(seed)))):
            assert c.dtype == e.dtype and np.array_equal(c, e), f"{where}: cotangent {i} not drawn by the rule"
        grads = {k: dec(g) for k, g in rec["grads"].items()}
        assert list(grads) == list(wrt)

        # Forward function alone.
        fwd = m.f(*inputs.values())
        fwd = list(fwd) if isinstance(fwd, tuple) else [fwd]
        assert len(fwd) == len(outputs)
        for i, (g, w) in enumerate(zip(fwd, outputs)):
            assert_matches(g, w, f"{where}: f output {i}", case.name)

        if not wrt:
            continue
        got_out, got_grads = split_vjp(m.f_vjp(*inputs.values(), *cts), len(outputs), len(wrt))
        for i, (g, w) in enumerate(zip(got_out, outputs)):
            assert_matches(g, w, f"{where}: f_vjp output {i}", case.name)
        for k, g in zip(wrt, got_grads):
            assert_matches(g, grads[k], f"{where}: gradient wrt {k}", case.name)


# ---------------------------------------------------------------- forward mode and second order
TANGENT_SEED_OFFSET, HVP_WEIGHT_SEED_OFFSET, HVP_VECTOR_SEED_OFFSET = 2000, 3000, 4000
DIFF_CASES = [c for c in TORCH_CASES if c.grad_params()]
# Comparisons that fail because of a confirmed compiler bug: {case name: reason}, marked
# xfail(strict=True) so that the test fails (XPASS) once the bug is fixed. Empty on purpose.
KNOWN_JVP_BUGS: dict[str, str] = {}
KNOWN_HVP_BUGS: dict[str, str] = {}


def normals_like(arrays, offset: int, seed: int) -> list[np.ndarray]:
    """The rule of make_torch_refs.py: rng = default_rng(offset + seed), then per array in
    order rng.standard_normal(shape).astype(dtype)."""
    rng = np.random.default_rng(offset + seed)
    return [np.asarray(rng.standard_normal(np.shape(a))).astype(np.asarray(a).dtype) for a in arrays]


def _section_entry(section: str, case: Case) -> dict:
    """The case's entry in the `jvp`/`hvp` section (after the reverse-mode entry's checks)."""
    _entry(case)
    skipped = refs().get("skipped", {}).get(section, {})
    if case.name in skipped:
        pytest.skip(f"torch refuses {section} for {case.name}: {skipped[case.name]}")
    if section not in refs():
        pytest.fail(f"torch_refs.json has no {section!r} section; {REGENERATE}", pytrace=False)
    entry = refs()[section].get(case.name)
    if entry is None:
        pytest.fail(f"case {case.name!r}: no PyTorch {section} reference is recorded; {REGENERATE}",
                    pytrace=False)
    if entry["wrt"] != list(case.grad_params()):
        pytest.fail(f"case {case.name!r}: the {section} reference was recorded wrt {entry['wrt']}, "
                    f"the case now differentiates wrt {list(case.grad_params())}; {REGENERATE}", pytrace=False)
    missing = [s for s in SEEDS if s not in entry["seeds"]]
    if missing:
        pytest.fail(f"case {case.name!r}: {section} seeds {missing} not recorded; {REGENERATE}", pytrace=False)
    return entry


def _checked_inputs(case: Case, seed: str) -> dict:
    """case.inputs(seed), checked against the inputs recorded in the `cases` section."""
    rec = refs()["cases"][case.name]["seeds"][seed]
    inputs = case.inputs(int(seed))
    assert list(rec["inputs"]) == list(inputs), f"{case.name} seed {seed}: recorded parameters differ; {REGENERATE}"
    for k, v in inputs.items():
        r = dec(rec["inputs"][k])
        assert r.dtype == v.dtype and r.shape == v.shape and np.array_equal(r, v), (
            f"{case.name} seed {seed}: input {k} drawn by the catalogue differs from the recorded one; {REGENERATE}")
    return inputs


def _assert_rule(recorded: list[np.ndarray], want: list[np.ndarray], what: str):
    assert len(recorded) == len(want), f"{what}: {len(recorded)} recorded, the rule gives {len(want)}; {REGENERATE}"
    for i, (r, w) in enumerate(zip(recorded, want)):
        assert r.dtype == w.dtype and r.shape == w.shape and np.array_equal(r, w), (
            f"{what} {i} not drawn by the documented rule; {REGENERATE}")


def _marked(cases, known: dict) -> list:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=known[c.name])]
                         if c.name in known else []) for c in cases]


@pytest.mark.parametrize("case", _marked(DIFF_CASES, KNOWN_JVP_BUGS))
def test_jvp_matches_pytorch(case: Case, tl):
    """f_jvp(*inputs, *tangents) against torch.func.jvp: outputs and output tangents."""
    entry = _section_entry("jvp", case)
    wrt = case.grad_params()
    m = tl(case.source())
    for seed in SEEDS:
        rec = entry["seeds"][seed]
        where = f"{case.name} jvp seed {seed}"
        inputs = _checked_inputs(case, seed)
        assert list(rec["tangents"]) == list(wrt), f"{where}: recorded tangents are not one per wrt parameter"
        tangents = [dec(rec["tangents"][k]) for k in wrt]
        _assert_rule(tangents, normals_like([inputs[k] for k in wrt], TANGENT_SEED_OFFSET, int(seed)),
                     f"{where}: tangent")
        outputs = [dec(o) for o in rec["outputs"]]
        out_tangents = [dec(t) for t in rec["output_tangents"]]
        assert len(outputs) == len(out_tangents)

        result = m.f_jvp(*inputs.values(), *tangents)
        result = result if isinstance(result, tuple) else (result,)
        n = len(outputs)
        assert len(result) == 2 * n, f"{where}: f_jvp returned {len(result)} values, expected {n} outputs + {n} tangents"
        for i, (g, w) in enumerate(zip(result[:n], outputs)):
            assert_matches(g, w, f"{where}: f_jvp output {i}", case.name)
        for i, (g, w) in enumerate(zip(result[n:], out_tangents)):
            assert_matches(g, w, f"{where}: f_jvp output tangent {i}", case.name)


def hvp_source(case: Case, outputs: list[np.ndarray]) -> str:
    """case.source() plus the scalar wrapper g = sum(out_0 * c_out0) + ... and `hvp g wrt ...`.

    The weights are parameters of g (`.tl` has no constant arrays), not in the hvp's wrt."""
    def ty(a: np.ndarray) -> str:
        t = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}[a.dtype]
        return f"{t}[{', '.join(map(str, a.shape))}]" if a.shape else t

    names = list(case.params)
    weights = [f"c_out{i}" for i in range(len(outputs))]
    assert not set(weights) & set(names), f"{case.name}: a parameter is called like a weight of the hvp wrapper"
    params = ", ".join([f"{k}: {t}" for k, t in case.params.items()] + [f"{w}: {ty(o)}" for w, o in zip(weights, outputs)])
    ret = ty(np.zeros((), np.result_type(*outputs)))
    call = f"f({', '.join(names)})"
    if len(outputs) == 1:
        body = f"    return sum({call} * c_out0)\n"
    else:
        outs = [f"out_{i}" for i in range(len(outputs))]
        body = (f"    {', '.join(outs)} = {call}\n"
                f"    return {' + '.join(f'sum({o} * {w})' for o, w in zip(outs, weights))}\n")
    return (case.source() + f"fn g({params}) -> {ret} {{\n{body}}}\n"
            + f"hvp g wrt {', '.join(case.grad_params())}\n")


@pytest.mark.parametrize("case", _marked(DIFF_CASES, KNOWN_HVP_BUGS))
def test_hvp_matches_pytorch(case: Case, tl):
    """g_hvp(*inputs, *c, *v) against torch.autograd.functional.hvp of g = sum(f * c):
    value, gradient and Hessian-vector product."""
    entry = _section_entry("hvp", case)
    wrt = case.grad_params()
    outputs0 = [dec(o) for o in refs()["cases"][case.name]["seeds"][SEEDS[0]]["outputs"]]
    m = tl(hvp_source(case, outputs0))
    for seed in SEEDS:
        rec = entry["seeds"][seed]
        where = f"{case.name} hvp seed {seed}"
        inputs = _checked_inputs(case, seed)
        outputs = [dec(o) for o in refs()["cases"][case.name]["seeds"][seed]["outputs"]]
        cs = [dec(c) for c in rec["c"]]
        _assert_rule(cs, normals_like(outputs, HVP_WEIGHT_SEED_OFFSET, int(seed)), f"{where}: weight c")
        assert list(rec["v"]) == list(wrt), f"{where}: recorded vectors are not one per wrt parameter"
        vs = [dec(rec["v"][k]) for k in wrt]
        _assert_rule(vs, normals_like([inputs[k] for k in wrt], HVP_VECTOR_SEED_OFFSET, int(seed)), f"{where}: vector v")

        assert_matches(m.g(*inputs.values(), *cs), dec(rec["value"]), f"{where}: g", case.name)
        result = m.g_hvp(*inputs.values(), *cs, *vs)
        n = len(wrt)
        assert isinstance(result, tuple) and len(result) == 1 + 2 * n, (
            f"{where}: g_hvp returned {len(result) if isinstance(result, tuple) else 1} values, expected 1 + 2 * {n}")
        assert_matches(result[0], dec(rec["value"]), f"{where}: g_hvp value", case.name)
        for k, g in zip(wrt, result[1:1 + n]):
            assert_matches(g, dec(rec["grads"][k]), f"{where}: gradient wrt {k}", case.name)
        for k, g in zip(wrt, result[1 + n:]):
            assert_matches(g, dec(rec["hvp"][k]), f"{where}: Hessian-vector product wrt {k}", case.name)


def test_no_stale_forward_and_second_order_entries():
    """Every case in the jvp/hvp sections (or skipped there) still has a torch expression and a wrt."""
    names = {c.name for c in DIFF_CASES}
    for section in ("jvp", "hvp"):
        recorded = set(refs().get(section, {})) | set(refs().get("skipped", {}).get(section, {}))
        stale = sorted(recorded - names)
        assert not stale, f"{section}: recorded cases no longer in the catalogue: {stale}; {REGENERATE}"
        for name, reason in refs().get("skipped", {}).get(section, {}).items():
            assert reason.strip(), f"{section}: skipped case {name} needs its reason"


# ---------------------------------------------------------------- walkthroughs
def walk(name: str) -> dict:
    entry = refs()["walkthroughs"].get(name)
    if entry is None:
        pytest.fail(f"walkthrough {name!r} not recorded; {REGENERATE}", pytrace=False)
    return {k: dec(v) for k, v in entry["values"].items()}


def test_walkthrough_polynomial(tl):
    """y = 5x^3 + 2x^2 + 4x + 8; y.backward() at x = 2 gives x.grad = 72."""
    ref = walk("poly")
    m = tl("fn poly(x: f64) -> f64 { return 5 * x ** 3 + 2 * x ** 2 + 4 * x + 8 }\n"
           "grad poly wrt x\n")
    value, dx = m.poly_grad(ref["x"])
    assert_matches(value, ref["y"], "poly value")
    assert_matches(dx, ref["x_grad"], "poly x.grad")
    assert float(ref["x_grad"]) == 72.0  # the tutorial's number, exactly


def test_walkthrough_times5(tl):
    """B = A * 5; B.backward() gives A.grad = 5."""
    ref = walk("times5")
    m = tl("fn times5(A: f64) -> f64 { return A * 5 }\n"
           "grad times5 wrt A\n")
    value, dA = m.times5_grad(ref["A"])
    assert_matches(value, ref["B"], "B")
    assert_matches(dA, ref["A_grad"], "A.grad")
    assert float(ref["A_grad"]) == 5.0


def test_walkthrough_one_layer(tl):
    """One f32 layer with mean binary cross-entropy with logits: loss, w.grad, b.grad."""
    ref = walk("one_layer")
    m = tl("fn layer(x: f32[N, 5], y: f32[N, 3], w: f32[5, 3], b: f32[3]) -> f32 {\n"
           "    z = x @ w + b\n"
           "    return mean(bce_with_logits(z, y))\n"
           "}\n"
           "grad layer wrt w, b\n")
    assert set(np.unique(ref["y"])) <= {0.0, 1.0}
    loss, dw, db = m.layer_grad(ref["x"], ref["y"], ref["w"], ref["b"])
    assert_matches(m.layer(ref["x"], ref["y"], ref["w"], ref["b"]), ref["loss"], "layer forward")
    assert_matches(loss, ref["loss"], "loss")
    assert_matches(dw, ref["w_grad"], "w.grad")
    assert_matches(db, ref["b_grad"], "b.grad")


SQUARE = ("fn square(inp: f64[5, 5]) -> f64[5, 5] { return (inp + 1) ** 2 }\n"
          "vjp square wrt inp\n")


def test_walkthrough_accumulate_with_out(tl):
    """PyTorch's .grad accumulation: out= adds into the buffer; zeroing it is zero_grad()."""
    ref = walk("accumulate")
    m = tl(SQUARE)
    inp, ct = ref["inp"], ref["ct"]

    out, d_inp = m.square_vjp(inp, ct)  # first backward
    assert_matches(out, ref["out"], "out")
    assert_matches(d_inp, ref["grad_first"], "first call")

    buf = d_inp
    out2, d2 = m.square_vjp(inp, ct, out=buf)  # second backward accumulates
    assert d2 is buf
    assert_matches(d2, ref["grad_second"], "second call (accumulated)")
    np.testing.assert_array_equal(ref["grad_second"], 2 * ref["grad_first"])

    buf[...] = 0  # inp.grad.zero_()
    _, d3 = m.square_vjp(inp, ct, out=buf)
    assert d3 is buf
    assert_matches(d3, ref["grad_after_zero"], "call after zeroing")


def test_walkthrough_accumulate_retained_residuals(tl):
    """retain_graph=True: the _bwd half may run twice on the same residuals."""
    ref = walk("accumulate")
    m = tl(SQUARE)
    out, residuals = m.square_vjp_fwd(ref["inp"])
    assert_matches(out, ref["out"], "out")
    buf = np.zeros_like(ref["inp"])
    for want in ("grad_first", "grad_second"):
        (d,) = m.square_vjp_bwd(residuals, ref["ct"], out=buf)
        assert d is buf
        assert_matches(buf, ref[want], want)
    buf[...] = 0
    m.square_vjp_bwd(residuals, ref["ct"], out=buf)
    assert_matches(buf, ref["grad_after_zero"], "after zeroing")


def test_walkthrough_stop_gradient(tl):
    """y = sum(x * x.detach()): x.grad == x."""
    ref = walk("stop_gradient")
    m = tl("fn sg(x: f64[4]) -> f64 { return sum(x * stop_gradient(x)) }\n"
           "grad sg wrt x\n")
    value, dx = m.sg_grad(ref["x"])
    assert_matches(value, ref["y"], "y")
    assert_matches(dx, ref["x_grad"], "x.grad")
    np.testing.assert_array_equal(ref["x_grad"], ref["x"])
