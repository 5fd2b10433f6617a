"""Record PyTorch references for the loop programs of tests/cases/loops (tests/test_loops.py).

Run by hand (never by CI; torch is not a dependency of tapeless or of its tests):

    cd <repo> && python tests/reference/make_loop_refs.py

It was run with torch 2.13.0+cpu, numpy 2.4.6, Python 3.11.7; tapeless is not imported. It
(re)writes tests/reference/loop_refs.json next to this script; its `header` records the
versions and the command.

Each program is written again here as the same loop in PyTorch eager (float64, a Python
`for` over the same range; a collection `ys[t] = h` is a list stacked after the loop, which
is the same value). For every derivative directive of the `.tl` file (SPEC below, which
tests/test_loops.py checks against the compiled module's `wrt`), at inputs drawn once with
`np.random.default_rng(SEED)` (recorded, not re-derived), one entry:

* `grad F wrt W`: outputs `(F, dF/dW...)` from `torch.autograd.grad`;
* `vjp F wrt W`: cotangents, one per output, drawn from the same generator and recorded
  (`extra`), outputs `(F..., grads...)` from `torch.autograd.grad(outs, W, cotangents)`;
* `jvp F wrt W`: tangents recorded (`extra`), outputs `(F..., tangents...)` from
  `torch.func.jvp`;
* `hvp F wrt W`: vectors recorded (`extra`), outputs `(F, grads..., Hv...)`, Hv from
  `torch.autograd.functional.hvp` and checked here against forward-over-reverse
  `torch.func.jvp(torch.func.grad(...))` (1e-12).

A parameter that does not reach an output gets a zero gradient (as tapeless gives). The test
calls the generated `NAME(*inputs, *extra)` and compares every output.

Arrays are `{"shape", "data"}` (float64; `data` flat, written with Python's repr, exact).
"""
from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
OUT = Path(__file__).with_name("loop_refs.json")
SEED = 17


# ---- the programs, in PyTorch eager ------------------------------------------------------------------
def rnn(x, h0, w, u):
    h = h0
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ w + h @ u)
    return torch.mean(h * h)


def lstm(x, h0, c0, wi, wf, wo, wg, ui, uf, uo, ug):
    h, c = h0, c0
    for t in range(x.shape[0]):
        xt = x[t]
        i = torch.sigmoid(xt @ wi + h @ ui)
        f = torch.sigmoid(xt @ wf + h @ uf)
        o = torch.sigmoid(xt @ wo + h @ uo)
        g = torch.tanh(xt @ wg + h @ ug)
        c = f * c + i * g
        h = o * torch.tanh(c)
    return torch.mean(h * h) + torch.mean(c)


def euler(y0, a, b, dts):
    y = y0
    for t in range(dts.shape[0]):
        y = y + dts[t] * (-a * y + b * torch.sin(y))
    return torch.sum(y * y)


def rk4(y0, a, b, dt):
    def rhs(y):
        return -a * y + b * torch.sin(y)

    y = y0
    for t in range(3):
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * dt * k1)
        k3 = rhs(y + 0.5 * dt * k2)
        k4 = rhs(y + dt * k3)
        y = y + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return torch.sum(y * y)


def power(a, v0):
    v = v0 / torch.sqrt(torch.sum(v0 * v0))
    for t in range(5):
        w = a @ v
        v = w / torch.sqrt(torch.sum(w * w))
    return v @ (a @ v)


def cumprod_loop(x):
    p, ys = 1.0, []
    for t in range(x.shape[0]):
        p = p * x[t]
        ys.append(p)
    return torch.stack(ys) if ys else torch.zeros(0)


def nested(a, x):
    s, out = 0.0, []
    for i in range(a.shape[0]):
        row, out_row = 0.0, []
        for j in range(a.shape[1]):
            row = torch.tanh(row + a[i, j] * x[j])
            out_row.append(row * s)
        out.append(torch.stack(out_row))
        s = s + row * row + 0.5
    return s, torch.stack(out)


def horner(c, z):
    p = z * 0.0
    for t in range(c.shape[0] - 1, -1, -1):
        p = p * z + c[t]
    return torch.sum(torch.sin(p))


