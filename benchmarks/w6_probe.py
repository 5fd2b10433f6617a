"""W6 probe, run by run.py in a fresh interpreter so "first compile" and "first cached load"
mean what a user sees in a new process (imports are done before the clock starts).

    python w6_probe.py compile FILE.tl REPEATS   -> JSON: first compile_source, repeats, load(cache=False)
    python w6_probe.py cached  FILE.tl REPEATS   -> JSON: first load() with a warm cache, repeats

Uses the TAPELESS_CACHE_DIR of its environment (run.py points it at a temporary directory).
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy  # noqa: F401 - imported before timing: every generated module needs it


def _listing(d):
    try:
        return {p.name for p in Path(d).iterdir() if p.suffix == ".py"}
    except OSError:
        return set()


def main():
    mode, path, repeats = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    out = {"mode": mode}
    if mode == "compile":
        from tapeless.compiler import compile_source
        from tapeless.runtime import load

        text = path.read_text(encoding="utf-8")
        t0 = time.perf_counter()
        compile_source(text, path=str(path))
        out["first_compile"] = time.perf_counter() - t0
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            compile_source(text, path=str(path))
            samples.append(time.perf_counter() - t0)
        out["compile"] = samples
        samples = []
        for _ in range(max(1, repeats // 2)):
            t0 = time.perf_counter()
            load(path, cache=False)
            samples.append(time.perf_counter() - t0)
        out["load_nocache"] = samples
    elif mode == "cached":
        from tapeless.runtime import load

        cache = os.environ.get("TAPELESS_CACHE_DIR", "")
        before = _listing(cache)
        t0 = time.perf_counter()
        load(path)
        out["first_load"] = time.perf_counter() - t0
        out["cache_was_warm"] = _listing(cache) == before
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            load(path)
            samples.append(time.perf_counter() - t0)
        out["load"] = samples
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
