"""The `.tl` corpus (tests/cases and examples) and inputs drawn for its functions.

A file may annotate its inputs:
    # domain NAME: positive | unit | away | int:LO:HI | normal (default)
    # size SYMBOL: 5          (default 3)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from catalogue import draw

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "cases").glob("*.tl"))
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.tl") if not p.name.startswith("broken"))
PROGRAMS = CASES + EXAMPLES

_DOMAIN = re.compile(r"^#\s*domain\s+(\w+)\s*:\s*(\S+)", re.M)
_SIZE = re.compile(r"^#\s*size\s+(\w+)\s*:\s*(\d+)", re.M)
_TYPE = re.compile(r"(f16|f32|f64|i32|i64|bool)(?:\[([^\]]*)\])?")


def annotations(text: str):
    return dict(_DOMAIN.findall(text)), {k: int(v) for k, v in _SIZE.findall(text)}


def inputs_for(module, fn_name: str, text: str, seed: int = 0) -> list:
    """Random arguments for a generated function, from its docstring signature."""
    domains, sizes = annotations(text)
    rng = np.random.default_rng(seed)
    sig = getattr(module, fn_name).__doc__.splitlines()[0]
    params = sig[sig.index("(") + 1: sig.rindex(") ->")]
    out = []
    for part in _split(params):
        name, _, typ = part.partition(": ")
        m = _TYPE.fullmatch(typ.strip())
        dims = [d.strip() for d in (m.group(2) or "").split(",") if d.strip()]
        shape = [int(d) if d.isdigit() else sizes.get(d, 3) for d in dims]
        text_type = f"{m.group(1)}[{', '.join(map(str, shape))}]" if dims else m.group(1)
        out.append(draw(rng, text_type, domains.get(name.strip(), "normal")))
    return out


def _split(params: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for c in params:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip() and not cur.strip().startswith("*"):
        parts.append(cur.strip())
    return [p for p in parts if ": " in p and not p.startswith("*")]
