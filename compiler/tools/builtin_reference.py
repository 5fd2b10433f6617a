"""docs/builtins.md, generated: one entry per built-in function, grouped as docs/language.md.

    python -m tapeless.compiler.tools.builtin_reference > docs/builtins.md
    python -m tapeless.compiler.tools.builtin_reference --write        (the same)

Each entry is built from the sources: the signature from the @builtin parameter specs
(primitives/builtin_functions.py), the meaning from the lowering's docstring (its first
paragraph) or the primitive record's `doc` ("meaning; derivative ..."), the derivative from a
`Derivative:` paragraph of that docstring, the record's doc or, for an integer result, "none".
What the sources lack is data in primitives/builtin_docs.py. tests/test_builtin_reference.py
checks that the committed file is this output and that every example compiles.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.primitive import REGISTRY
from ..primitives import catalog  # noqa: F401  (fills REGISTRY)
from ..primitives.builtin_docs import EXAMPLES, GROUPS, NOTES, OPERATORS, RESULTS
from ..primitives.builtin_functions import BUILTINS, LIST, REQUIRED, REST, TENSOR, Builtin

DOCS = Path(__file__).resolve().parents[2] / "docs" / "builtins.md"
_DERIVATIVE = re.compile(r";\s*derivatives?\s+")


@dataclass(frozen=True)
class Entry:
    name: str
    signature: str
    meaning: str
    derivative: str
    example: str  # a complete one-line `.tl` function


def _value(v) -> str:
    if v is None or isinstance(v, bool):
        return {None: "None", True: "true", False: "false"}[v]
    return repr(v)


def signature(b: Builtin) -> str:
    """The call as a user writes it: optional parameters as name=default, results unpacked."""
    parts = []
    for p in b.params:
        if p.kind == LIST:
            parts.append(f"[{p.name[:-1]}1, {p.name[:-1]}2, ...]" if p.name.endswith("s") else f"[{p.name}, ...]")
        elif p.kind == REST:
            parts.append("a, b, ...")
        elif p.default is REQUIRED:
            parts.append(p.name)
        else:
            parts.append(f"{p.name}={_value(p.default)}")
    call = f"{b.name}({', '.join(parts)})"
    return f"{RESULTS[b.name]} = {call}" if b.name in RESULTS else call


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())] if text else []


def _from_sources(b: Builtin) -> tuple[str | None, str | None]:
    """(meaning, derivative) as the lowering's docstring or the record's doc give them."""
    meaning = derivative = None
    for para in _paragraphs(b.lower.__doc__ or ""):
        if para.startswith("Derivative:"):
            derivative = para.removeprefix("Derivative:").strip()
        elif meaning is None:
            meaning = para
    record = REGISTRY.get(b.name)
    doc = " ".join((record.doc if record else b.doc).split())
    head, *tail = _DERIVATIVE.split(doc, 1)  # "meaning; derivative ..."
    meaning = meaning or head or None
    derivative = derivative or (tail[0] if tail else None)
    if derivative is None and record is not None and not record.differentiable:
        derivative = "none: an integer result"
    return meaning, derivative


def _example(b: Builtin) -> str:
    if b.name in EXAMPLES:
        params, body = EXAMPLES[b.name]
    else:
        required = [p for p in b.params if p.default is REQUIRED]
        if not all(p.kind == TENSOR for p in required):
            raise ValueError(f"built-in `{b.name}` needs an example in primitives/builtin_docs.py (EXAMPLES)")
        params = ", ".join(f"{p.name}: f64[N]" for p in required)
        body = f"return {b.name}({', '.join(p.name for p in required)})"
    return f"fn f({params}) {{ {body} }}"


def entry(name: str) -> Entry:
    b = BUILTINS[name]
    meaning, derivative = _from_sources(b)
    note = NOTES.get(name, (None, None))
    meaning, derivative = note[0] or meaning, note[1] or derivative
    if not meaning or not derivative:
        raise ValueError(f"built-in `{name}` has no {'meaning' if not meaning else 'derivative'}: give its lowering "
                         f"a docstring (a `Derivative:` paragraph) or a note in primitives/builtin_docs.py (NOTES)")
    return Entry(name, signature(b), meaning.rstrip("."), derivative.rstrip("."), _example(b))


def grouped() -> list[tuple[str, list[Entry]]]:
    """Every built-in in its group; a built-in in no group, or in two, or a stray name is an error."""
    names = [n for _, text in GROUPS for n in text.split()]
    missing = sorted(set(BUILTINS) - set(names))
    extra = sorted(set(names) - set(BUILTINS))
    twice = sorted({n for n in names if names.count(n) > 1})
    if missing or extra or twice:
        raise ValueError(f"primitives/builtin_docs.py GROUPS: missing {missing}, not built-ins {extra}, twice {twice}")
    return [(title, [entry(n) for n in text.split()]) for title, text in GROUPS]


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def markdown() -> str:
    groups = grouped()
    out = ["# Built-in functions", "",
           "<!-- generated by `python -m tapeless.compiler.tools.builtin_reference --write`; do not edit: "
           "the sources are primitives/builtin_functions.py, the records' docs and primitives/builtin_docs.py -->",
           "",
           "Every function a `.tl` file can call without defining it, with its signature, what it computes, "
           "its derivative convention and an example that compiles. Arguments go by position or by keyword; "
           "axes, shapes, dtypes, counts and the einsum spec are static (known when compiling). "
           "The conventions in general, and the choices marked **decided**, are explained in "
           "[language.md](language.md#built-in-functions) and [its Conventions](language.md#conventions). "
           "Derivatives are of float values; integer and bool values never carry one. In the derivative "
           "lines, g is the cotangent (the gradient arriving at the result).",
           "",
           "Groups: " + ", ".join(f"[{t}](#{_anchor(t)})" for t, _ in groups) + ", [operators](#operators).", ""]
    for title, entries in groups:
        out += [f"## {title}", ""]
        for e in entries:
            out += [f"### {e.name}", "", f"`{e.signature}`: {e.meaning}.", "", f"*Derivative:* {e.derivative}.", "",
                    f"*Example:* `{e.example}`", ""]
    out += ["## operators", "", "| syntax | meaning | derivative | example |", "|---|---|---|---|"]
    for syntax, meaning, derivative, params, body in OPERATORS:
        out.append(f"| `{syntax}` | {meaning} | {derivative} | `fn f({params}) {{ {body} }}` |")
    return "\n".join(out) + "\n"


def examples() -> list[tuple[str, str]]:
    """(what, source) of every example in the reference, operators included."""
    out = [(e.name, e.example) for _, entries in grouped() for e in entries]
    return out + [(syntax, f"fn f({params}) {{ {body} }}") for syntax, _, _, params, body in OPERATORS]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = markdown()
    if argv == ["--write"]:
        DOCS.write_text(text)
    elif argv:
        print("usage: python -m tapeless.compiler.tools.builtin_reference [--write]", file=sys.stderr)
        return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
