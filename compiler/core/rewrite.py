"""The one rewrite mechanism: named rules over IR nodes, rule sets, a fixed point, a firing log.

    SIMPLIFY = RuleSet("simplify")

    @SIMPLIFY.rule("x * 1 = x", Op("mul", X, Lit(1)))
    def _(m):
        return m.x                       # the replacement; None when the rule does not apply

    node = SIMPLIFY.fixed_point(node)    # the first rule that fires, again, until none does
    hit = PEEPHOLES.first(node, env)     # (rule, result) of the first rule that fires, or None

A rule is a name (what it does, as a reader would say it), a pattern and a function of the
match. Patterns: `Op(name or record, *argument patterns, where=guard)` matches a node of
that op (several names: `Op(("add", "sub"), ...)`; None: any op), and with `with_input=name`
(or names) only one with an input of that op; `Var("x")` (X and Y below) matches any
node and binds it, the same name twice only the same node; `Lit(value)` a scalar
literal (`Lit()` any, bound as `m.c` unless named); `Wild()` anything. A rule without a
pattern sees every node. The function gets the Match: bound names as attributes, `m.node`,
`m.env` (what the caller passed: the module's ops, a kernel's readers, ...).

Rule sets serve simplification and folding (passes/), the stable forms of composites
(primitives/forms.py) and the NumPy loop writer's peepholes (codegen/fused/peepholes.py).

TAPELESS_REWRITE_LOG=1 (set before the compiler is imported) prints every firing to stderr
(`rewrite simplify: x * 1 = x and 1 * x = x at model.tl:3:12`); `firings()` collects them in
a test.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from .ir import Node


# ---- patterns --------------------------------------------------------------------------------
class Pattern:
    def match(self, node: Node, bound: dict) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def heads(self) -> frozenset[str] | None:
        """The op names a matching node may have (None: any)."""
        return None

    def admits(self, input_heads: tuple[str, ...]) -> bool:
        """Can a node whose inputs have these ops match? (False only where `match` must fail.)"""
        return True

    def beyond_heads(self) -> bool:
        """Does matching test more than the node's op being one of `heads()` and `admits`?"""
        return True


@dataclass(frozen=True)
class Var(Pattern):
    name: str

    def match(self, node, bound):
        if self.name in bound:
            return bound[self.name] is node
        bound[self.name] = node
        return True


@dataclass(frozen=True)
class Wild(Pattern):
    """Any node, not bound."""

    def match(self, node, bound):
        return True


@dataclass(frozen=True)
class Lit(Pattern):
    """A scalar literal (`const`), of one value when given (1 matches 1 and 1.0, never True);
    bound under `name` like a Var: the same name twice matches only the same literal."""

    value: object = None
    name: str = "c"

    def match(self, node, bound):
        if not node.is_const or node.shape != ():
            return False
        if self.value is not None:
            v = node.attr("value")
            if v != self.value or isinstance(v, bool) != isinstance(self.value, bool):
                return False
        return Var(self.name).match(node, bound)

    def heads(self):
        return frozenset({"const"})


class Op(Pattern):
    """A node of one of the ops (names, or records; None: any op), with inputs matching `args`
    (when given: exactly that many), an input of one of the ops `with_input` (when given) and
    `where(node)` true. What the ops of a node and its inputs decide is decided once per
    combination of them (RuleSet indexes its rules so), not per node."""

    def __init__(self, ops, *args: Pattern, where: Callable[[Node], bool] | None = None, with_input=None):
        ops = ops if isinstance(ops, tuple) else (ops,)
        self.names = None if ops == (None,) else frozenset(o if isinstance(o, str) else o.name for o in ops)
        self.args = args
        self.where = where
        self.with_input = None if with_input is None else frozenset(
            (with_input,) if isinstance(with_input, str) else with_input)

    def match(self, node, bound):
        if self.names is not None and node.op.name not in self.names:
            return False
        if self.with_input is not None and not any(i.op.name in self.with_input for i in node.inputs):
            return False
        if self.args:
            if len(self.args) != len(node.inputs):
                return False
            for p, i in zip(self.args, node.inputs):
                if not p.match(i, bound):
                    return False
        return self.where is None or bool(self.where(node))

    def heads(self):
        return self.names

    def admits(self, input_heads):
        if self.args:
            if len(self.args) != len(input_heads):
                return False
            for p, head in zip(self.args, input_heads):
                if p.heads() is not None and head not in p.heads():
                    return False
        return self.with_input is None or any(head in self.with_input for head in input_heads)

    def beyond_heads(self):
        return bool(self.args) or self.where is not None


X, Y = Var("x"), Var("y")


# ---- rules and rule sets ----------------------------------------------------------------------
class Match:
    """What a rule's function sees: the bound names as attributes, the node, the caller's env."""

    def __init__(self, node: Node, bound: dict, env):
        if bound:
            self.__dict__.update(bound)
        self.node = node
        self.env = env


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: Pattern | None
    apply: Callable[[Match], object]
    question: str | None = None  # which of its set's questions it answers (None: every one)

    def fire(self, node: Node, env=None):
        bound: dict = {}
        if self.pattern is not None and not self.pattern.match(node, bound):
            return None
        return self.apply(Match(node, bound, env))


