"""The context derivative rules receive: the sweeps themselves.

A primitive that carries a sub-function (a loop body, a scan) differentiates it by calling
ctx.pullback or ctx.pushforward from its own VJP or JVP rule; the context passes itself on,
so rules at every depth see the same sweeps. vjp.py and jvp.py take the context as an
argument and never import each other's sweep: this module ties them together.
"""
from __future__ import annotations

from ..core.primitive import RuleContext
from .jvp import pushforward
from .residuals import split
from .vjp import pullback


def rule_context() -> RuleContext:
    def pull(outputs, cotangents, wrt):
        return pullback(outputs, cotangents, wrt, ctx)

    def push(outputs, wrt, tangents):
        return pushforward(outputs, wrt, tangents, ctx)

    ctx = RuleContext(pullback=pull, pushforward=push, split=split)
    return ctx
