"""A fuzz campaign: inputs seed:start..stop, each through several `tapeless` commands, counted.

Which commands an input goes through is fixed by its number: one `compile` variant (the -O
levels, the CuPy backend, --no-checks, standard output, the default output path), then one
`ir` stage (odd numbers) or one `graph` variant (even numbers), and `check` for every
`check_every`-th (those inputs are generated small). Over a run every variant gets its share.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tapeless.compiler.pipeline import STAGES

from .inputs import CI, FuzzInput, Profile, for_check, make_input
from .oracle import judge, run_cli

COMPILE_VARIANTS = [["-O1"], ["-O0"], ["-O2"], ["--backend", "cupy"], ["--no-checks"], ["-O0", "--no-checks"],
                    ["-O2", "--backend", "cupy", "--no-checks"], ["-o", "-"], ["default output"]]
GRAPH_VARIANTS = [[], ["--stage", "typed"], ["--stage", "optimized"], ["--collapse", "statements"], ["-o", "OUT"]]


@dataclass
class Failure:
    input: FuzzInput
    label: str
    argv: list[str]
    problems: list[str]
    stderr: str

    def report(self) -> str:
        text = self.input.data  # (bytes are shown as bytes)
        return (f"{self.input.describe()}\n  command: tapeless {' '.join(self.argv)}\n"
                + "".join(f"  problem: {p}\n" for p in self.problems)
                + f"  stderr: {self.stderr[-600:]!r}\n  input ({len(text)} chars): {text[:2000]!r}\n")


@dataclass
class Stats:
    runs: Counter = field(default_factory=Counter)  # by command label
    status: dict = field(default_factory=lambda: defaultdict(Counter))  # label -> {0: n, 1: n, 2: n, "timeout": n}
    problems: Counter = field(default_factory=Counter)  # kind of problem -> n
    notes: Counter = field(default_factory=Counter)
    note_examples: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    inputs: Counter = field(default_factory=Counter)  # by kind
    seconds: Counter = field(default_factory=Counter)  # by command

    def merge(self, other: "Stats") -> None:
        for name in ("runs", "problems", "notes", "inputs", "seconds"):
            getattr(self, name).update(getattr(other, name))
        for label, c in other.status.items():
            self.status[label].update(c)
        for k, v in other.note_examples.items():
            self.note_examples.setdefault(k, v)
        self.failures += other.failures


def label_of(command: str, extra: list[str]) -> str:
    return " ".join([command] + [a for a in extra if a not in ("-o", "OUT")] + (["-o FILE"] if "OUT" in extra else []))


def commands_for(inp: FuzzInput, profile: Profile) -> list[tuple[str, list[str]]]:
    i = inp.index
    rng = random.Random(f"tapeless-fuzz-plan:{inp.seed}:{i}")
    plan = [("compile", COMPILE_VARIANTS[i % len(COMPILE_VARIANTS)])]
    if i % 2:
        plan.append(("ir", ["--stage", STAGES[(i // 2) % len(STAGES)]]))
    else:
        names = re.findall(r"\bfn\s+([A-Za-z_]\w*)", inp.text) or ["f"]
        fn = rng.choice(names + [names[0] + "_grad", "nope"]) if rng.random() < 0.2 else rng.choice(names)
        plan.append(("graph", ["--fn", fn] + GRAPH_VARIANTS[(i // 2) % len(GRAPH_VARIANTS)]))
    if for_check(profile, i) and len(inp.text) <= profile.check_max_chars:
        sizes = ",".join(f"{s}=2" for s in ("N", "M", "K") if re.search(rf"[\[,]\s*{s}\s*[,\]]", inp.text))
        plan.append(("check", ["--sizes", sizes] if sizes else []))
    return plan


def _argv(command: str, extra: list[str], src: str, workdir: str) -> tuple[list[str], dict]:
    outputs = {}
    if command == "compile":
        if extra == ["default output"]:
            outputs["module"] = os.path.splitext(src)[0] + ".py"
            return [command, src], outputs
        if "-o" in extra:
            outputs["module"] = "-"
            return [command, src] + extra, outputs
        outputs["module"] = os.path.join(workdir, "out.py")
        return [command, src, "-o", outputs["module"]] + extra, outputs
    if "OUT" in extra:
        outputs["dot"] = os.path.join(workdir, "graph.dot")
        extra = [outputs["dot"] if a == "OUT" else a for a in extra]
    return [command, src] + extra, outputs


def run_input(inp: FuzzInput, profile: Profile, stats: Stats, base: str) -> None:
    workdir = tempfile.mkdtemp(prefix="in", dir=base)
    src = os.path.join(workdir, inp.file_name)
    with open(src, "wb") as f:
        f.write(inp.data if isinstance(inp.data, bytes) else inp.data.encode("utf-8"))
    stats.inputs[inp.kind] += 1
    try:
        for command, extra in commands_for(inp, profile):
            label = label_of(command, extra if command != "graph" else extra[2:])
            argv, outputs = _argv(command, extra, src, workdir)
            seconds = profile.check_seconds if command == "check" else profile.seconds
            run = run_cli(argv, seconds)
            left = set(os.listdir(workdir))
            verdict = judge(run, command, src, inp.data, outputs, left, {inp.file_name})
            stats.runs[label] += 1
            stats.seconds[command] += run.seconds
            stats.status[label]["timeout" if run.timed_out else run.status] += 1
            for note in verdict.notes:
                kind = note.split(":")[0]
                stats.notes[kind] += 1
                stats.note_examples.setdefault(kind, f"{note} ({inp.describe()}; tapeless {' '.join(argv)})")
            if verdict.problems:
                for p in verdict.problems:
                    stats.problems[re.sub(r"[:(].*", "", p)] += 1
                stats.failures.append(Failure(inp, label, argv, verdict.problems, run.stderr))
            for name in left - {inp.file_name}:  # a clean directory for the next command
                path = os.path.join(workdir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_campaign(seed: int, start: int, stop: int, profile: Profile = CI, progress=None) -> Stats:
    stats = Stats()
    base = tempfile.mkdtemp(prefix="tapeless-fuzz-")
    try:
        for i in range(start, stop):
            if progress:
                progress(i)
            run_input(make_input(seed, i, profile), profile, stats, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return stats


def summary(stats: Stats) -> str:
    lines = [f"inputs: {sum(stats.inputs.values())} ({', '.join(f'{k} {v}' for k, v in sorted(stats.inputs.items()))})",
             f"{'command':<48} {'runs':>7} {'exit 0':>7} {'exit 1':>7} {'other':>6} {'timeout':>7}"]
    for label in sorted(stats.runs):
        s = stats.status[label]
        other = sum(v for k, v in s.items() if k not in (0, 1, "timeout"))
        lines.append(f"{label:<48} {stats.runs[label]:>7} {s[0]:>7} {s[1]:>7} {other:>6} {s['timeout']:>7}")
    internal = sum(v for s in stats.status.values() for k, v in s.items() if k not in (0, 1, "timeout"))
    hidden = sum(n for kind, n in stats.problems.items() if kind.startswith("check hid"))
    tracebacks = stats.problems["a Python traceback on stdout"] + stats.problems["a Python traceback on stderr"]
    lines.append(f"total runs {sum(stats.runs.values())}; internal errors: exit status not 0/1 {internal}, "
                 f"hidden in check's table {hidden}; tracebacks {tracebacks}; "
                 f"runs with a problem {len(stats.failures)}")
    lines.append("seconds by command: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(stats.seconds.items())))
    for kind, n in stats.problems.most_common():
        lines.append(f"problem x{n}: {kind}")
    for kind, n in stats.notes.most_common():
        lines.append(f"note x{n}: {kind}; e.g. {stats.note_examples[kind][:400]!r}")
    return "\n".join(lines)
