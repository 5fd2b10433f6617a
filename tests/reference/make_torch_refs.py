"""Record PyTorch reference values for tests/test_pytorch_reference.py.

Run by hand (never by CI; torch is not a dependency of tapeless or of its tests):

    cd /work/main && /tmp/torchenv/bin/python tests/reference/make_torch_refs.py

with any Python that has torch (2.13.0 CPU was used) and numpy; tapeless itself is
not needed: only tests/catalogue.py (numpy-only) is imported. It (re)writes
tests/reference/torch_refs.json next to this script. See tests/reference/README.md.

What is recorded
----------------
* ``cases``: for every catalogue case with a ``torch`` expression, for seeds 0 and 1:
  - ``inputs``: ``case.inputs(seed)`` exactly as the catalogue draws them;
  - ``cotangents``: one per output, drawn as
    ``rng = np.random.default_rng(1000 + seed)`` (one generator per case and seed),
    then for each output in order ``rng.standard_normal(shape).astype(dtype)`` with the
    output's shape and dtype (the test re-derives them with the same rule);
  - ``outputs``: the torch expression evaluated on the inputs (floating inputs as
    tensors of their own dtype, f64 in almost every case; integer inputs as int64
    tensors, bool inputs as bool tensors, none of them requiring grad);
  - ``grads``: ``torch.autograd.grad(outputs, [inputs in case.grad_params()],
    cotangents)`` (a parameter that does not reach the output gets zeros).
* ``jvp``: forward mode, for every such case with a ``wrt`` parameter, for seeds 0 and 1
  (on the inputs of ``cases``):
  - ``tangents``: one per ``wrt`` parameter, drawn as
    ``rng = np.random.default_rng(2000 + seed)`` (one generator per case and seed), then
    for each parameter of ``case.grad_params()`` in order
    ``rng.standard_normal(shape).astype(dtype)`` with the parameter's shape and dtype;
  - ``outputs`` and ``output_tangents``: ``torch.func.jvp(f, primals, tangents)``, where
    ``f`` takes the ``wrt`` parameters (the others are fixed tensors) and evaluates the
    case's torch expression. tapeless's ``f_jvp(*inputs, *tangents)`` must return both.
* ``hvp``: second order, for every such case with a ``wrt`` parameter. A Hessian-vector
  product needs a scalar function, so the case is wrapped as
  ``g(*inputs, *c) = sum(f(*inputs) * c_0) + sum(out_1 * c_1) + ...`` (one weight array per
  output; in ``.tl`` the weights are parameters ``c_out0, c_out1, ...`` of ``g``, not in
  the ``hvp`` directive's ``wrt``), and for seeds 0 and 1:
  - ``c``: one per output, ``rng = np.random.default_rng(3000 + seed)``, then per output
    in order ``rng.standard_normal(output.shape).astype(output.dtype)``;
  - ``v``: one per ``wrt`` parameter, ``rng = np.random.default_rng(4000 + seed)``, then
    per parameter in order ``rng.standard_normal(shape).astype(dtype)``;
  - ``value``: g; ``grads``: ``torch.autograd.grad(g, wrt)``; ``hvp``:
    ``torch.autograd.functional.hvp(g, wrt tensors, v)[1]``. The script checks the latter
    against forward-over-reverse ``torch.func.jvp(torch.func.grad(g), ...)``, except for the
    cases in ``FORWARD_OVER_REVERSE`` (logcumsumexp: autograd.functional.hvp gives NaN), whose
    ``hvp`` is the forward-over-reverse one, checked against central differences of the gradient.
  Where the function is piecewise linear (relu, abs, clip, maximum, max, ...) the Hessian is
  0 almost everywhere and torch gives 0: it is recorded like any other value. Cases where
  torch refuses are listed in ``SKIPPED`` with the reason (none today).
* ``walkthroughs``: the "seed" examples from the PyTorch autograd tutorials, each with
  the torch code that was executed (``code``) and the values it produced.

Arrays are stored as ``{"dtype", "shape", "data"}`` with ``data`` a nested list of
Python numbers; floats are written with ``repr`` (shortest round-trip form), so f64
values round-trip bit for bit and f32 values are exact as well.
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS))  # catalogue.py needs only numpy

from catalogue import CASES  # noqa: E402

OUT = HERE / "torch_refs.json"
SEEDS = (0, 1)
COTANGENT_SEED_OFFSET = 1000
TANGENT_SEED_OFFSET = 2000      # jvp tangents, one per wrt parameter
HVP_WEIGHT_SEED_OFFSET = 3000   # hvp: the weights c of g = sum(f * c), one per output
HVP_VECTOR_SEED_OFFSET = 4000   # hvp: the vectors v, one per wrt parameter
# Cases torch refuses to differentiate in forward mode / to second order: {name: reason}.
# None today: torch.func.jvp and torch.autograd.functional.hvp accept every catalogue case.
SKIPPED: dict[str, dict[str, str]] = {"jvp": {}, "hvp": {}}
# Cases whose torch.autograd.functional.hvp is NaN where the Hessian is finite: {name: reason}.
# Their hvp is torch.func's forward over reverse, checked against central differences of
# torch's gradient instead of against autograd.functional.hvp.
FORWARD_OVER_REVERSE: dict[str, str] = {
    "logcumsumexp": "autograd.functional.hvp differentiates the backward's backward at a zero "
                    "cotangent (its double-backward trick), and logcumsumexp's backward takes "
                    "log|cotangent|: NaN",
}
COMMAND = "cd /work/main && /tmp/torchenv/bin/python tests/reference/make_torch_refs.py"


# ---------------------------------------------------------------- encoding
def enc(x) -> dict:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"non-finite value in a reference array: {a!r}")
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.tolist()}


def dec(d: dict) -> np.ndarray:
    return np.array(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def dumps(obj) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=True)


# ---------------------------------------------------------------- catalogue cases
def to_torch(name: str, value: np.ndarray, wrt: tuple) -> torch.Tensor:
    a = np.asarray(value)
    if a.dtype.kind in "iu":
        return torch.from_numpy(a.astype(np.int64))
    if a.dtype.kind == "b":
        return torch.from_numpy(a.copy())
    return torch.from_numpy(a.copy()).requires_grad_(name in wrt)


def cotangents_for(outputs, seed: int) -> list:
    rng = np.random.default_rng(COTANGENT_SEED_OFFSET + seed)
    cts = []
    for o in outputs:
        dtype = np.dtype(str(o.dtype).replace("torch.", ""))
        cts.append(np.asarray(rng.standard_normal(tuple(o.shape))).astype(dtype))
    return cts


def normals_like(arrays, offset: int, seed: int) -> list:
    """rng = default_rng(offset + seed); per array in order standard_normal(shape).astype(dtype)."""
    rng = np.random.default_rng(offset + seed)
    out = []
    for a in arrays:
        dtype = np.dtype(str(a.dtype).replace("torch.", ""))
        out.append(np.asarray(rng.standard_normal(tuple(a.shape))).astype(dtype))
    return out


def case_function(case, inputs: dict):
    """f(*wrt tensors) -> the case's torch expression (a list of outputs); the other
    inputs are fixed tensors that do not require grad."""
    wrt = case.grad_params()
    fixed = {k: to_torch(k, v, ()) for k, v in inputs.items()}

    def f(*xs):
        ns = dict(fixed)
        ns.update(zip(wrt, xs))
        out = eval(case.torch, {"torch": torch}, ns)
        return tuple(out) if isinstance(out, (tuple, list)) else out

    return f, [fixed[k] for k in wrt]


def as_list(x) -> list:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def record_jvp(case, seed: int) -> dict:
    inputs = case.inputs(seed)
    f, primals = case_function(case, inputs)
    tangents = normals_like([inputs[k] for k in case.grad_params()], TANGENT_SEED_OFFSET, seed)
    outs, touts = torch.func.jvp(f, tuple(primals), tuple(torch.from_numpy(t.copy()) for t in tangents))
    return {
        "seed": seed,
        "tangents": {k: enc(t) for k, t in zip(case.grad_params(), tangents)},
        "outputs": [enc(o) for o in as_list(outs)],
        "output_tangents": [enc(t) for t in as_list(touts)],
    }


def record_hvp(case, seed: int) -> dict:
    wrt = case.grad_params()
    inputs = case.inputs(seed)
    f, primals = case_function(case, inputs)
    cs = [torch.from_numpy(c) for c in normals_like(as_list(f(*primals)), HVP_WEIGHT_SEED_OFFSET, seed)]
    vs = normals_like([inputs[k] for k in wrt], HVP_VECTOR_SEED_OFFSET, seed)
    v_t = tuple(torch.from_numpy(v.copy()) for v in vs)

    def g(*xs):  # sum(out_0 * c_0) + sum(out_1 * c_1) + ..., left to right as in the .tl wrapper
        terms = [torch.sum(o * c) for o, c in zip(as_list(f(*xs)), cs)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    value, hv = torch.autograd.functional.hvp(g, tuple(primals), v_t)
    xs = [p.detach().clone().requires_grad_(True) for p in primals]
    got = torch.autograd.grad(g(*xs), xs, allow_unused=True)
    grads = [torch.zeros_like(x) if d is None else d for x, d in zip(xs, got)]
    # independent check: forward over reverse with torch.func
    _, hv2 = torch.func.jvp(torch.func.grad(g, argnums=tuple(range(len(primals)))), tuple(primals), v_t)
    if case.name in FORWARD_OVER_REVERSE:
        hv = hv2
        eps = 1e-6
        plus = torch.func.grad(g, argnums=tuple(range(len(primals))))(*[p + eps * v for p, v in zip(primals, v_t)])
        minus = torch.func.grad(g, argnums=tuple(range(len(primals))))(*[p - eps * v for p, v in zip(primals, v_t)])
        hv2 = tuple((a - b) / (2 * eps) for a, b in zip(plus, minus))
    for k, a, b in zip(wrt, hv, hv2):
        close = dict(rtol=1e-6, atol=1e-8) if case.name in FORWARD_OVER_REVERSE else dict(rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(a, b, **close,
                                   msg=f"{case.name} seed {seed}: hvp wrt {k}: autograd.functional.hvp "
                                       f"and torch.func forward-over-reverse disagree")
    return {
        "seed": seed,
        "c": [enc(c) for c in cs],
        "v": {k: enc(v) for k, v in zip(wrt, vs)},
        "value": enc(value),
        "grads": {k: enc(d) for k, d in zip(wrt, grads)},
        "hvp": {k: enc(h) for k, h in zip(wrt, hv)},
    }


def record_case(case, seed: int) -> dict:
    wrt = case.grad_params()
    inputs = case.inputs(seed)
    tensors = {k: to_torch(k, v, wrt) for k, v in inputs.items()}
    out = eval(case.torch, {"torch": torch}, dict(tensors))
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    cts = cotangents_for(outputs, seed)
    params = [tensors[k] for k in wrt]
    grads = []
    if params:
        got = torch.autograd.grad(outputs, params, [torch.from_numpy(c.copy()) for c in cts],
                                  allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, got)]
    return {
        "seed": seed,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "cotangents": [enc(c) for c in cts],
        "outputs": [enc(o) for o in outputs],
        "grads": {k: enc(g) for k, g in zip(wrt, grads)},
    }


# ---------------------------------------------------------------- walkthroughs
# Each snippet runs with torch, F = torch.nn.functional and np in scope; the names
# listed in "record" are read back from its namespace afterwards.
WALKTHROUGHS = {
    "poly": dict(
        description="y = 5x^3 + 2x^2 + 4x + 8 at x = 2; y.backward() gives x.grad = 15*4 + 4*2 + 4 = 72",
        code="""\