@dataclass
class RuleSet:
    name: str
    rules: list[Rule] = field(default_factory=list)
    _index: dict | None = field(default=None, repr=False)

    def rule(self, name: str, pattern: Pattern | None = None, question: str | None = None):
        """Decorator: add `fn(match) -> result or None` as the rule `name`. A set asked several
        questions about one node (the loop writer's peepholes: may another call compute it? how
        is it written?) gives each rule the `question` it answers, and `first(..., question=)`
        offers a node only to the rules of that question."""

        def deco(fn):
            self.add(Rule(name, pattern, fn, question))
            return fn

        return deco

    def add(self, rule: Rule) -> Rule:
        if any(r.name == rule.name for r in self.rules):
            raise ValueError(f"rule set {self.name}: two rules named {rule.name!r}")
        self.rules.append(rule)
        self._index = None
        return rule

    def heads(self) -> frozenset[str] | None:
        """The op names a rule of the set may rewrite (None: any, a rule sees every node)."""
        names: set[str] = set()
        for r in self.rules:
            h = None if r.pattern is None else r.pattern.heads()
            if h is None:
                return None
            names |= h
        return frozenset(names)

    def _for(self, node: Node, question: str | None = None) -> list[tuple[Rule, Pattern | None]]:
        """The rules whose pattern can match a node of this op with inputs of these ops (and
        that answer `question`), in the set's order, each with the pattern still to match
        (None: the ops were all it asks). Most nodes are offered to one or two rules, not all
        of their op's."""
        if self._index is None:
            self._index = {}
        name = node.op.name
        by_inputs = self._index.get((name, question))
        if by_inputs is None:  # (first level: the op alone; most ops have no rule, then no inputs are read)
            by_inputs = self._index[(name, question)] = {} if any(
                (r.pattern is None or r.pattern.heads() is None or name in r.pattern.heads())
                and (question is None or r.question is None or r.question == question)
                for r in self.rules) else False
        if by_inputs is False:
            return ()
        input_heads = tuple([i.op.name for i in node.inputs])
        rules = by_inputs.get(input_heads)
        if rules is None:
            rules = by_inputs[input_heads] = [
                (r, r.pattern if r.pattern is not None and r.pattern.beyond_heads() else None) for r in self.rules
                if (r.pattern is None or ((r.pattern.heads() is None or name in r.pattern.heads())
                                          and r.pattern.admits(input_heads)))
                and (question is None or r.question is None or r.question == question)]
        return rules

    def first(self, node: Node, env=None, accept: Callable | None = None, question: str | None = None):
        """(rule, result) of the first rule that fires on node (and that `accept(result, node)`
        takes), or None. `question`: only the rules answering it (see `rule`)."""
        plain = None  # the Match of the rules whose pattern binds nothing (rules only read it)
        for r, pattern in self._for(node, question):
            if pattern is None:
                if plain is None:
                    plain = Match(node, {}, env)
                m = plain
            else:
                bound: dict = {}
                if not pattern.match(node, bound):
                    continue
                m = Match(node, bound, env)
            out = r.apply(m)  # (Rule.fire, with the op's index done already)
            if out is None or out is node or (accept is not None and not accept(out, node)):
                continue
            if _collectors or _LOG:
                _log(self, r, node)
            return r, out
        return None

    @contextlib.contextmanager
    def without(self, *names: str):
        """`with rules.without("x * 1 = x"):` runs with those rules left out (tests, debugging)."""
        missing = set(names) - {r.name for r in self.rules}
        if missing:
            raise KeyError(f"rule set {self.name} has no rule {sorted(missing)[0]!r}")
        saved = self.rules
        self.rules, self._index = [r for r in saved if r.name not in names], None
        try:
            yield self
        finally:
            self.rules, self._index = saved, None

    def rewrite(self, node: Node, env=None, accept: Callable | None = None):
        hit = self.first(node, env, accept)
        return node if hit is None else hit[1]

    def fixed_point(self, node: Node, env=None, accept: Callable | None = None, limit: int = 50) -> Node:
        """Rewrite by the first rule that fires until none does (at most `limit` times)."""
        for _ in range(limit):
            hit = self.first(node, env, accept)
            if hit is None:
                return node
            node = hit[1]
        return node


# ---- the firing log ---------------------------------------------------------------------------
_collectors: list[list] = []


_LOG = bool(os.environ.get("TAPELESS_REWRITE_LOG"))  # read once, when the compiler is imported


def _log(rules: RuleSet, rule: Rule, node: Node) -> None:
    for c in _collectors:
        c.append((rules.name, rule.name))
    if _LOG:
        where = f" at {node.span}" if node.span else ""
        sys.stderr.write(f"rewrite {rules.name}: {rule.name}{where}\n")


@contextlib.contextmanager
def firings():
    """`with firings() as fired:` collects (rule set, rule) names of every firing inside."""
    fired: list[tuple[str, str]] = []
    _collectors.append(fired)
    try:
        yield fired
    finally:
        _collectors.remove(fired)
