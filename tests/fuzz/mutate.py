"""Mutations of real programs: the `.tl` corpus (tests/cases, tests/errors, examples,
benchmarks/workloads) and generated ones, changed at the level of characters, bytes, tokens,
lines and structure.

A mutation is a function (rng, text) -> text; `mutate` applies one to three. Byte mutations
come last and return bytes (invalid UTF-8, NUL, a UTF-16 file), which the file is written as.
Some mutations carry a canary (`tl_fuzz_pwned`) in a payload that would run as code if the
generated module ever pasted source text outside a string or comment (oracle.py looks).
"""
from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIRS = ("tests/cases", "tests/errors", "examples", "benchmarks/workloads")
CANARY = "tl_fuzz_pwned"

TOKEN = re.compile(r'''
    (?P<comment>\#[^\n]*) | (?P<string>"[^"\n]*") |
    (?P<number>([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|[0-9]+) |
    (?P<name>[A-Za-z_][A-Za-z0-9_]*) | (?P<op>->|\*\*|==|!=|<=|>=|\.\.\.|[-+*/@<>=()\[\]{},:;.]) |
    (?P<space>[ \t\f]+) | (?P<newline>\r\n|\r|\n) | (?P<other>.)''', re.X | re.S)

EXTREME_NUMBERS = ["0", "0.0", "00", "1e308", "1e309", "1.7976931348623157e308", "5e-324", "1e-400",
                   "2.2250738585072014e-308",
                   "2147483647", "2147483648", "9223372036854775807", "9223372036854775808", "18446744073709551616",
                   "9" * 40, "1" + "0" * 400, "0." + "0" * 300 + "1", "1e99999", ".0", "0e0", "3.", "65504", "65505",
                   "1e-45", "-0.0", "007", "inf", "pi", "1_000"]
UNICODE = ["\u2028", "\u2029", "\x00", "\ufeff", "\u200b", "\u202e", "\u0301", "é", "漢字", "🙂", "\x0b", "\x0c",
           "\r",
           "\r\n", "\t", "\x85", "\u00a0", "𝑥", "ｘ", "\x1b[31m", "\U0010ffff", "\ud7ff", "\x7f", "ß", "ǅ"]
PAYLOADS = [f'"); {CANARY}(); ("', f'\n{CANARY}()\n', f'"""\n{CANARY}()\n"""', f"'''; {CANARY}() #",
            f"\\\n{CANARY}()", f"{{{CANARY}()}}", f"\r{CANARY}()", f"\x85{CANARY}()", f"\u2028{CANARY}()",
            f"\\x22); {CANARY}(); #", f"%s{CANARY}", f"\\u0022{CANARY}", f"\x0c{CANARY}()\x0b"]
VOCAB = ["fn", "return", "grad", "vjp", "jvp", "hvp", "wrt", "as", "true", "false", "inf", "pi", "None", "(", ")",
         "[", "]", "{", "}", ",", ":", ";", "=", "->", "**", "*", "/", "@", "+", "-", "<", ">=", "==", "...", ".",
         "f32", "f64", "f16", "i32", "i64", "bool", "N", "x", "sum", "exp", "einsum", "axis", "keepdims",
         "T", "np", "xp", "lambda", "__import__", '"ij->j"', "\n", "#", '"']


