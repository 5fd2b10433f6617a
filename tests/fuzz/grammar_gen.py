"""Random programs derived from the grammar itself (grammar/tapeless.lark, through lark's rules).

Every derivation follows the grammar's compiled rules, so the text always parses (a rule added
to the grammar is fuzzed without touching this file). What the grammar leaves open is chosen
by context: a NAME is a dtype inside a type, a size symbol inside a shape, a built-in or a fn
name before `(`, a keyword name before `=` in a call, a declared name elsewhere. Past a depth
or size budget each rule takes its shortest expansion, so every derivation ends.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from tapeless.grammar import grammar_text
from tapeless.grammar import parser as lark_parser

DTYPES = ["f32", "f64", "f16", "i32", "i64", "bool"]
SYMBOLS = ["N", "M", "K"]
FN_NAMES = ["f", "g", "h", "loss", "layer"]
VARS = ["x", "y", "w", "b", "a", "z", "t"]
# names a generated Python module could trip over: keywords, builtins, the module's own aliases
ODD_NAMES = ["np", "xp", "cp", "lambda", "class", "def", "self", "_", "__init__", "__tapeless__", "print",
             "os", "import", "_array", "_F64", "None_", "T", "nan", "e", "x" * 120, "_0", "f_grad", "f_grad_fwd"]
SAMPLE_FLOATS = ["0.5", "2.0", ".5", "1e-3", "1.5E+2", "0.0", "1e308", "1e-320", "1e400", "3.", "6.02e23"]
SAMPLE_INTS = ["0", "1", "2", "3", "-1", "10", "2147483648", "9223372036854775808", "99999999999999999999"]
STRINGS = ['"ij,jk->ik"', '"ij->ji"', '"i,i->"', '"...i,i->..."', '""', '"ij,j->i"', '"abc"', '"漢"']
SEPARATORS = ["\n", "\n", ";", "\n\n", " ;\n", "\r\n", "\n# a comment\n"]


@lru_cache(maxsize=None)
def _grammar():
    """(rules by origin, terminal patterns, min depth of each symbol, quoted literals of the grammar)."""
    lark = lark_parser()
    rules: dict[str, list] = {}
    for r in lark.rules:
        rules.setdefault(r.origin.name, []).append(r)
    patterns = {t.name: t.pattern for t in lark.terminals}
    literals = sorted(set(re.findall(r'"((?:[^"\\]|\\.)+)"', grammar_text())))
    depth = {name: 0 for name in patterns}
    depth["_SEP"] = 0
    changed = True
    while changed:  # fixed point: the shortest derivation depth of every nonterminal
        changed = False
        for name, alts in rules.items():
            best = min((1 + max((depth.get(s.name, 10**9) for s in r.expansion), default=0) for r in alts))
            if best < depth.get(name, 10**9):
                depth[name] = best
                changed = True
    return rules, patterns, depth, literals


def _builtin_names() -> list[str]:
    from tapeless.compiler.primitives.builtin_functions import BUILTINS

    return sorted(BUILTINS)


@lru_cache(maxsize=None)
def _keyword_names() -> list[str]:
    from tapeless.compiler.primitives.builtin_functions import BUILTINS

    return sorted({p.name for b in BUILTINS.values() for p in b.params})


class Deriver:
    def __init__(self, rng: random.Random, max_depth: int = 12, max_tokens: int = 300):
        self.rng = rng
        self.max_depth = max_depth
        self.max_tokens = max_tokens
        self.tokens: list[str] = []

    def name_for(self, origin: str, alias: str | None, pos: int) -> str:
        rng = self.rng
        if rng.random() < 0.04:
            return rng.choice(ODD_NAMES)
        if origin == "type":
            return rng.choice(DTYPES)
        if alias == "dim_name":
            return rng.choice(SYMBOLS)
        if origin == "fn_def" or (origin == "directive" and pos == 1):
            return rng.choice(FN_NAMES)
        if alias == "call":
            return rng.choice(_builtin_names() if rng.random() < 0.8 else FN_NAMES + ["f_grad", "g_vjp"])
        if alias == "kwarg":
            return rng.choice(_keyword_names())
        if alias == "attr":
            return "T" if rng.random() < 0.8 else rng.choice(VARS)
        if alias == "name" and rng.random() < 0.15:
            return rng.choice(SYMBOLS)
        return rng.choice(VARS)

    def terminal(self, name: str, origin: str, alias: str | None, pos: int) -> str:
        _, patterns, _, literals = _grammar()
        if name == "_SEP":
            return self.rng.choice(SEPARATORS)
        pattern = patterns[name]
        if pattern.type == "str":
            return pattern.value
        if name == "NAME":
            return self.name_for(origin, alias, pos)
        pool = {"FLOAT": SAMPLE_FLOATS, "INT": SAMPLE_INTS[:1] + ["1", "2", "3"] if origin == "dim" else SAMPLE_INTS,
                "STRING": STRINGS}.get(name)
        if pool is None:  # a regex terminal this file does not know: a literal of the grammar it matches
            pool = [lit for lit in literals if re.fullmatch(pattern.to_regexp(), lit)]
        pool = [p for p in pool if re.fullmatch(pattern.to_regexp(), p)]
        assert pool, f"no sample for the grammar's terminal {name}: teach tests/fuzz/grammar_gen.py one"
        return self.rng.choice(pool)

    def derive(self, symbol: str, depth: int = 0, origin: str = "start", alias: str | None = None, pos: int = 0):
        rules, _, min_depth, _ = _grammar()
        if symbol not in rules:
            self.tokens.append(self.terminal(symbol, origin, alias, pos))
            return
        alts = rules[symbol]
        if depth >= self.max_depth or len(self.tokens) >= self.max_tokens:
            cost = [max((min_depth.get(s.name, 0) for s in r.expansion), default=0) for r in alts]
            alts = [r for r, c in zip(alts, cost) if c == min(cost)]  # the shortest way out
        weights = [_weight(symbol, r) for r in alts]
        rule = self.rng.choices(alts, weights)[0]
        # helper rules lark made for repetition (__args_star_7) keep their parent's context
        inherit = symbol.startswith("__")
        for i, s in enumerate(rule.expansion):
            self.derive(s.name, depth + 1, origin if inherit else symbol,
                        alias if inherit else (rule.alias or alias), pos if inherit else i)


def _weight(symbol: str, rule) -> float:
    """Bias toward programs with functions and calls (the grammar allows an empty file just as well)."""
    names = [s.name for s in rule.expansion]
    if not names:
        return 0.1
    if "fn_def" in names or rule.alias in ("call", "name") or symbol.startswith(("__start", "__body")):
        return 3.0
    return 1.0


def grammar_program(rng: random.Random, max_depth: int = 12, max_tokens: int = 300) -> str:
    d = Deriver(rng, max_depth, max_tokens)
    d.derive("start")
    out = []
    for tok in d.tokens:
        out.append(tok)
        if not tok.endswith(("\n", ";")):
            out.append(rng.choice([" ", " ", "", "\n"]) if tok in ("(", "[") else " ")
    return "".join(out)
