"""Random programs that mostly type-check: they reach the later stages (derivatives, passes,
code generation, the SymPy check), which text straight from the grammar rarely does.

Values are tracked as (dtype, shape); an operation is only written where its shapes fit, so
most programs compile. Built-ins this file has no shape rule for (a new one in
primitives/builtin_functions.py) are still called, with arguments of the kinds the table
declares: they may fail to type-check, never crash. Literals are sometimes extreme
(1e308, 5e-324, huge integers, inf).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

FLOATS = ("f32", "f64")
UNARY = "exp log log1p expm1 sqrt abs sign sin cos tan tanh sigmoid relu softplus stop_gradient".split()
REDUCE = "sum prod max min logsumexp mean var std".split()
NORMAL_LITERALS = ["0.5", "2", "3.0", "1e-3", "0.25", "pi", "1", "10"]
EXTREME_LITERALS = ["1e308", "5e-324", "1e-300", "0.0", "0", "inf", "1e400", "9007199254740993", "1e38", "65504",
                    "2147483647", "1e-45"]
KNOWN = set(UNARY) | set(REDUCE) | {
    "maximum", "minimum", "where", "clip", "bce_with_logits", "binary_cross_entropy", "softmax", "log_softmax",
    "f16", "f32", "f64", "i32", "i64", "bool", "transpose", "reshape", "expand_dims", "squeeze", "zeros_like",
    "ones_like", "full", "zeros", "ones", "eye", "einsum", "concat", "stack", "outer", "trace", "diagonal",
    "broadcast_to", "cross_entropy", "take", "take_along_axis"}


@dataclass(frozen=True)
class Val:
    text: str
    dtype: str
    shape: tuple  # ints and symbol names


def broadcast(a: tuple, b: tuple):
    """NumPy's broadcasting with tapeless's rule for symbols (a symbol matches itself or 1); None if it fails."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def type_text(dtype: str, shape: tuple) -> str:
    return f"{dtype}[{', '.join(map(str, shape))}]" if shape else dtype


