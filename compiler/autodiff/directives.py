"""Derivative directives -> IR functions (filled in by the differentiation work)."""
from __future__ import annotations

from ..diagnostics import UserError


def expand_directive(d, target, wrt):
    raise UserError(f"`{d.kind}` directives are not supported yet by this version of tapeless", d.span)
