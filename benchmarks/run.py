#!/usr/bin/env python3
"""tapeless benchmark suite: W1..W14, tapeless against hand-written NumPy (and torch / jax).

    python benchmarks/run.py                      # everything, full repeats
    python benchmarks/run.py --quick              # smoke run: few repeats, same sizes
    python benchmarks/run.py --only W3,W4 --json out.json

See benchmarks/README.md for the workloads, the methodology and how to read the table.
This is a measurement tool, not a test: it asserts that every implementation computes the
same values (and exits with status 1 when one does not), never anything about time.
"""
from __future__ import annotations

import argparse
import os
import sys

# ----------------------------------------------------------------------------------------
# Process environment, settled before numpy (and its OpenBLAS) is imported. Only this
# process (and the W6 probes it starts) is affected; nothing global is changed.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fast smoke run: fewer repeats and shorter warm-up")
    p.add_argument("--only", default="", help="comma-separated workloads to run, e.g. W3,W4 (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE as JSON")
    p.add_argument("--no-peers", action="store_true", help="do not run the torch / jax versions even if installed")
    p.add_argument("--threads", type=int, default=0,
                   help="BLAS threads for numpy and intra-op threads for torch (default: the BLAS default)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help=f"do not unset {' / '.join(OPENBLAS_OVERRIDES)} before importing numpy")
    p.add_argument("--rounds", type=int, default=0, help="samples per implementation (default 25, --quick 5)")
    # internal: run one peer library's versions in a child process of its own (see run_peer)
    p.add_argument("--peer-child", choices=("torch", "jax"), help=argparse.SUPPRESS)
    p.add_argument("--peer-keys", default="", help=argparse.SUPPRESS)
    p.add_argument("--peer-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = _parse_args()
ENV_NOTES = []
for _name in OPENBLAS_OVERRIDES:
    if _name in os.environ:
        if ARGS.keep_openblas_env:
            ENV_NOTES.append(f"{_name}={os.environ[_name]!r} kept (--keep-openblas-env)")
        else:
            ENV_NOTES.append(f"{_name} unset in this process before importing numpy (was {os.environ.pop(_name)!r})")
    else:
        ENV_NOTES.append(f"{_name} not set")

import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# A private compile cache for the whole run: nothing is written to the user's cache.
CACHE_DIR = tempfile.mkdtemp(prefix="tapeless-bench-cache-")
os.environ["TAPELESS_CACHE_DIR"] = CACHE_DIR

import numpy as np  # noqa: E402

import harness  # noqa: E402
import machine  # noqa: E402
import suite  # noqa: E402
from harness import fmt_bytes, fmt_range, fmt_ratio, fmt_time, verdict  # noqa: E402

PEER_NAMES = {"torch": "torch eager", "jax": "jax.jit"}


def _busy() -> str:
    """A warning when other processes keep the CPUs busy (timings are then unreliable)."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return ""
    cpus = machine.core_count()[1]
    if load1 > 0.5 * cpus:
        return (f"the machine is busy (1-minute load {load1:.2f} on {cpus} CPUs): timings, multi-threaded BLAS "
                "ones above all, are unreliable; ratios may be off by a large factor (--threads 1 steadies the BLAS ones)")
    return ""


def _select(only: str) -> list[str]:
    if not only.strip():
        return list(suite.ALL)
    keys = []
    for item in only.split(","):
        item = item.strip().upper()
        if not item:
            continue
        if not item.startswith("W"):
            item = "W" + item
        if item not in suite.ALL:
            sys.exit(f"run.py: unknown workload {item!r}; choose from {', '.join(suite.ALL)}")
        keys.append(item)
    return [k for k in suite.ALL if k in keys]


# ---------------------------------------------------------------------------------- peers
# torch and jax run in child processes of their own, one per workload, never in the process
# that times NumPy: three thread pools (OpenBLAS, torch's OpenMP, XLA's) on the same cores
# make each other spin and wait, and the interleaved timing would then measure that
# contention instead of the implementations.
PEER_MODULES = {"torch": "peers.torch_versions", "jax": "peers.jax_versions"}


def run_peer(short: str, keys: list[str], settings_flags: list[str]) -> dict:
    """Run `run.py --peer-child SHORT` for the workloads `keys`; its JSON report."""
    fd, out = tempfile.mkstemp(prefix=f"tapeless-bench-{short}-", suffix=".json")
    os.close(fd)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--peer-child", short,
               "--peer-keys", ",".join(keys), "--peer-out", out, *settings_flags]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        text = Path(out).read_text() if os.path.getsize(out) else ""
        if proc.returncode != 0 or not text:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
            return {"available": False, "why": f"child process failed (status {proc.returncode}): "
                                               + " / ".join(tail), "results": {}}
        return json.loads(text)
    finally:
        os.unlink(out)


def child_main() -> int:
    """The --peer-child process: build, check and time one peer's versions of the workloads."""
    import importlib

    short = ARGS.peer_child
    mod = importlib.import_module(PEER_MODULES[short])
    report = {"available": mod.AVAILABLE, "why": mod.WHY, "describe": "", "results": {}}
    if mod.AVAILABLE:
        mod.setup(ARGS.threads or machine.blas_info()["threads"] or os.cpu_count())
        report["describe"] = mod.describe()
        settings = _settings()
        for key in [k for k in ARGS.peer_keys.split(",") if k]:
            wl = suite.BUILDERS[key](suite.Context({PEER_NAMES[short]: mod}, with_tapeless=False))
            entry = {"notes": [n for n in wl.notes if n.startswith(PEER_NAMES[short])], "impls": []}
            for impl in [i for i in wl.impls if i.kind == "peer"]:
                harness.check_against(impl, wl.reference, wl.rtol, wl.atol_frac, wl.dtypes)
                harness.time_interleaved([impl], settings)
                harness.recheck(impl, wl.reference, wl.rtol, wl.atol_frac, wl.dtypes)
                entry["impls"].append({"name": impl.name, "check": impl.check, "max_err": impl.max_err,
                                       "samples": impl.samples, "inner": impl.inner})
            report["results"][key] = entry
    Path(ARGS.peer_out).write_text(json.dumps(report))
    return 0


def _settings() -> harness.Settings:
    settings = harness.QUICK if ARGS.quick else harness.Settings()
    if ARGS.rounds:
        settings.rounds = ARGS.rounds
    return settings


def _settings_flags() -> list[str]:
    flags = ["--quick"] if ARGS.quick else []
    if ARGS.rounds:
        flags += ["--rounds", str(ARGS.rounds)]
    if ARGS.threads:
        flags += ["--threads", str(ARGS.threads)]
    return flags


def probe_peers(enabled: bool) -> tuple[list[str], list[str]]:
    """(short names of the usable peers, header lines)."""
    if not enabled:
        return [], ["peers   : disabled (--no-peers)"]
    usable, lines = [], []
    for short in PEER_MODULES:
        rep = run_peer(short, [], _settings_flags())
        if rep["available"]:
            usable.append(short)
            lines.append(f"{short:8s}: {rep['describe']} (timed in a separate process)")
        else:
            lines.append(f"{short:8s}: not importable ({rep['why']}); {PEER_NAMES[short]} rows skipped")
    return usable, lines


def add_peer_rows(wl, peers: list[str]) -> None:
    for short in peers:
        rep = run_peer(short, [wl.key], _settings_flags())
        entry = rep.get("results", {}).get(wl.key)
        if entry is None:
            wl.notes.append(f"{PEER_NAMES[short]}: not measured ({rep.get('why', 'no result')})")
            continue
        wl.notes.extend(entry["notes"])
        for r in entry["impls"]:
            impl = harness.Impl(r["name"], "peer", None, None, memory=False)
            impl.check, impl.samples, impl.inner = r["check"], r["samples"], r["inner"]
            impl.max_err = float("nan") if r["max_err"] is None else r["max_err"]
            wl.impls.append(impl)


# ---------------------------------------------------------------------------------- W1..W5, W7

def run_workload(wl, settings) -> None:
    hand = wl.impls[0]
    for impl in wl.impls:
        harness.check_against(impl, wl.reference, wl.rtol, wl.atol_frac, wl.dtypes)
    if not hand.ok:
        wl.notes.append(f"hand version disagrees with the float64 reference ({hand.check}): nothing timed")
        return
    harness.time_interleaved(wl.impls, settings)
    for impl in wl.impls:
        harness.recheck(impl, wl.reference, wl.rtol, wl.atol_frac, wl.dtypes)
        if impl.ok and impl.memory:
            impl.peak_bytes = harness.peak_memory(impl.call)


def _ratio(a, b):
    if a is None or b is None or not (a.ok and b.ok) or not a.samples or not b.samples:
        return None
    return a.median / b.median


def summarize(wl) -> dict:
    by = {i.name: i for i in wl.impls}
    hand = wl.impls[0]
    mem_hand = by.get(wl.mem_hand) or hand  # (W5: the hand version on as many threads as tapeless)
    tl = by.get(wl.primary)
    res = {"key": wl.key, "title": wl.title, "detail": wl.detail, "notes": list(wl.notes), "impls": {}}
    for impl in wl.impls:
        res["impls"][impl.name] = {
            "kind": impl.kind, "check": impl.check, "max_rel_err": None if math.isnan(impl.max_err) else impl.max_err,
            "median_s": impl.median if impl.samples else None,
            "min_s": min(impl.samples) if impl.samples else None,
            "max_s": max(impl.samples) if impl.samples else None,
            "calls_per_sample": impl.inner, "samples_s": impl.samples, "peak_bytes": impl.peak_bytes,
            "ratio_vs_hand": _ratio(impl, hand), "target_vs_hand": wl.targets.get(impl.name),
            "peak_ratio_vs_hand": (impl.peak_bytes / mem_hand.peak_bytes
                                   if impl.peak_bytes is not None and mem_hand.peak_bytes else None),
        }
    res["tapeless_over_hand"] = _ratio(tl, hand)
    res["target"] = wl.targets.get(wl.primary)
    for short, peer in PEER_NAMES.items():
        res[f"tapeless_over_{short}"] = _ratio(tl, by.get(peer))
    res["peak_tapeless_bytes"] = tl.peak_bytes if tl else None
    res["peak_hand_bytes"] = mem_hand.peak_bytes
    res["mem_hand"] = mem_hand.name
    res["peak_ratio"] = res["impls"][wl.primary]["peak_ratio_vs_hand"] if tl else None
    res["mem_target"] = suite.MEM_TARGET
    res["ok"] = all(i.ok for i in wl.impls) and tl is not None
    return res


def _target_col(ratio, target) -> str:
    return f"<={target:.2f} {verdict(ratio, target)}" if target else ""


def print_workload(wl, res) -> None:
    print(f"\n{wl.key}  {wl.title}")
    print(f"    {wl.detail}")
    print(f"    {'implementation':30s} {'median':>9s}  {'min .. max':22s} {'/hand':>6s} {'time target':14s} "
          f"{'peak mem':>10s} {'/hand':>6s} {'mem target':14s} check")
    hand = wl.impls[0]
    for impl in wl.impls:
        r = res["impls"][impl.name]
        is_hand = impl is hand
        is_mem_hand = impl.name == res["mem_hand"]
        ratio = "1.00" if is_hand else fmt_ratio(r["ratio_vs_hand"])
        t_col = "" if is_hand else _target_col(r["ratio_vs_hand"], wl.targets.get(impl.name))
        if not impl.memory:
            mem, mratio, m_col = "n/a", "", ""
        else:
            mem = fmt_bytes(impl.peak_bytes)
            mratio = ("1.00" if impl.peak_bytes else "-") if is_mem_hand else fmt_ratio(r["peak_ratio_vs_hand"])
            m_col = ("" if is_hand or is_mem_hand or impl.peak_bytes is None
                     else _target_col(r["peak_ratio_vs_hand"], suite.MEM_TARGET))
        check = "ok" if impl.ok else f"FAILED: {impl.check}"
        if impl.ok and not math.isnan(impl.max_err):
            check += f" (rel err {impl.max_err:.0e})"
        if impl.inner > 1 and impl.samples:
            check += f", {impl.inner} calls/sample"
        median = fmt_time(impl.median) if impl.samples else "-"
        print(f"    {impl.name:30s} {median:>9s}  {fmt_range(impl.samples):22s} {ratio:>6s} {t_col:14s} "
              f"{mem:>10s} {mratio:>6s} {m_col:14s} {check}")
    parts = [f"tapeless/hand {fmt_ratio(res['tapeless_over_hand'])}"]
    if res["target"]:
        parts[-1] += f" (target <= {res['target']:.2f}: {verdict(res['tapeless_over_hand'], res['target'])})"
    for short in PEER_NAMES:
        ratio = res[f"tapeless_over_{short}"]
        parts.append(f"tapeless/{short} {fmt_ratio(ratio) if ratio is not None else 'n/a'}")
    if res["peak_ratio"] is not None:
        against = "" if res["mem_hand"] == hand.name else f" (against '{res['mem_hand']}')"
        parts.append(f"peak memory tapeless/hand{against} {fmt_ratio(res['peak_ratio'])} "
                     f"({fmt_bytes(res['peak_tapeless_bytes'])} / {fmt_bytes(res['peak_hand_bytes'])}; "
                     f"target <= {suite.MEM_TARGET:.2f}: {verdict(res['peak_ratio'], suite.MEM_TARGET)})")
    print("    -> " + " | ".join(parts))
    _print_notes(wl.notes)


def _print_notes(notes) -> None:
    for note in notes:
        lines = note.splitlines() or [""]
        print(f"    note: {lines[0]}")
        for line in lines[1:]:
            print(f"          {line}")


# ---------------------------------------------------------------------------------- W6

def _probe_runs(mode: str, path: Path, processes: int, repeats: int, res: dict) -> list:
    """w6_probe.py MODE PATH in `processes` fresh interpreters: their JSON reports (a failure
    is a note in res and sets res["ok"] to False)."""
    runs = []
    for _ in range(processes):
        proc = subprocess.run([sys.executable, str(HERE / "w6_probe.py"), mode, str(path), str(repeats)],
                              capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            res["ok"] = False
            res["notes"].append(f"probe {mode} of {path.name} failed (status {proc.returncode}):\n"
                                f"{proc.stderr.strip()[-2000:]}")
            return runs
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return runs


def _time_rows(rows) -> list:
    return [{"what": what, "samples_s": s, "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
             "target_s": tgt, "status": verdict(statistics.median(s), tgt, strict=True) if tgt else ""}
            for what, s, tgt in rows if s]


def _compile_rows(comp: list) -> list:
    return [("compile_source, first in a fresh process", [r["first_compile"] for r in comp], suite.W6_COMPILE_TARGET),
            ("compile_source, repeated (warm)", [s for r in comp for s in r["compile"]], suite.W6_COMPILE_TARGET),
            ("load(cache=False): compile+write+import", [s for r in comp for s in r["load_nocache"]], None)]


def _probe_sizes(quick: bool) -> tuple[int, int]:
    return (2, 3) if quick else (7, 10)


def run_w6(quick: bool) -> dict:
    path = suite.TL / "w4_mlp.tl"
    processes, repeats = _probe_sizes(quick)
    res = {"key": "W6", "title": "compile time and cached-load time of W4's file (w4_mlp.tl)", "notes": [], "ok": True}
    # warm the (private) cache in this process first, so the "cached" probes find the entry
    from tapeless.compiler import CompileError
    from tapeless.runtime import load

    try:
        load(path)
    except CompileError as exc:
        res["ok"] = False
        res["notes"].append(f"w4_mlp.tl does not compile:\n{exc}")
        return res

    comp = _probe_runs("compile", path, processes, repeats, res)
    cached = _probe_runs("cached", path, processes, repeats, res)
    rows = _compile_rows(comp) if comp else []
    if cached:
        cold = [r for r in cached if not r["cache_was_warm"]]
        if cold:
            res["notes"].append(f"{len(cold)} cached-load probe(s) found the cache cold (did the compiler change "
                                "during the run?); their first load is excluded")
        firsts = [r["first_load"] for r in cached if r["cache_was_warm"]]
        if firsts:
            rows.append(("load(), warm cache, first in a fresh process", firsts, suite.W6_CACHED_TARGET))
        rows.append(("load(), warm cache, repeated in-process", [s for r in cached for s in r["load"]], suite.W6_CACHED_TARGET))
    res["rows"] = _time_rows(rows)
    res["processes"], res["repeats_per_process"] = processes, repeats
    return res


def probe_compile(wl, quick: bool) -> dict:
    """The compile time of a workload's .tl file (suite.COMPILE_TIMED, e.g. W10's loop), measured
    as W6 measures W4's file; {} when the workload has none or its file did not compile (a note
    already says so). A failed probe is a note of the workload."""
    name = suite.COMPILE_TIMED.get(wl.key)
    tl = next((i for i in wl.impls if i.name == wl.primary), None)
    if name is None or tl is None:
        return {}
    processes, repeats = _probe_sizes(quick)
    out = {"notes": wl.notes, "ok": True}
    rows = _time_rows(_compile_rows(_probe_runs("compile", suite.TL / name, processes, repeats, out)))
    return {"compile_rows": rows, "compile_file": name, "compile_processes": processes, "compile_ok": out["ok"]}


def print_compile_rows(res) -> None:
    if not res.get("compile_rows"):
        return
    print(f"    compile time of {res['compile_file']} (W6's probe, {res['compile_processes']} fresh interpreters):")
    for row in res["compile_rows"]:
        tgt = f"< {fmt_time(row['target_s'])} {row['status']}" if row["target_s"] else ""
        print(f"      {row['what']:44s} {fmt_time(row['median_s']):>9s}  {fmt_range(row['samples_s']):22s} {tgt}")


def print_w6(res) -> None:
    print(f"\nW6  {res['title']}")
    print(f"    timed in-process after imports, in {res.get('processes', '?')} fresh interpreters "
          f"({res.get('repeats_per_process', '?')} repeats each), private TAPELESS_CACHE_DIR")
    print(f"    {'measurement':46s} {'median':>9s}  {'min .. max':22s} target")
    for row in res.get("rows", []):
        tgt = f"< {fmt_time(row['target_s'])} {row['status']}" if row["target_s"] else ""
        print(f"    {row['what']:46s} {fmt_time(row['median_s']):>9s}  {fmt_range(row['samples_s']):22s} {tgt}")
    _print_notes(res["notes"])


W6_SHORT = {"compile_source, first in a fresh process": "W6 compile (1st)",
            "compile_source, repeated (warm)": "W6 compile (warm)",
            "load(), warm cache, first in a fresh process": "W6 cached load (1st)",
            "load(), warm cache, repeated in-process": "W6 cached load (rep.)"}


def print_summary(results: list) -> None:
    print("\nSummary: time ratios are tapeless / other (below 1: tapeless is faster); "
          "memory is the peak of one gradient call")
    print(f"    {'workload':24s} {'tapeless':>9s} {'hand':>9s} {'tl/hand':>7s} {'target':>6s} {'status':7s} "
          f"{'tl/torch':>8s} {'tl/jax':>6s}  {'peak tl':>10s} {'peak hand':>10s} {'ratio':>6s} {'status':7s}")
    for res in results:
        if res["key"] == "W6":
            for row in res.get("rows", []):
                if row["target_s"]:
                    label = W6_SHORT.get(row["what"], "W6 " + row["what"])
                    print(f"    {label:24s} {fmt_time(row['median_s']):>9s} {'':>9s} {'':>7s} "
                          f"{'<' + fmt_time(row['target_s']).replace(' ', ''):>6s} {row['status']:7s}")
            if not res.get("rows"):
                print(f"    {'W6':24s} not measured (see the notes above)")
            continue
        impls = res["impls"]
        hand = next(iter(impls.values()))
        shown = False
        for name, r in impls.items():
            if r["kind"] not in ("tapeless", "tapeless-alt"):
                continue
            tgt = r["target_vs_hand"]
            if r["kind"] == "tapeless-alt" and tgt is None:
                continue
            shown = True
            label = res["key"] + ("" if r["kind"] == "tapeless" else " " + name.replace("tapeless ", ""))
            primary = r["kind"] == "tapeless"
            tl_torch = res.get("tapeless_over_torch") if primary else None
            tl_jax = res.get("tapeless_over_jax") if primary else None
            status = verdict(r["ratio_vs_hand"], tgt) if tgt else ""
            if r["check"] != "ok":
                status = "WRONG" if r["check"] else "n/a"
            mstatus = verdict(r["peak_ratio_vs_hand"], suite.MEM_TARGET) if r["peak_ratio_vs_hand"] else ""
            print(f"    {label[:24]:24s} {fmt_time(r['median_s']) if r['median_s'] else '-':>9s} "
                  f"{fmt_time(hand['median_s']) if hand['median_s'] else '-':>9s} {fmt_ratio(r['ratio_vs_hand']):>7s} "
                  f"{('<=' + format(tgt, '.2f')) if tgt else '':>6s} {status:7s} "
                  f"{fmt_ratio(tl_torch) if tl_torch else 'n/a':>8s} {fmt_ratio(tl_jax) if tl_jax else 'n/a':>6s}  "
                  f"{fmt_bytes(r['peak_bytes']):>10s} {fmt_bytes(res['peak_hand_bytes']):>10s} "
                  f"{fmt_ratio(r['peak_ratio_vs_hand']):>6s} {mstatus:7s}")
        if not shown:
            print(f"    {res['key']:24s} tapeless version unavailable (see the notes above)")
        for row in res.get("compile_rows", []):
            if row["target_s"]:
                label = W6_SHORT.get(row["what"], row["what"]).replace("W6", res["key"])
                print(f"    {label:24s} {fmt_time(row['median_s']):>9s} {'':>9s} {'':>7s} "
                      f"{'<' + fmt_time(row['target_s']).replace(' ', ''):>6s} {row['status']:7s}")


# ---------------------------------------------------------------------------------- main

def main() -> int:
    keys = _select(ARGS.only)
    settings = _settings()
    if ARGS.threads:
        if not machine.set_blas_threads(ARGS.threads):
            ENV_NOTES.append(f"could not set the BLAS thread count to {ARGS.threads}")
    blas_threads = machine.blas_info()["threads"] or (os.cpu_count() or 1)
    peers, peer_lines = probe_peers(not ARGS.no_peers)

    import tapeless.compiler

    started = time.time()
    print("tapeless benchmark suite" + (" (--quick: few repeats, timings are indicative only)" if ARGS.quick else ""))
    for line in machine.describe():
        print(line)
    print(f"tapeless: {tapeless.compiler.VERSION} ({Path(tapeless.compiler.__file__).parent.parent})")
    for line in peer_lines:
        print(line)
    print(f"threads : numpy BLAS {blas_threads}" + ("; torch set to the same" if "torch" in peers else "")
          + "; NumPy's elementwise ufuncs (so the hand W2 and W5) run on 1 thread"
          + ("; jax uses XLA's own pool (all cores)" if "jax" in peers else ""))
    for note in ENV_NOTES:
        print(f"env     : {note}")
    print(f"env     : TAPELESS_CACHE_DIR={CACHE_DIR} (private to this run, removed at the end)")
    print(f"timing  : {settings.rounds} interleaved samples per implementation (fewer if over {settings.budget:g} s), "
          f">= {fmt_time(settings.min_sample)} each, {fmt_time(settings.warmup)} warm-up; "
          f"load average at start {machine.load_average()}")

    busy = _busy()
    if busy:
        print(f"WARNING : {busy}")
    ctx = suite.Context()
    results, all_ok = [], True
    for key in keys:
        if key == "W6":
            res = run_w6(ARGS.quick)
            print_w6(res)
        else:
            wl = suite.BUILDERS[key](ctx)
            run_workload(wl, settings)
            add_peer_rows(wl, peers)
            compiled = probe_compile(wl, ARGS.quick)
            res = summarize(wl)
            res.update(compiled)
            res["ok"] = res["ok"] and compiled.get("compile_ok", True)
            print_workload(wl, res)
            print_compile_rows(res)
        sys.stdout.flush()
        all_ok &= bool(res["ok"])
        results.append(res)

    print_summary(results)
    print(f"\nload average at end {machine.load_average()}; wall time {time.time() - started:.0f} s")
    busy_end = _busy()
    if busy or busy_end:
        print(f"WARNING : {busy_end or busy.replace('is busy', 'was busy at the start')}")
    if ctx.problems:
        print("\ncompiler problems met:")
        for key, what, detail in ctx.problems:
            print(f"    {key}: {what}")
    if not all_ok:
        print("\nSOME IMPLEMENTATIONS ARE MISSING OR DISAGREE (see FAILED / notes above): "
              "their timings are not comparable and were skipped.")
    if ARGS.json:
        doc = {"machine": machine.describe(), "peers": peer_lines, "env": ENV_NOTES,
               "settings": vars(settings), "quick": ARGS.quick, "tapeless_version": tapeless.compiler.VERSION,
               "numpy_version": np.__version__, "results": results,
               "problems": [{"workload": k, "what": w, "detail": d} for k, w, d in ctx.problems]}
        Path(ARGS.json).write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {ARGS.json}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    try:
        code = child_main() if ARGS.peer_child else main()
    finally:
        shutil.rmtree(CACHE_DIR, ignore_errors=True)
    sys.exit(code)
