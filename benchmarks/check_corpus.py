"""`tapeless check` over every program of the project, timed: how long each takes, what it says.

    python benchmarks/check_corpus.py              # tests/cases, examples, workloads, generated
    python benchmarks/check_corpus.py --timeout 60 --only chain

Each file runs in its own `tapeless check` process (the time includes starting Python and
compiling the file); generated programs are the issue #15 cases: statement chains of 50 and
1,000 statements and the programs that once made the check slow or wrong (fuzz finding #3
among them). A measurement,
not a test: the exit status is 1 only when a check disagreed or could not run.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^(\d+) of (\d+) derivative\(s\) agree with SymPy(.*)$", re.M)


def chain(n: int) -> str:
    body = "\n".join(["    a = x"] + ["    a = tanh(a) * x + 0.5"] * n)
    return f"fn f(x: f64[N]) -> f64 {{\n{body}\n    return sum(a)\n}}\ngrad f wrt x\n"


GENERATED = {
    "chain50": chain(50),
    "chain1000": chain(1000),
    "f32_div6": "fn f(x: f32[N]) -> f32 { return sum(x * x) / 6.0 }\ngrad f wrt x\n",
    "f32_mean": "fn f(x: f32[3]) -> f32 { return mean(x * x) }\ngrad f wrt x\n",
    "bce_mean": "# domain p: unit\nfn f(p: f64[3], y: f64[3]) -> f64 { return mean(binary_cross_entropy(p, y)) }\n"
                "grad f wrt p\n",
    "log2": "# domain x: positive\nfn f(x: f64) -> f64 { return 3.0 * log(x) / log(2.0) }\ngrad f wrt x\n",
    "prod34": "fn f(x: f64[3, 4]) -> f64[3] { return prod(x, axis=1) }\nvjp f wrt x\n",
    "max_min_45": "fn f(x: f64[4, 5]) -> f64 { return max(x) + min(x) }\nvjp f wrt x\n",
    "max_min_axes": "fn f(x: f64[3, 4]) -> f64[3] { return max(x, axis=1) }\nvjp f wrt x\n"
                    "fn g(x: f64[3, 4]) -> f64[4] { return min(x, axis=0) }\nvjp g wrt x\n",
    "pow2x": "fn f(x: f64[N]) -> f64 { return sum(2.0 ** x) }\ngrad f wrt x\n",
    "std_ddof1": "fn f(x: f64[3, 4]) -> f64[3] { return std(x, axis=1, ddof=1) }\nvjp f wrt x\n",
    "zero_pow_y": "fn f(y: f64[N]) -> f64 { return sum(0.0 ** y) }\ngrad f wrt y\n",
    "x_pow_0": "fn f(x: f64[N]) -> f64 { return sum(x ** 0.0) }\ngrad f wrt x\n",
    "pole": "fn f(x: f64[N]) -> f64 { return sum(relu(x) / (x - 1.0)) }\ngrad f wrt x\n",
    "size_zero_div": "fn f(x: f64[N]) -> f64 { return sum(x * x) / (N - 2) }\ngrad f wrt x\n",
    "fuzz3_f32_subnormal": "fn f(x: f32) -> f32 { return tan(x) ** 1e-45 }\nhvp f wrt x\n",
    "f32_rounds_to_one": "fn f(x: f32) -> f32 { return tan(x) ** 1e-8 }\ngrad f wrt x\n",
    "f32_beyond_range": "fn f(x: f32) -> f32 { return x * 1e20 * 1e20 * 1e20 }\ngrad f wrt x\n",
}


def run(path: Path, timeout: float, sizes: str = "") -> tuple[float, str, str]:
    argv = [sys.executable, "-c", "import sys; from tapeless.compiler.tools.cli import main; sys.exit(main())",
            "check", str(path)] + (["--sizes", sizes] if sizes else [])
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, "TIMEOUT", ""
    seconds = time.perf_counter() - t0
    m = SUMMARY.search(p.stdout)
    verdict = (f"{m[1]}/{m[2]} agree{m[3]}" if m else (p.stderr.strip().splitlines() or ["no output"])[-1])
    return seconds, verdict, p.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--only", default="", help="run the files whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each check's table")
    args = ap.parse_args(argv)
    files = sorted((ROOT / "tests" / "cases").glob("*.tl")) + sorted((ROOT / "examples").glob("*.tl")) + \
        sorted((ROOT / "benchmarks" / "workloads").glob("*.tl"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in GENERATED.items():
            (Path(tmp) / f"{name}.tl").write_text(text)
            files.append(Path(tmp) / f"{name}.tl")
        rows, bad = [], 0
        for f in files:
            if args.only not in f.name:
                continue
            seconds, verdict, out = run(f, args.timeout)
            label = f.name if f.is_relative_to(Path(tmp)) else str(f.relative_to(ROOT))
            rows.append((label, seconds, verdict))
            bad += "disagree" in verdict or "could not" in verdict or verdict == "TIMEOUT"
            print(f"{label:45s} {seconds:7.2f}s  {verdict}", flush=True)
            if args.verbose:
                print(out)
    total = sum(s for _, s, _ in rows)
    slow = max(rows, key=lambda r: r[1]) if rows else None
    print(f"\n{len(rows)} files, {total:.1f} s in all" + (f"; slowest {slow[0]} {slow[1]:.1f} s" if slow else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