x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
y = 5 * x ** 3 + 2 * x ** 2 + 4 * x + 8
y.backward()
x_grad = x.grad
""",
        record=("x", "y", "x_grad"),
    ),
    "times5": dict(
        description="A = 3, B = 5A; B.backward() gives A.grad = 5",
        code="""\
A = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
B = A * 5
B.backward()
A_grad = A.grad
""",
        record=("A", "B", "A_grad"),
    ),
    "one_layer": dict(
        description="one layer with mean binary cross-entropy (PyTorch autograd tutorial), f32, "
                    "inputs drawn with numpy's default_rng(2024) instead of torch.randn",
        code="""\
rng = np.random.default_rng(2024)
x_np = rng.standard_normal((8, 5)).astype(np.float32)
y_np = (rng.random((8, 3)) > 0.5).astype(np.float32)
w_np = rng.standard_normal((5, 3)).astype(np.float32)
b_np = rng.standard_normal(3).astype(np.float32)
x = torch.from_numpy(x_np)
y = torch.from_numpy(y_np)
w = torch.from_numpy(w_np).requires_grad_(True)
b = torch.from_numpy(b_np).requires_grad_(True)
z = torch.matmul(x, w) + b
loss = F.binary_cross_entropy_with_logits(z, y)
loss.backward()
w_grad = w.grad
b_grad = b.grad
""",
        record=("x", "y", "w", "b", "loss", "w_grad", "b_grad"),
    ),
    "accumulate": dict(
        description="(inp + 1)**2 at inp = eye(5): backward with ones twice on the same graph "
                    "(retain_graph=True) accumulates into inp.grad (doubled); after zeroing, once more (single)",
        code="""\
