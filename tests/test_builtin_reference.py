"""docs/builtins.md is generated (compiler/tools/builtin_reference.py) and kept so: it is what
the tool makes now, it names every built-in the language accepts, and its examples compile."""
from __future__ import annotations

import re

import pytest

from tapeless.compiler import compile_source
from tapeless.compiler.primitives.builtin_functions import BUILTINS
from tapeless.compiler.tools import builtin_reference as ref

REGENERATE = "python -m tapeless.compiler.tools.builtin_reference --write"


def test_the_committed_reference_is_the_generated_one():
    committed = ref.DOCS.read_text() if ref.DOCS.exists() else ""
    assert committed == ref.markdown(), f"docs/builtins.md is stale: regenerate it with `{REGENERATE}`"


def test_every_builtin_has_an_entry():
    text = ref.DOCS.read_text()
    headings = set(re.findall(r"^### (\w+)$", text, re.M))
    assert headings == set(BUILTINS), (sorted(set(BUILTINS) - headings), sorted(headings - set(BUILTINS)))
    for name in BUILTINS:  # its signature calls it
        assert re.search(rf"^`(\w+(, \w+)* = )?{name}\(.*\)`: ", text, re.M), name


def test_a_builtin_outside_the_groups_is_reported(monkeypatch):
    """A new built-in without documentation makes the generator (and so the tests) fail."""
    monkeypatch.setitem(BUILTINS, "shiny", BUILTINS["exp"])
    with pytest.raises(ValueError, match="missing \\['shiny'\\]"):
        ref.markdown()


@pytest.mark.parametrize("what, source", ref.examples(), ids=[w for w, _ in ref.examples()])
def test_every_example_compiles(what, source):
    assert source.count("\n") == 0  # one line
    assert "def f(" in compile_source(source, opt_level=0), what