def empty_literal(x, w):
    y = x
    for t in range(0):
        y = y * w + 1.0
    return torch.sum(y * y)


def empty_sized(x, h0, w):
    h = h0
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] + h * w)
    return h * 2.0


def rnn_seq(x, h0, w, u):
    h, ys = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ w + h @ u)
        ys.append(h)
    return torch.stack(ys)


# ---- what is recorded --------------------------------------------------------------------------------
def sym(rng, n):
    m = rng.standard_normal((n, n))
    return (m + m.T) / 2 + 0.05 * rng.standard_normal((n, n)) + 2 * np.eye(n)  # symmetric-ish, one large eigenvalue


# program: (.tl file, torch function, its parameter names, input maker, [(kind, name, wrt)])
SPEC = {
    "rnn": ("rnn.tl", rnn, ["x", "h0", "w", "u"],
            lambda r: [r.standard_normal((5, 3, 4)), r.standard_normal((3, 3)), 0.5 * r.standard_normal((4, 3)),
                       0.5 * r.standard_normal((3, 3))],
            [("grad", "rnn_grad", ["x", "h0", "w", "u"]), ("jvp", "rnn_jvp", ["h0", "w", "u"]),
             ("hvp", "rnn_hvp", ["w", "u"])]),
    "lstm": ("lstm.tl", lstm, ["x", "h0", "c0", "wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"],
             lambda r: [r.standard_normal((4, 2, 3)), r.standard_normal((2, 3)), r.standard_normal((2, 3))]
             + [0.5 * r.standard_normal((3, 3)) for _ in range(8)],
             [("grad", "lstm_grad", ["x", "h0", "c0", "wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"]),
              ("jvp", "lstm_jvp", ["h0", "c0", "wi", "uf"]), ("hvp", "lstm_hvp", ["wi", "uf"])]),
    "euler": ("euler.tl", euler, ["y0", "a", "b", "dts"],
              lambda r: [r.standard_normal(3), np.float64(0.7), np.float64(1.3), r.uniform(0.05, 0.2, 6)],
              [("grad", "euler_grad", ["y0", "a", "b", "dts"]), ("jvp", "euler_jvp", ["y0", "a", "b"]),
               ("hvp", "euler_hvp", ["y0", "a", "b"])]),
    "rk4": ("rk4.tl", rk4, ["y0", "a", "b", "dt"],
            lambda r: [r.standard_normal(3), np.float64(0.7), np.float64(1.3), np.float64(0.25)],
            [("grad", "rk4_grad", ["y0", "a", "b", "dt"]), ("jvp", "rk4_jvp", ["y0", "a", "b"])]),
    "power": ("power.tl", power, ["a", "v0"], lambda r: [sym(r, 4), r.standard_normal(4)],
              [("grad", "power_grad", ["a", "v0"])]),
    "cumprod": ("cumprod.tl", cumprod_loop, ["x"], lambda r: [r.uniform(0.5, 1.5, 6) * r.choice([-1, 1], 6)],
                [("vjp", "cumprod_loop_vjp", ["x"]), ("jvp", "cumprod_loop_jvp", ["x"])]),
    "nested": ("nested.tl", nested, ["a", "x"], lambda r: [r.standard_normal((3, 4)), r.standard_normal(4)],
               [("vjp", "nested_vjp", ["a", "x"]), ("jvp", "nested_jvp", ["a", "x"])]),
    "countdown": ("countdown.tl", horner, ["c", "z"], lambda r: [r.standard_normal(5), 0.8 * r.standard_normal(3)],
                  [("grad", "horner_grad", ["c", "z"]), ("jvp", "horner_jvp", ["c", "z"])]),
    "zero_literal": ("zero_trip.tl", empty_literal, ["x", "w"], lambda r: [r.standard_normal(3), np.float64(0.6)],
                     [("grad", "empty_literal_grad", ["x", "w"])]),
    "zero_sized_T0": ("zero_trip.tl", empty_sized, ["x", "h0", "w"],
                      lambda r: [np.zeros((0, 3)), r.standard_normal(3), np.float64(0.6)],
                      [("vjp", "empty_sized_vjp", ["x", "h0", "w"]), ("jvp", "empty_sized_jvp", ["x", "h0", "w"])]),
    "zero_sized_T3": ("zero_trip.tl", empty_sized, ["x", "h0", "w"],
                      lambda r: [r.standard_normal((3, 3)), r.standard_normal(3), np.float64(0.6)],
                      [("vjp", "empty_sized_vjp", ["x", "h0", "w"]), ("jvp", "empty_sized_jvp", ["x", "h0", "w"])]),
    "collect": ("collect.tl", rnn_seq, ["x", "h0", "w", "u"],
                lambda r: [r.standard_normal((5, 3, 4)), r.standard_normal((3, 3)), 0.5 * r.standard_normal((4, 3)),
                           0.5 * r.standard_normal((3, 3))],
                [("vjp", "rnn_seq_vjp", ["x", "h0", "w", "u"]), ("jvp", "rnn_seq_jvp", ["h0", "w", "u"])]),
}


