"""The long fuzz run: many inputs in parallel worker processes, and a summary of the counts.

    python tests/fuzz/long_run.py                       # TAPELESS_FUZZ inputs (default 50,000), every core
    python tests/fuzz/long_run.py -n 5000 -j 1 --out /tmp/fuzz   # also write each failing input there
    python tests/fuzz/long_run.py --only 123 456        # replay inputs (what a failure message names)
    python tests/fuzz/long_run.py --minimize 123        # shrink input 123 while its problem stays

Inputs are numbered; input N of a seed is the same text everywhere, so a failure seen here or
in tests/test_fuzz.py is replayed with --only N (with --profile ci for the test's sizes). Each
worker runs a chunk of numbers in its own process; a worker that dies (a segfault, the OOM
killer) is reported as a failure of the input it was running, and the rest of its chunk goes on.
The exit status is 1 when any run broke the contract (tests/fuzz/oracle.py), else 0.
"""
from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `fuzz`

from fuzz.campaign import Failure, Stats, commands_for, run_campaign, summary  # noqa: E402
from fuzz.inputs import CI, LONG, make_input  # noqa: E402
from fuzz.oracle import judge, run_cli  # noqa: E402

PROFILES = {"ci": CI, "long": LONG}


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--inputs", type=int, default=int(os.environ.get("TAPELESS_FUZZ", "50000")))
    p.add_argument("--start", type=int, default=0, help="first input number")
    p.add_argument("--seed", type=int, default=int(os.environ.get("TAPELESS_FUZZ_SEED", "0")))
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--chunk", type=int, default=200, help="inputs per worker process")
    p.add_argument("--profile", choices=PROFILES, default="long")
    p.add_argument("--out", help="directory for the summary and each failing input (.tl and report)")
    p.add_argument("--only", type=int, nargs="+", metavar="N", help="replay these inputs, printing every run")
    p.add_argument("--minimize", type=int, metavar="N", help="shrink input N while its first problem stays")
    p.add_argument("--worker", nargs=4, metavar=("START", "STOP", "RESULT", "PROGRESS"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args) -> None:
    start, stop, result, progress = int(args.worker[0]), int(args.worker[1]), args.worker[2], args.worker[3]
    with open(progress, "w") as f:
        def mark(i):
            f.write(f"{i}\n")
            f.flush()

        stats = run_campaign(args.seed, start, stop, PROFILES[args.profile], progress=mark)
    with open(result, "wb") as f:
        pickle.dump(stats, f)


def _chunk(args, start: int, stop: int, scratch: str) -> Stats:
    """Inputs start..stop in worker processes; a worker that dies costs one input, not the chunk."""
    stats = Stats()
    while start < stop:
        result, progress = (os.path.join(scratch, f"{start}.{k}") for k in ("pickle", "progress"))
        cmd = [sys.executable, __file__, "--seed", str(args.seed), "--profile", args.profile,
               "--worker", str(start), str(stop), result, progress]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode == 0:
            with open(result, "rb") as f:
                stats.merge(pickle.load(f))
            return stats
        begun = [int(x) for x in Path(progress).read_text().split()] if os.path.exists(progress) else []
        dead = begun[-1] if begun else start
        inp = make_input(args.seed, dead, PROFILES[args.profile])
        stats.runs["worker process"] += 1
        stats.status["worker process"][proc.returncode] += 1
        stats.problems["a worker process died"] += 1
        stats.failures.append(Failure(inp, "worker process", ["(all commands of the input)"],
                                      [f"the worker process died with status {proc.returncode}"], proc.stderr[-2000:]))
        start = dead + 1  # the inputs before `dead` are lost from the counts: rerun them
        if begun[:-1]:
            stats.merge(_chunk(args, begun[0], dead, scratch))
    return stats


def write_failures(out: Path, failures: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in failures:
        stem = f"input{f.input.index}_{f.label.split()[0]}"
        data = f.input.data if isinstance(f.input.data, bytes) else f.input.data.encode("utf-8")
        (out / f"{stem}.tl").write_bytes(data)
        (out / f"{stem}.txt").write_text(f.report())


def run_parallel(args) -> Stats:
    """The chunks in worker processes; with --out, failures and a running summary are written as
    each chunk ends (a long run can be read, or stopped, before it finishes)."""
    total = Stats()
    t0 = time.time()
    chunks = [(a, min(a + args.chunk, args.start + args.inputs))
              for a in range(args.start, args.start + args.inputs, args.chunk)]
    with tempfile.TemporaryDirectory(prefix="tapeless-fuzz-long-") as scratch, \
            ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = 0
        for stats in pool.map(lambda c: _chunk(args, c[0], c[1], scratch), chunks):
            total.merge(stats)
            done += sum(stats.inputs.values())
            if args.out:
                write_failures(Path(args.out), stats.failures)
                (Path(args.out) / "summary.txt").write_text(f"(running: {done} inputs so far)\n{summary(total)}\n")
            rate = done / max(time.time() - t0, 1e-9)
            print(f"{done} inputs, {len(total.failures)} failures, {rate:.1f} inputs/s", file=sys.stderr, flush=True)
    return total


def replay(args) -> None:
    profile = PROFILES[args.profile]
    for n in args.only:
        stats = Stats()
        inp = make_input(args.seed, n, profile)
        print(f"== {inp.describe()}\n{inp.text}\n== commands: {[c for c, _ in commands_for(inp, profile)]}")
        from fuzz.campaign import run_input

        with tempfile.TemporaryDirectory() as base:
            run_input(inp, profile, stats, base)
        print(summary(stats))
        for f in stats.failures:
            print(f.report())


def minimize(args) -> None:
    """Greedy reduction: drop lines, then tokens, then characters, while the same problem remains."""
    from fuzz.campaign import _argv
    from fuzz.mutate import tokens

    profile = PROFILES[args.profile]
    inp = make_input(args.seed, args.minimize, profile)
    stats = Stats()
    with tempfile.TemporaryDirectory() as base:
        from fuzz.campaign import run_input

        run_input(inp, profile, stats, base)
    if not stats.failures:
        sys.exit(f"input {args.minimize} shows no problem")
    failure = stats.failures[0]
    command, kind = failure.argv[0], failure.problems[0].split(":")[0]
    extra = next(e for c, e in commands_for(inp, profile) if c == command and failure.label.startswith(c))

    def still_fails(text: str) -> bool:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "min.tl")
            Path(src).write_text(text, encoding="utf-8")
            argv, outputs = _argv(command, extra, src, d)
            run = run_cli(argv, profile.seconds)
            verdict = judge(run, command, src, text, outputs, set(os.listdir(d)), {"min.tl"})
            return any(p.split(":")[0] == kind for p in verdict.problems)

    text = inp.text
    for split, glue in ((lambda t: t.split("\n"), "\n"), (lambda t: [s for _, s in tokens(t)], ""), (list, "")):
        parts = split(text)
        size = max(1, len(parts) // 2)
        while size >= 1:
            i = 0
            while i < len(parts):
                trial = parts[:i] + parts[i + size:]
                if trial and still_fails(glue.join(trial)):
                    parts = trial
                else:
                    i += size
            size //= 2
        text = glue.join(parts)
    print(f"{failure.problems[0]}\ncommand: tapeless {command} FILE {' '.join(extra)}\n"
          f"minimal input ({len(text)} chars):\n{text}")


def main(argv=None) -> int:
    args = _args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.only:
        replay(args)
        return 0
    if args.minimize is not None:
        minimize(args)
        return 0
    t0 = time.time()
    stats = run_parallel(args)
    text = (f"tapeless fuzz, seed {args.seed}, profile {args.profile}, inputs {args.start}.."
            f"{args.start + args.inputs - 1}, {args.jobs} process(es), {time.time() - t0:.0f} s\n" + summary(stats))
    print(text)
    for f in stats.failures[:20]:
        print(f.report())
    if args.out:
        (Path(args.out) / "summary.txt").write_text(text + "\n")
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