class ProgramGen:
    def __init__(self, rng: random.Random, small: bool = False, extreme: float = 0.1):
        self.rng = rng
        self.small = small  # for `tapeless check`: few, small values
        self.extreme = extreme
        self.fns: list[tuple[str, list[Val], list[Val]]] = []  # name, params, outputs

    # ---- leaves -------------------------------------------------------------------------------
    def literal(self) -> str:
        pool = EXTREME_LITERALS if self.rng.random() < self.extreme else NORMAL_LITERALS
        return self.rng.choice(pool)

    def pick(self, env: list[Val], float_only: bool = True) -> Val:
        pool = [v for v in env if v.dtype in FLOATS] if float_only else env
        return self.rng.choice(pool or env)

    def pick_fit(self, env: list[Val], shape: tuple) -> Val | None:
        pool = [v for v in env if v.dtype in FLOATS and broadcast(v.shape, shape) is not None]
        return self.rng.choice(pool) if pool else None

    # ---- one expression over the values in scope -----------------------------------------------
    def expr(self, env: list[Val]) -> Val:
        rng = self.rng
        a = self.pick(env)
        kind = rng.choices(["unary", "binary", "literal", "reduce", "shape", "misc", "table"],
                           [5, 6, 2, 3, 3, 3, 1])[0]
        nd = len(a.shape)
        if kind == "unary":
            op = rng.choice(UNARY + ["-", "**", "cast"])
            if op == "-":
                return Val(f"-{a.text}", a.dtype, a.shape)
            if op == "**":
                power = rng.choice(["2", "0.5", "3", "-1", "0.0", "2.0", "1e308"])
                return Val(f"{a.text} ** {power}", a.dtype, a.shape)
            if op == "cast":
                d = rng.choice(FLOATS)
                return Val(f"{d}({a.text})", d, a.shape)
            return Val(f"{op}({a.text})", a.dtype, a.shape)
        if kind == "literal":
            op = rng.choice(["+", "-", "*", "/", "**"])
            lit = self.literal()
            text = f"{a.text} {op} {lit}" if rng.random() < 0.6 else f"{lit} {op} {a.text}"
            return Val(f"({text})", a.dtype, a.shape)
        if kind == "binary":
            b = self.pick_fit(env, a.shape) or a
            shape = broadcast(a.shape, b.shape)
            dtype = "f64" if "f64" in (a.dtype, b.dtype) else a.dtype
            op = rng.choice(["+", "-", "*", "/", "maximum", "minimum", "where", "clip", "bce", "bce_p", "**"])
            if op in "+-*/**":
                return Val(f"({a.text} {op} {b.text})", dtype, shape)
            if op == "where":
                cmp = rng.choice(["<", ">", "<=", ">=", "==", "!="])
                return Val(f"where({a.text} {cmp} {b.text}, {a.text}, {b.text})", dtype, shape)
            if op == "clip":
                hi = rng.choice(["1", "2", b.text])
                lo = rng.choice(["-1", "0", "-0.5"])
                return Val(f"clip({a.text}, {lo}, {hi})", *((dtype, shape) if hi == b.text else (a.dtype, a.shape)))
            if op == "bce":
                return Val(f"bce_with_logits({a.text}, sigmoid({b.text}))", dtype, shape)
            if op == "bce_p":
                return Val(f"binary_cross_entropy(sigmoid({a.text}), sigmoid({b.text}))", dtype, shape)
            return Val(f"{op}({a.text}, {b.text})", dtype, shape)
        if kind == "reduce":
            op = rng.choice(REDUCE + ["softmax", "log_softmax"])
            if op in ("softmax", "log_softmax"):
                if not nd:
                    return Val(f"{op}(expand_dims({a.text}, 0))", a.dtype, (1,))
                return Val(f"{op}({a.text}, axis={rng.randrange(-nd, nd)})", a.dtype, a.shape)
            if not nd or rng.random() < 0.3:
                return Val(f"{op}({a.text})", a.dtype, ())
            ax = rng.randrange(nd)
            keep = rng.random() < 0.4
            extra = f", ddof={rng.choice([0, 1])}" if op in ("var", "std") and rng.random() < 0.5 else ""
            shape = a.shape[:ax] + ((1,) if keep else ()) + a.shape[ax + 1:]
            return Val(f"{op}({a.text}, axis={ax}{', keepdims=true' if keep else ''}{extra})", a.dtype, shape)
        if kind == "shape":
            return self.shape_op(a, env)
        if kind == "misc":
            return self.misc_op(a, env)
        return self.table_call(env)

    def shape_op(self, a: Val, env) -> Val:
        rng = self.rng
        nd = len(a.shape)
        op = rng.choice(["T", "transpose", "reshape", "expand", "index", "reverse", "slice", "concat", "stack",
                         "newaxis", "broadcast_to"])
        if op in ("T", "transpose") and nd == 2:
            return Val(f"{a.text}.T" if op == "T" else f"transpose({a.text})", a.dtype, a.shape[::-1])
        if op == "reshape" and nd:
            return Val(f"reshape({a.text}, [-1])", a.dtype, ("?r",) if any(isinstance(d, str) for d in a.shape)
                       else (eval_size(a.shape),))
        if op == "expand":
            ax = rng.randrange(nd + 1)
            return Val(f"squeeze(expand_dims({a.text}, {ax}), {ax})", a.dtype, a.shape)
        if op == "index" and nd and a.shape[0] != 0:
            return Val(f"{a.text}[{rng.choice(['0', '-1'])}]", a.dtype, a.shape[1:])
        if op == "reverse" and nd:
            return Val(f"{a.text}[::-1]", a.dtype, a.shape)
        if op == "slice" and nd:
            return Val(f"{a.text}[1:]", a.dtype, ("?s",) + a.shape[1:])
        if op in ("concat", "stack") and nd:
            if op == "stack":
                return Val(f"stack([{a.text}, {a.text}], axis=0)", a.dtype, (2,) + a.shape)
            return Val(f"concat([{a.text}, {a.text}], axis=0)", a.dtype, ("?c",) + a.shape[1:])
        if op == "newaxis":
            return Val(f"{a.text}[..., None]", a.dtype, a.shape + (1,))
        if op == "broadcast_to" and nd:
            shape = (2,) + a.shape
            return Val(f"broadcast_to({a.text}, [{', '.join(map(str, shape))}])", a.dtype, shape)
        return Val(f"({a.text})", a.dtype, a.shape)

    def misc_op(self, a: Val, env) -> Val:
        rng = self.rng
        nd = len(a.shape)
        op = rng.choice(["matmul", "einsum", "like", "full", "eye", "outer", "trace", "call", "ce", "take"])
        if op == "matmul" and nd >= 1:
            if nd == 1:
                return Val(f"({a.text} @ {a.text})", a.dtype, ())
            return Val(f"({a.text} @ transpose({a.text}))" if nd == 2 else f"({a.text} @ {a.text}[0])",
                       a.dtype, a.shape[:1] * 2 if nd == 2 else a.shape[:-1])
        if op == "einsum" and nd in (1, 2):
            if nd == 1:
                return Val(f'einsum("i,i->", {a.text}, {a.text})', a.dtype, ())
            return Val(f'einsum("ij->i", {a.text})', a.dtype, a.shape[:1])
        if op == "like":
            return Val(f"({rng.choice(['zeros_like', 'ones_like'])}({a.text}) + {a.text})", a.dtype, a.shape)
        if op == "full":
            dims = ", ".join(map(str, a.shape))
            return Val(f"(full([{dims}], {self.literal()}) * {a.text})", a.dtype, a.shape)
        if op == "eye" and nd == 2 and a.shape[0] == a.shape[1]:
            return Val(f"(eye({a.shape[0]}) * {a.text})", a.dtype, a.shape)
        if op == "outer" and nd == 1:
            return Val(f"outer({a.text}, {a.text})", a.dtype, a.shape * 2)
        if op == "trace" and nd == 2:
            return Val(f"trace({a.text})", a.dtype, ()) if a.shape[0] == a.shape[1] else \
                Val(f"sum(diagonal({a.text}))", a.dtype, ())
        if op == "call" and self.fns:
            name, params, outs = self.rng.choice(self.fns)
            args = [self.pick_exact(env, p) for p in params]
            if all(args) and len(outs) == 1:
                return Val(f"{name}({', '.join(args)})", outs[0].dtype, outs[0].shape)
        if op == "ce" and nd == 2:
            labels = next((v for v in env if v.dtype == "i64" and v.shape == a.shape[:1]), None)
            if labels:
                return Val(f"cross_entropy({a.text}, {labels.text})", a.dtype, a.shape[:1])
        if op == "take" and nd:
            idx = next((v for v in env if v.dtype == "i64" and len(v.shape) == 1), None)
            if idx:
                return Val(f"take({a.text}, {idx.text}, axis=0)", a.dtype, idx.shape + a.shape[1:])
        return Val(f"stop_gradient({a.text})", a.dtype, a.shape)

    def pick_exact(self, env, p: Val) -> str | None:
        """An argument for a user function: the exact type is required (a literal adapts)."""
        for v in env:
            if v.dtype == p.dtype and v.shape == p.shape:
                return v.text
        return None if p.shape else self.literal()

    def table_call(self, env) -> Val:
        """A built-in this generator may not know, called with arguments of its declared kinds."""
        from tapeless.compiler.primitives import builtin_functions as bf

        name = self.rng.choice(sorted(bf.BUILTINS))
        if name in KNOWN and self.rng.random() < 0.7:
            return self.pick(env)
        args = []
        a = self.pick(env)
        for p in bf.BUILTINS[name].params:
            if p.default is not bf.REQUIRED and self.rng.random() < 0.5:
                continue
            value = {bf.TENSOR: a.text, bf.AXES: str(self.rng.randrange(-1, 2)), bf.AXIS: "0",
                     bf.BOOL: self.rng.choice(["true", "false"]), bf.INT: "1", bf.DIM: "3",
                     bf.SHAPE: "[" + ", ".join(map(str, a.shape)) + "]", bf.DTYPE: self.rng.choice(FLOATS),
                     bf.SPEC: '"i->i"', bf.LIST: f"[{a.text}, {a.text}]", bf.REST: a.text}.get(p.kind, a.text)
            args.append(value if p.default is bf.REQUIRED or p.kind == bf.REST else f"{p.name}={value}")
        return Val(f"{name}({', '.join(args)})", a.dtype, ("?",))

    # ---- functions and directives ----------------------------------------------------------------
    def function(self, name: str) -> str:
        rng = self.rng
        shapes = [(), (2,), ("N",), (2, 2)] if self.small else [(), (3,), ("N",), (2, 3), ("N", 3), (3, 3), (2, 1, 3)]
        base = rng.choice(shapes)
        dtype = rng.choice(FLOATS)
        params = []
        for i in range(rng.randint(1, 2 if self.small else 3)):
            shape = base if rng.random() < 0.7 else base[rng.randint(0, len(base)):]
            params.append(Val(f"{'xywb'[i]}", dtype if rng.random() < 0.85 else rng.choice(FLOATS), shape))
        if base and rng.random() < 0.3:
            params.append(Val("lab", "i64", base[:1]))
        env = list(params)
        lines = []
        for k in range(rng.randint(1, 3 if self.small else 7)):
            v = self.expr(env)
            if any(isinstance(d, str) and d.startswith("?") for d in v.shape):
                v = Val(f"sum({v.text})", v.dtype, ())  # a size this file cannot name: reduce it away
            var = f"v{k}" if rng.random() < 0.8 else rng.choice([p.text for p in params])  # rebinding is allowed
            lines.append(f"    {var} = {v.text}")
            env = [e for e in env if e.text != var] + [Val(var, v.dtype, v.shape)]
            unpack = self.unpack_call(env, k)
            if unpack:
                lines.append(unpack[0])
                env += unpack[1]
        last = env[-1] if env[-1].dtype in FLOATS else self.pick(env)
        outs = [Val("", last.dtype, ()), ]
        ret = f"sum({last.text})"
        if rng.random() < 0.3:
            other = self.pick(env)
            outs.append(Val("", other.dtype, other.shape))
            ret += f", {other.text}"
        sig = ", ".join(f"{p.text}: {type_text(p.dtype, p.shape)}" for p in params)
        arrow = ""
        if rng.random() < 0.5:
            types = [type_text(o.dtype, o.shape) for o in outs]
            arrow = f" -> {types[0]}" if len(types) == 1 else f" -> ({', '.join(types)})"
        self.fns.append((name, params, outs))
        return f"fn {name}({sig}){arrow} {{\n" + "\n".join(lines) + f"\n    return {ret}\n}}\n"

    def unpack_call(self, env, k: int):
        """`u0, u1 = g(...)`: a call to an earlier function with several results, sometimes."""
        for name, params, outs in self.fns:
            args = [self.pick_exact(env, p) for p in params]
            if len(outs) > 1 and all(args) and self.rng.random() < 0.5:
                names = [f"u{k}_{i}" for i in range(len(outs))]
                return (f"    {', '.join(names)} = {name}({', '.join(args)})",
                        [Val(n, o.dtype, o.shape) for n, o in zip(names, outs)])
        return None

    def training_step(self, name: str, directive: str) -> str:
        """A function calling a derivative function (docs/language.md: "a training step can be
        written in .tl"): `l, d_x = f_grad(x, ...)`, then a step."""
        _, params, _ = next(f for f in self.fns if f[0] == name)
        wrt = directive.split(" wrt ")[1].split(" as ")[0].split(", ")
        grad_name = directive.split(" as ")[1] if " as " in directive else f"{name}_grad"
        sig = ", ".join(f"{p.text}: {type_text(p.dtype, p.shape)}" for p in params)
        args = ", ".join(p.text for p in params)
        step = wrt[0]
        return (f"fn step({sig}) {{\n    l, {', '.join('d_' + w for w in wrt)} = {grad_name}({args})\n"
                f"    return {step} - {self.literal()} * d_{step}, l\n}}\n")

    def directives(self, name: str) -> list[str]:
        rng = self.rng
        _, params, outs = next(f for f in self.fns if f[0] == name)
        floats = [p.text for p in params if p.dtype in FLOATS]
        out = []
        kinds = (["grad", "hvp"] if len(outs) == 1 else []) + ["vjp", "jvp"]
        for kind in rng.sample(kinds, rng.randint(1, min(2, len(kinds)))):
            wrt = rng.sample(floats, rng.randint(1, len(floats)))
            alias = f" as {name}_{kind}2" if rng.random() < 0.2 else ""
            out.append(f"{kind} {name} wrt {', '.join(wrt)}{alias}")
        return out


def eval_size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def typed_program(rng: random.Random, small: bool = False) -> str:
    gen = ProgramGen(rng, small=small, extreme=0.05 if small else 0.12)
    parts = []
    names = ["g", "f"] if rng.random() < 0.35 and not small else ["f"]
    for name in names:
        parts.append(gen.function(name))
    for d in gen.directives("f"):
        parts.append(d + "\n")
        if d.startswith("grad ") and not small and rng.random() < 0.3:
            parts.append(gen.training_step("f", d))
            if rng.random() < 0.5:
                parts.append("vjp step wrt " + d.split(" wrt ")[1].split(" as ")[0].split(", ")[0] + "\n")
    if len(names) > 1 and rng.random() < 0.5:
        parts.append(rng.choice(gen.directives("g")) + "\n")
    return "\n".join(parts)
