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
    OUT.write_text(text)
    n = len(case_blocks)
    print(f"wrote {OUT} ({n} cases x {len(SEEDS)} seeds, {len(WALKTHROUGHS)} walkthroughs, torch {torch.__version__})")


if __name__ == "__main__":
    main()
