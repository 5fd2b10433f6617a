"""The house keeps its shape: no import cycles, layers that import only downwards, and no
primitive named by a string outside primitives/ (docs/architecture.md).

The import graph is read with `ast` from the source files, imports inside functions
included; `from . import x` counts as importing the module x when there is one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tapeless.compiler.core.primitive import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"compiler": "tapeless.compiler", "runtime": "tapeless.runtime", "grammar": "tapeless.grammar"}

# Layers, lowest first: a module may import its own layer and those below, never above.
LAYERS = [
    ("core", ["tapeless.compiler.core"]),
    ("rules", ["tapeless.compiler.primitives"]),
    ("stages", ["tapeless.compiler.frontend", "tapeless.compiler.autodiff", "tapeless.compiler.passes",
                "tapeless.compiler.codegen"]),
    ("pipeline", ["tapeless.compiler.driver", "tapeless.compiler.pipeline"]),
    ("tools", ["tapeless.compiler.tools", "tapeless.compiler"]),  # the package's own __init__ is a facade
    ("runtime", ["tapeless.runtime"]),
    ("cli", ["tapeless.compiler.tools.cli"]),  # the command line: `tapeless cache` reaches the runtime's cache
]
GRAMMAR = "tapeless.grammar"  # beside the layers: lark's grammar and parser, imported by the front end

# The leaves are named outside primitives/: core/ir.py and core/nodes.py make and recognise them.
LEAF_OPS = {"param", "const", "dim"}


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg] + parts)] = path
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first import}, for modules of this project."""
    mods = modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = (base + ("." + node.module if node.module else "")) if node.level else node.module
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.setdefault(t, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_there_are_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    described = []
    for comp in found:
        edges = [f"{a} -> {b} (line {graph[a][b]})" for a in comp for b in graph[a] if b in comp]
        described.append(f"a cycle of {len(comp)} modules:\n    " + "\n    ".join(edges))
    assert not found, "\n".join(described)


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a planted back edge is reported with its edges."""
    graph = import_graph()
    graph["tapeless.compiler.core.ir"]["tapeless.compiler.pipeline"] = 1
    assert any("tapeless.compiler.core.ir" in c and "tapeless.compiler.pipeline" in c for c in cycles(graph))


def _layer(module: str) -> int | None:
    best = None
    for k, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if best is None or len(p) > best[1]:
                    best = (k, len(p))
    return None if best is None else best[0]


def test_layers_import_only_downwards():
    bad = []
    for mod, edges in import_graph().items():
        if mod.startswith(GRAMMAR):
            assert all(t.startswith(GRAMMAR) for t in edges), f"{mod} imports the compiler"
            continue
        for target, line in edges.items():
            if target.startswith(GRAMMAR):
                continue
            if _layer(target) > _layer(mod):
                bad.append(f"{mod} (layer {LAYERS[_layer(mod)][0]}) imports {target} "
                           f"(layer {LAYERS[_layer(target)][0]}) at line {line}")
    assert not bad, "\n".join(bad)


STAGES = ["tapeless.compiler.frontend", "tapeless.compiler.autodiff", "tapeless.compiler.passes",
          "tapeless.compiler.codegen"]


def test_stages_do_not_import_each_other():
    """Lowering knows nothing of derivation, derivation nothing of the passes or code
    generation: the driver and the pipeline compose them."""
    def stage(m):
        return next((s for s in STAGES if m == s or m.startswith(s + ".")), None)

    bad = [f"{mod} imports {target} (line {line})" for mod, edges in import_graph().items()
           for target, line in edges.items() if stage(mod) and stage(target) and stage(mod) != stage(target)]
    assert not bad, "\n".join(bad)


def test_nothing_inside_a_package_imports_its_facade():
    """`tapeless.compiler` and `tapeless.runtime` re-export for users; a module of the package that
    imported its own facade would make the facade part of a cycle."""
    for mod, edges in import_graph().items():
        for facade in ("tapeless.compiler", "tapeless.runtime"):
            if mod.startswith(facade + "."):
                assert facade not in edges, f"{mod} imports {facade} (line {edges.get(facade)})"


def test_every_module_has_a_layer():
    assert [m for m in modules() if not m.startswith(GRAMMAR) and _layer(m) is None] == []


def test_package_inits_import_nothing():
    """A subpackage's __init__ that imported its modules would put the package in a cycle with
    them (the registry's old home did). Only the two facades re-export."""
    facades = {"tapeless.compiler", "tapeless.runtime", "tapeless.grammar"}
    for mod, path in modules().items():
        if path.name == "__init__.py" and mod not in facades:
            tree = ast.parse(path.read_text())
            assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)), mod


def test_no_primitive_is_named_by_a_string_outside_the_table():
    """Stages ask a node's record (node.op.vjp, .loop, .cost) or name it as ops.NAME; only
    primitives/ spells op names. The leaves are the one allowed exception (LEAF_OPS)."""
    names = set(REGISTRY) - LEAF_OPS
    hits = []
    for mod, path in modules().items():
        if mod.startswith("tapeless.compiler.primitives"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not hits, "op names outside primitives/:\n" + "\n".join(hits)


def test_the_leaf_allow_list_is_only_leaves():
    assert LEAF_OPS <= set(REGISTRY)
    assert all(REGISTRY[n].rule_shape == "leaf" for n in LEAF_OPS)


@pytest.mark.parametrize("name", ["simplify", "fold", "forms", "numpy loop peepholes"])
def test_rewrites_go_through_the_one_mechanism(name):
    """Simplification, folding, the stable forms and the loop writer's peepholes are rule sets
    of core/rewrite.py, each rule named."""
    from tapeless.compiler.codegen.fused.peepholes import PEEPHOLES
    from tapeless.compiler.primitives.folding import FOLD
    from tapeless.compiler.primitives.forms import FORMS
    from tapeless.compiler.primitives.simplification import SIMPLIFY

    sets = {s.name: s for s in (SIMPLIFY, FOLD, FORMS, PEEPHOLES)}
    rules = sets[name].rules
    assert rules and all(" " in r.name.strip() for r in rules)  # a name that says what it does
    assert len({r.name for r in rules}) == len(rules)
