"""The fuzz inputs: input number i of a seed is always the same text, whichever process or
machine makes it (random.Random seeded with a string is stable across Python versions).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .grammar_gen import grammar_program
from .mutate import CANARY, corpus, mutate
from .programs import typed_program

# file names a generated module's docstring and comments must survive
ODD_FILE_NAMES = ['we"ird.tl', "it's.tl", 'tri"""ple.tl', "sp ace.tl", "ünï©ødé.tl", "{x}.tl", "new\nline.tl",
                  "back\\slash.tl", "-dash.tl", f'x");{CANARY}();(".tl', "tab\t.tl", "no_suffix", "a.b.c.tl",
                  "\u2028.tl", "%s.tl", "$HOME.tl"]


@dataclass
class Profile:
    """How big inputs get and how long one command may take (seconds)."""

    name: str
    deep_limit: int  # the deepest nesting / longest sum a mutation writes
    check_every: int  # every k-th input also goes through `tapeless check`
    check_seconds: float
    seconds: float  # the other commands
    check_max_chars: int = 1500


CI = Profile("ci", deep_limit=300, check_every=20, check_seconds=2.0, seconds=20.0)
LONG = Profile("long", deep_limit=3000, check_every=8, check_seconds=30.0, seconds=60.0, check_max_chars=4000)


@dataclass
class FuzzInput:
    seed: int
    index: int
    kind: str  # grammar | typed | mutant
    origin: str  # the generator, or the corpus file mutated
    data: str | bytes
    mutations: list[str] = field(default_factory=list)
    file_name: str = "prog.tl"

    @property
    def text(self) -> str:
        return self.data if isinstance(self.data, str) else self.data.decode("utf-8", "replace")

    def describe(self) -> str:
        how = f" after {', '.join(self.mutations)}" if self.mutations else ""
        return f"input #{self.index} of seed {self.seed}: {self.kind} from {self.origin}{how}, file {self.file_name!r}"


def for_check(profile: Profile, index: int) -> bool:
    return index % profile.check_every == 0


def make_input(seed: int, index: int, profile: Profile = CI) -> FuzzInput:
    rng = random.Random(f"tapeless-fuzz:{seed}:{index}")
    small = for_check(profile, index)  # `check` inputs stay small: it evaluates every element symbolically
    roll = rng.random()
    if roll < 0.15:
        inp = FuzzInput(seed, index, "grammar", "grammar/tapeless.lark",
                        grammar_program(rng, max_depth=8 if small else 12, max_tokens=80 if small else 300))
    elif roll < 0.5:
        inp = FuzzInput(seed, index, "typed", "tests/fuzz/programs.py", typed_program(rng, small=small))
    else:
        if rng.random() < (0.7 if small else 0.5):
            origin, base = "tests/fuzz/programs.py", typed_program(rng, small=small)
        else:
            origin, base = rng.choice(corpus())
        data, applied = mutate(rng, base, profile.deep_limit)
        inp = FuzzInput(seed, index, "mutant", origin, data, applied)
    if rng.random() < 0.04:
        inp.file_name = rng.choice(ODD_FILE_NAMES)
    return inp
