"""How compile time grows with program size: generated programs of 100 to 10,000 statements.

    python benchmarks/compile_scale.py                  # every shape, sizes 100..10000, -O0/-O1/-O2
    python benchmarks/compile_scale.py --shapes chain --levels 1 --sizes 1000,10000
    python benchmarks/compile_scale.py --json out.json

Shapes (each with `grad f wrt w`, so the adjoint, optimisation and emission of the derivative
functions are timed too):
    chain   a = tanh(a) * w + c, one statement per line
    wide    a DAG with reuse: v_i = v_{i-1} * v_{(7i) mod (i-1)} + v_{i/2}
    calls   nested calls: g_i(x, w) = g_{i-1}(x, w) + x * k, f calls the last one
    flat    one expression of SIZE terms: sum(x * 1 + w * 2 + ...)

Each measurement compiles in a fresh Python process (no warm caches carried over) and times
compile_source alone (not the interpreter's start or the compiler's import), as process CPU
time and wall time. The growth exponent is fitted by least squares on log(time) against
log(size) over the sizes from 1,000 up. A measurement tool, not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

SHAPES = ("chain", "wide", "calls", "flat")
SIZES = (100, 300, 1000, 3000, 10000)


def program(shape: str, n: int) -> str:
    if shape == "chain":
        lines = ["fn f(x: f64[N], w: f64[N]) -> f64 {", "    a = x"]
        lines += [f"    a = tanh(a) * w + {0.5 + i % 7}" for i in range(n)]
        lines += ["    return sum(a)", "}"]
    elif shape == "wide":
        lines = ["fn f(x: f64[N], w: f64[N]) -> f64 {", "    v0 = x * w", "    v1 = x + w"]
        lines += [f"    v{i} = v{i - 1} * v{(i * 7) % (i - 1)} + v{i // 2}" for i in range(2, n)]
        lines += [f"    return sum(v{n - 1})", "}"]
    elif shape == "calls":
        lines = ["fn g0(x: f64[N], w: f64[N]) -> f64[N] {", "    return tanh(x) * w", "}"]
        for i in range(1, n):
            lines += [f"fn g{i}(x: f64[N], w: f64[N]) -> f64[N] {{", f"    return g{i - 1}(x, w) + x * {i % 5 + 1}", "}"]
        lines += ["fn f(x: f64[N], w: f64[N]) -> f64 {", f"    return sum(g{n - 1}(x, w))", "}"]
    elif shape == "flat":
        terms = " + ".join(f"x * {i % 9 + 1}" if i % 2 else f"w * {i % 7 + 1}" for i in range(n))
        lines = ["fn f(x: f64[N], w: f64[N]) -> f64 {", f"    return sum({terms})", "}"]
    else:
        raise ValueError(shape)
    return "\n".join(lines + ["grad f wrt w"]) + "\n"


_CHILD = r"""
import sys, time, json
from tapeless.compiler import compile_source
text = sys.stdin.read()
level = int(sys.argv[1])
c0, w0 = time.process_time(), time.perf_counter()
out = compile_source(text, opt_level=level, path="scale.tl")
print(json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0, "lines": out.count("\n")}))
"""


def measure(shape: str, n: int, level: int, timeout: float) -> dict:
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(level)], input=program(shape, n), text=True,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(r.stdout)


def exponent(points: list[tuple[int, float]]) -> float | None:
    pts = [(math.log(n), math.log(t)) for n, t in points if n >= 1000 and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--levels", default="0,1,2")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per compile before giving up")
    ap.add_argument("--json", help="also write every measurement to this file")
    a = ap.parse_args(argv)
    shapes = a.shapes.split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    levels = [int(v) for v in a.levels.split(",")]
    results = []
    print(f"{'shape':6} {'level':5} " + " ".join(f"{n:>9}" for n in sizes) + "   exponent (cpu, >= 1000)")
    for shape in shapes:
        for level in levels:
            row, points = [], []
            for n in sizes:
                m = measure(shape, n, level, a.timeout)
                results.append({"shape": shape, "size": n, "level": level, **m})
                if "error" in m:
                    row.append(f"{'failed':>9}")
                    print(f"  {shape} {n} -O{level}: {m['error']}", file=sys.stderr)
                else:
                    row.append(f"{m['cpu']:8.2f}s")
                    points.append((n, m["cpu"]))
            e = exponent(points)
            print(f"{shape:6} -O{level:<3} " + " ".join(row) + (f"   {e:.2f}" if e is not None else "   -"), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": os.uname().nodename, "cpus": os.cpu_count(), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