inp = torch.eye(5, dtype=torch.float64, requires_grad=True)
out = (inp + 1) ** 2
ct = torch.ones_like(inp)
out.backward(ct, retain_graph=True)
grad_first = inp.grad.clone()
out.backward(ct, retain_graph=True)
grad_second = inp.grad.clone()
inp.grad.zero_()
out.backward(ct, retain_graph=True)
grad_after_zero = inp.grad.clone()
""",
        record=("inp", "ct", "out", "grad_first", "grad_second", "grad_after_zero"),
    ),
    "stop_gradient": dict(
        description="y = sum(x * x.detach()): the detached factor is a constant, so x.grad == x (not 2x)",
        code="""\
x = torch.from_numpy(np.random.default_rng(7).standard_normal(4)).requires_grad_(True)
y = torch.sum(x * x.detach())
y.backward()
x_grad = x.grad
""",
        record=("x", "y", "x_grad"),
    ),
}


def record_walkthrough(spec: dict) -> dict:
    ns = {"torch": torch, "F": torch.nn.functional, "np": np}
    exec(spec["code"], ns)
    return {
        "description": spec["description"],
        "code": spec["code"],
        "values": {k: enc(ns[k]) for k in spec["record"]},
    }


# ---------------------------------------------------------------- main
def main() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    header = {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "command": COMMAND,
        "ran_as": shlex.join([sys.executable, *sys.argv]) + f"  (cwd {os.getcwd()})",
        "seeds": list(SEEDS),
        "cotangents": "rng = np.random.default_rng(1000 + seed), then per output in order: "
                      "rng.standard_normal(output.shape).astype(output.dtype)",
        "tangents": "jvp: rng = np.random.default_rng(2000 + seed), then per wrt parameter in order: "
                    "rng.standard_normal(param.shape).astype(param.dtype); torch.func.jvp(f, primals, tangents)",
        "hvp": "g = sum(out_0 * c_0) + sum(out_1 * c_1) + ... over f's outputs; "
               "c: rng = np.random.default_rng(3000 + seed), per output in order "
               "rng.standard_normal(output.shape).astype(output.dtype); "
               "v: rng = np.random.default_rng(4000 + seed), per wrt parameter in order "
               "rng.standard_normal(param.shape).astype(param.dtype); "
               "torch.autograd.functional.hvp(g, wrt tensors, v)",
        "regenerate": "see tests/reference/README.md",
    }
    lines = ["{", f'"header": {json.dumps(header, indent=1)},', '"cases": {']
    case_blocks = []
    for case in CASES:
        if not case.torch:
            continue
        meta = {"torch": case.torch, "params": case.params, "wrt": list(case.grad_params())}
        seeds = [f"  {dumps(str(s))}: {dumps(record_case(case, s))}" for s in SEEDS]
        block = f"{dumps(case.name)}: {dumps(meta)[:-1]}, \"seeds\": {{\n" + ",\n".join(seeds) + "}}"
        case_blocks.append(block)
    lines.append(",\n".join(case_blocks))
    lines.append("},")
    # Forward mode and second order, in sections of their own so that the reverse-mode
    # lines above stay as they were.
    for section, record in (("jvp", record_jvp), ("hvp", record_hvp)):
        lines.append(f"{dumps(section)}: {{")
        blocks = []
        for case in CASES:
            if not case.torch or not case.grad_params() or case.name in SKIPPED[section]:
                continue
            meta = {"wrt": list(case.grad_params())}
            seeds = [f"  {dumps(str(s))}: {dumps(record(case, s))}" for s in SEEDS]
            blocks.append(f"{dumps(case.name)}: {dumps(meta)[:-1]}, \"seeds\": {{\n" + ",\n".join(seeds) + "}}")
        lines.append(",\n".join(blocks))
        lines.append("},")
    lines.append(f'"skipped": {dumps(SKIPPED)},')
    lines.append('"walkthroughs": {')
    lines.append(",\n".join(f"{dumps(k)}: {dumps(record_walkthrough(v))}" for k, v in WALKTHROUGHS.items()))
    lines.append("}")
    lines.append("}")
    text = "\n".join(lines) + "\n"

    # Self-check: valid JSON, and every array decodes back to what was computed.
    data = json.loads(text)
    for case in CASES:
        if case.torch:
            for s in SEEDS:
                rec = data["cases"][case.name]["seeds"][str(s)]
                for k, v in case.inputs(s).items():
                    got = dec(rec["inputs"][k])
                    assert got.dtype == v.dtype and np.array_equal(got, v), (case.name, s, k)
                if case.name in data["jvp"]:
                    rec = data["jvp"][case.name]["seeds"][str(s)]
                    want = normals_like([case.inputs(s)[k] for k in case.grad_params()], TANGENT_SEED_OFFSET, s)
                    for k, w in zip(case.grad_params(), want):
                        got = dec(rec["tangents"][k])
                        assert got.dtype == w.dtype and np.array_equal(got, w), (case.name, s, k)
    missing = [c.name for c in CASES if c.torch and c.grad_params()
               and any(c.name not in data[sec] and c.name not in SKIPPED[sec] for sec in ("jvp", "hvp"))]
    assert not missing, missing
    OUT.write_text(text)
    n = len(case_blocks)
    print(f"wrote {OUT} ({n} cases x {len(SEEDS)} seeds, jvp for {len(data['jvp'])} and hvp for "
          f"{len(data['hvp'])} of them, {len(WALKTHROUGHS)} walkthroughs, torch {torch.__version__})")
    for section, skipped in SKIPPED.items():
        for name, reason in skipped.items():
            print(f"{section} skipped for {name}: {reason}")


if __name__ == "__main__":
    main()