@lru_cache(maxsize=None)
def corpus() -> tuple[tuple[str, str], ...]:
    """(relative path, text) of every .tl file in the corpus, sorted: the same list everywhere."""
    out = []
    for d in CORPUS_DIRS:
        for p in sorted((ROOT / d).glob("*.tl")):
            out.append((f"{d}/{p.name}", p.read_text(encoding="utf-8")))
    return tuple(out)


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs that join back to `text`."""
    return [(m.lastgroup, m.group()) for m in TOKEN.finditer(text)]


def _solid(toks) -> list[int]:
    return [i for i, (k, _) in enumerate(toks) if k not in ("space", "newline")] or [0]


def _join(toks) -> str:
    return "".join(t for _, t in toks)


# ---- token level -----------------------------------------------------------------------------------
def delete_token(rng, text):
    toks = tokens(text)
    if toks:
        del toks[rng.choice(_solid(toks))]
    return _join(toks)


def duplicate_token(rng, text):
    toks = tokens(text)
    if toks:
        i = rng.choice(_solid(toks))
        toks.insert(i, toks[i])
        toks.insert(i + 1, ("space", " "))
    return _join(toks)


def swap_tokens(rng, text):
    toks = tokens(text)
    solid = _solid(toks)
    if len(solid) > 1:
        i, j = rng.sample(solid, 2)
        toks[i], toks[j] = toks[j], toks[i]
    return _join(toks)


def replace_token(rng, text):
    toks = tokens(text)
    if toks:
        i = rng.choice(_solid(toks))
        pool = VOCAB + [t for k, t in toks if k in ("name", "op")]
        toks[i] = ("name", rng.choice(pool))
    return _join(toks)


def extreme_number(rng, text):
    toks = tokens(text)
    numbers = [i for i, (k, _) in enumerate(toks) if k == "number"] or _solid(toks)
    if toks:
        toks[rng.choice(numbers)] = ("number", rng.choice(EXTREME_NUMBERS))
    return _join(toks)


def rename(rng, text):
    """Every occurrence of one name becomes another (a keyword, a Python name, a long one)."""
    names = sorted({t for k, t in tokens(text) if k == "name"})
    if not names:
        return text
    old = rng.choice(names)
    new = rng.choice(["np", "xp", "_", "self", "lambda", "__tapeless__", "_array", "print", "x", "N", "fn", "f_grad",
                      "a" * 300, "T", "sum", "f32", "inf", "None", "def", "yield", "__class__"])
    return _join([(k, new if k == "name" and t == old else t) for k, t in tokens(text)])


# ---- character level -----------------------------------------------------------------------------
def _at(rng, text):
    return rng.randint(0, len(text))


def insert_unicode(rng, text):
    i = _at(rng, text)
    return text[:i] + rng.choice(UNICODE) + text[i:]


def insert_payload(rng, text):
    """A payload inside a string, a comment or anywhere."""
    toks = tokens(text)
    spots = [i for i, (k, _) in enumerate(toks) if k in ("string", "comment")]
    payload = rng.choice(PAYLOADS)
    if spots and rng.random() < 0.7:
        i = rng.choice(spots)
        k, t = toks[i]
        cut = rng.randint(1, max(1, len(t) - 1))
        toks[i] = (k, t[:cut] + payload + t[cut:])
        return _join(toks)
    i = _at(rng, text)
    return text[:i] + rng.choice(["# ", '"', ""]) + payload + text[i:]


def delete_span(rng, text):
    i = _at(rng, text)
    return text[:i] + text[i + rng.randint(1, 12):]


def duplicate_span(rng, text):
    i = _at(rng, text)
    j = min(len(text), i + rng.randint(1, 40))
    return text[:j] + text[i:j] + text[j:]


def insert_chars(rng, text):
    i = _at(rng, text)
    junk = "".join(rng.choice("()[]{},:;=+-*/@<>.!?$`'\"\\0123456789xNf \n\t#") for _ in range(rng.randint(1, 6)))
    return text[:i] + junk + text[i:]


def truncate(rng, text):
    return text[:_at(rng, text)]


def splice(rng, text):
    """The head of this program and the tail of another from the corpus."""
    _, other = rng.choice(corpus())
    return text[:_at(rng, text)] + other[rng.randint(0, len(other)):]


# ---- line level ------------------------------------------------------------------------------------
def line_op(rng, text):
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choice(["delete", "duplicate", "swap", "repeat"])
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(j, lines[i])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i:i + 1] = [lines[i]] * rng.choice([3, 20, 100])
    return "\n".join(lines)


# ---- structure: deep and long ----------------------------------------------------------------------
def deepen(rng, text, limit: int = 300):
    """One name or number wrapped deeply (-, parentheses, calls) or repeated in a long sum."""
    toks = tokens(text)
    spots = [i for i, (k, _) in enumerate(toks) if k in ("name", "number")]
    if not spots:
        return text
    i = rng.choice(spots)
    t = toks[i][1]
    n = rng.choice([5, 30, limit // 3, limit])
    form = rng.choice(["neg", "paren", "call", "sum", "pow", "index"])
    if form == "neg":
        new = "-" * n + t
    elif form == "paren":
        new = "(" * n + t + ")" * n
    elif form == "call":
        fn = rng.choice(["exp", "tanh", "abs", "f", "sum"])
        new = f"{fn}(" * n + t + ")" * n
    elif form == "sum":
        new = " + ".join([t] * n)
    elif form == "pow":
        new = " ** ".join([t] * min(n, 60))
    else:
        new = t + "[0]" * min(n, 40)
    toks[i] = ("name", new)
    return _join(toks)


TEXT_MUTATIONS = [delete_token, duplicate_token, swap_tokens, replace_token, extreme_number, extreme_number, rename,
                  insert_unicode, insert_payload, delete_span, duplicate_span, insert_chars, truncate, splice,
                  line_op, deepen]


# ---- bytes -----------------------------------------------------------------------------------------
def to_bytes(rng, text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    form = rng.choice(["flip", "invalid", "utf16", "latin1", "nul", "cut"])
    i = rng.randint(0, len(data))
    if form == "flip" and data:
        i = min(i, len(data) - 1)
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if form == "invalid":
        bad = rng.choice([b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
        return data[:i] + bad + data[i:]
    if form == "utf16":
        return text.encode("utf-16")
    if form == "latin1":
        return (text + "é").encode("latin-1", "replace")
    if form == "nul":
        return data[:i] + b"\x00" * rng.randint(1, 4) + data[i:]
    return data[:i] if i else data[:1]  # may cut a multi-byte character in two


def mutate(rng: random.Random, text: str, deep_limit: int = 300) -> tuple[str | bytes, list[str]]:
    """The mutated program and the names of the mutations applied."""
    applied = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        m = rng.choice(TEXT_MUTATIONS)
        text = m(rng, text, deep_limit) if m is deepen else m(rng, text)
        applied.append(m.__name__)
    if rng.random() < 0.06:
        applied.append("bytes")
        return to_bytes(rng, text), applied
    return text, applied