def enc(a) -> dict:
    a = np.asarray(a.detach().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


def tup(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def grads_of(outs, ts, cts):
    gs = torch.autograd.grad(outs, ts, cts, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, ts)]


def record(name, fn, params, inputs, kind, wrt, rng) -> dict:
    ks = [params.index(n) for n in wrt]

    def of_wrt(*ws):  # fn as a function of the wrt arguments, the others fixed
        args = [torch.tensor(v) for v in inputs]
        for k, w in zip(ks, ws):
            args[k] = w
        return fn(*args)

    ts = [torch.tensor(inputs[k], requires_grad=True) for k in ks]
    outs = tup(of_wrt(*ts))
    if kind == "grad":
        extra, res = [], [*outs, *grads_of(outs, ts, [torch.ones(())])]
    elif kind == "vjp":
        extra = [rng.standard_normal(tuple(o.shape)) for o in outs]
        res = [*outs, *grads_of(outs, ts, [torch.tensor(c) for c in extra])]
    elif kind == "jvp":
        extra = [rng.standard_normal(np.shape(inputs[k])) for k in ks]
        primals = tuple(torch.tensor(inputs[k]) for k in ks)
        values, tangents = torch.func.jvp(of_wrt, primals, tuple(torch.tensor(d) for d in extra))
        res = [*tup(values), *tup(tangents)]
    else:  # hvp
        extra = [rng.standard_normal(np.shape(inputs[k])) for k in ks]
        primals = tuple(torch.tensor(inputs[k]) for k in ks)
        vs = tuple(torch.tensor(d) for d in extra)
        _, hv = torch.autograd.functional.hvp(of_wrt, primals, vs)
        _, hv_fwd = torch.func.jvp(torch.func.grad(of_wrt, argnums=tuple(range(len(ks)))), primals, vs)
        for a, b in zip(tup(hv), tup(hv_fwd)):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12), (name, a, b)
        res = [*outs, *grads_of(outs, ts, [torch.ones(())]), *tup(hv)]
    for r in res:
        assert bool(torch.all(torch.isfinite(torch.as_tensor(r)))), name
    return {"kind": kind, "wrt": wrt, "extra": [enc(e) for e in extra], "outputs": [enc(r) for r in res]}


def main() -> None:
    programs = {}
    for prog, (file, fn, params, make, directives) in SPEC.items():
        rng = np.random.default_rng([SEED, len(programs)])
        inputs = [np.asarray(v, dtype=np.float64) for v in make(rng)]
        entries = {name: record(name, fn, params, inputs, kind, wrt, rng) for kind, name, wrt in directives}
        programs[prog] = {"file": file, "fn": fn.__name__, "params": params,
                          "inputs": [enc(v) for v in inputs], "derivatives": entries}
    header = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
              "date": datetime.date.today().isoformat(), "command": "python tests/reference/make_loop_refs.py"}
    lines = ["{", f'"header": {json.dumps(header)},', '"programs": {']
    items = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in programs.items()]
    lines.append(",\n".join(items))
    lines += ["}", "}"]
    OUT.write_text("\n".join(lines) + "\n")
    json.loads(OUT.read_text())
    print(f"wrote {OUT} ({len(programs)} programs, "
          f"{sum(len(p['derivatives']) for p in programs.values())} derivative functions)", file=sys.stderr)


if __name__ == "__main__":
    main()
