"""Every program of the corpus and the examples compiles for both backends, and every
derivative it asks for passes gradcheck (finite differences and the dot-product test)."""
from __future__ import annotations

import pytest

from corpus import PROGRAMS, inputs_for
from tapeless.runtime import gradcheck


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_derivatives_pass_gradcheck(path, tl):
    text = path.read_text()
    m = tl(text, path=path.name)
    checked = 0
    for name, info in m.__tapeless__.items():
        if info["kind"] in ("grad", "vjp", "jvp", "hvp") and not m.__tapeless__[info["of"]].get("uses_stop_gradient"):
            args = inputs_for(m, info["of"], text)
            assert gradcheck(getattr(m, name), *args)
            checked += 1
    assert checked or "stop_gradient" in text or ("grad" not in text and "vjp" not in text)
