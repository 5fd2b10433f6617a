"""A Program (program.py) as one numba kernel: a module-level `@numba.njit(parallel=True, ...)`
function making one pass over the rows.

    @numba.njit(parallel=True, nogil=True, cache=True)
    def _layer_grad_k0(x, b, y, d_z, add_d_z, n0):
        '''layer_grad's fused loop (layer.tl:4, layer.tl:5): N rows, one pass.'''
        n_rows = n0
        nblocks, block = ...                       # a function of the shape only, never of the threads
        acc_p = np.empty((nblocks,), np.float64)   # per-block partials of the sinks
        for blk in numba.prange(nblocks):
            acc = np.float64(0.0)
            for j0 in range(blk * block, min(blk * block + block, n_rows)):   # the rows of a block
                for j1 in range(256):              # one stage: a nest over the trailing axes
                    z = x[j0, j1] + b[j1]          # layer.tl:4   one local per step
                    ...
                    acc += t_8
            acc_p[blk] = acc
        return (acc_p,)

The host code combines the partials in block order (np.add.reduce over axis 0), so the result
is the same for any NUMBA_NUM_THREADS. Scalar functions render through ONE table (FUNCTIONS),
with a hook (`forms`, numba_math.py's `call`) for vectorisable forms.
"""
from __future__ import annotations

from typing import Callable

from ...core.types import Dim, DType
from . import program as P

# scalar function -> its numba text over {0}, {1} ({t}: the numpy type name of the result)
FUNCTIONS = {
    "exp": "np.exp({0})", "log": "np.log({0})", "log1p": "np.log1p({0})", "expm1": "np.expm1({0})",
    "sqrt": "np.sqrt({0})", "sin": "np.sin({0})", "cos": "np.cos({0})", "tan": "np.tan({0})",
    "tanh": "np.tanh({0})", "fabs": "np.abs({0})", "sign": "np.sign({0})",
    "max": "np.maximum({0}, {1})", "min": "np.minimum({0}, {1})",  # NaN in, NaN out (as NumPy)
    "pow": "np.power({0}, {1})", "asin": "np.arcsin({0})", "acos": "np.arccos({0})", "atan": "np.arctan({0})",
    "atan2": "np.arctan2({0}, {1})", "sinh": "np.sinh({0})", "cosh": "np.cosh({0})", "asinh": "np.arcsinh({0})",
    "acosh": "np.arccosh({0})", "atanh": "np.arctanh({0})", "hypot": "np.hypot({0}, {1})",
    "log2": "np.log2({0})", "log10": "np.log10({0})", "exp2": "np.exp2({0})", "cbrt": "np.cbrt({0})",
    "floor": "np.floor({0})", "ceil": "np.ceil({0})", "trunc": "np.trunc({0})", "rint": "np.rint({0})",
    "fmod": "np.fmod({0}, {1})",
    # (erf, erfc, lgamma: math's float64 functions, cast back to the operand's type)
    "erf": "np.{t}(math.erf({0}))", "erfc": "np.{t}(math.erfc({0}))", "lgamma": "np.{t}(math.lgamma({0}))",
}
# the rest of SCALAR_FUNCTIONS (j0, j1, erfinv, erfcx, ndtr, digamma, ...) are scipy.special's:
# an op calling one stays the NumPy backend's call outside the kernel (program.rules)
SCALAR_SET = frozenset(FUNCTIONS) | {"select", "cast"}

try:  # vectorisable forms (branch numbamath): call(fname, dtype, args) -> text | None
    from . import numba_math as _forms  # type: ignore
except ImportError:  # pragma: no cover - until that branch is merged
    _forms = None

RULES = P.rules(SCALAR_SET)
_RESERVED = ("np", "numba", "math", "blk", "lo", "hi", "nblocks", "block", "n_rows")


class NumbaKernel:
    """Writes one Program as a kernel's source and its call from the host function."""

    def __init__(self, prog: P.Program, kernel_name: str, fn_name: str, dim: Callable, uses_form: Callable):
        self.p = prog
        self.name = kernel_name
        self.fn_name = fn_name
        self.dim = dim  # host text of a Dim
        self.uses_form = uses_form  # records a vectorisable form the kernel calls (its source is pasted once)
        self.math = False
        self.axes: dict[int, str] = {}  # stage axis -> its loop variable

    # ---- expressions ----------------------------------------------------------------------
    def const(self, c: P.Const) -> str:
        v, dt = c.value, c.dtype
        if isinstance(v, Dim) or (not isinstance(v, (bool, int, float)) and v is not None and not hasattr(v, "dtype")):
            return f"np.{dt.numpy_name}({self.size(v)})"
        if dt is DType.BOOL:
            return repr(bool(v))
        if dt.is_float:
            f = float(v)
            text = "np.inf" if f == float("inf") else "-np.inf" if f == float("-inf") else \
                "np.nan" if f != f else repr(f)
            return text if dt is DType.F64 and text[0] not in "-n" else f"np.{dt.numpy_name}({text})"
        return str(int(v)) if dt is DType.I64 else f"np.{dt.numpy_name}({int(v)})"

    def size(self, d) -> str:
        if isinstance(d, Dim):
            return self.p.sizes[d]
        return str(d)

    def index(self, index: tuple) -> str:
        return ", ".join("0" if a is None else self.axes[a] for a in index)

    def expr(self, e) -> str:
        if isinstance(e, P.Const):
            return self.const(e)
        if isinstance(e, P.Ref):
            return e.name
        if isinstance(e, P.Load):
            if not e.index:
                return e.operand  # (a 0-d operand comes in as a scalar)
            return f"{e.operand}[{self.index(e.index)}]"
        if isinstance(e, P.Reduced):
            r = self.reduces[e.name]
            text = r.name if self.scalar_acc(r.shape) else f"{r.name}[{self.index(e.index[1:])}]"
            return text if r.acc_dtype == e.dtype else f"np.{e.dtype.numpy_name}({text})"
        if isinstance(e, P.Unary):
            return f"(not {self.expr(e.a)})" if e.op == "!" else f"(-{self.expr(e.a)})"
        if isinstance(e, P.Binary):
            op = {"&&": "&", "||": "|"}.get(e.op, e.op)
            a, b = self.expr(e.a), self.expr(e.b)
            if e.op == "/" and not e.dtype.is_float:  # (C's division of integers truncates)
                return f"np.{e.dtype.numpy_name}(np.trunc({a} / {b}))"
            return f"({a} {op} {b})"
        args = [self.expr(a) for a in e.args]
        if e.fn == "select":
            return f"({args[1]} if {args[0]} else {args[2]})"
        if e.fn == "cast":
            return f"np.{e.dtype.numpy_name}({args[0]})"
        if _forms is not None and e.dtype.is_float:
            text = _forms.call(e.fn, e.dtype.numpy_name, args)
            if text is not None and not text.startswith("np."):
                self.uses_form(text.split("(")[0])
                return text
        if e.fn in ("erf", "erfc", "lgamma"):
            self.math = True
        return FUNCTIONS[e.fn].format(*args, t=e.dtype.numpy_name)

    @staticmethod
    def scalar_acc(shape) -> bool:
        return all(d == 1 for d in shape[1:])

    @staticmethod
    def sink_scalar(shape) -> bool:
        return all(d == 1 for d in shape)

    # ---- the kernel ------------------------------------------------------------------------
    def source(self) -> tuple[str, list[str]]:
        """(the kernel's definition, its parameters in order)."""
        p = self.p
        self.reduces = {s.name: s for st in p.stages for s in st.steps if isinstance(s, P.Reduce)}
        params = [o.name for o in p.operands]
        outs = {o.name: o for o in p.outputs}
        for o in p.outputs:
            params.append(o.name)
            if o.accumulate is not None:
                params.append(f"add_{o.name}")
        params += list(p.sizes.values())
        rank = max(len(st.space) for st in p.stages)
        self.axes = {a: f"j{a}" for a in range(rank)}
        body = [f"n_rows = {self.size(p.rows)}"]
        # blocks: about 16K elements each (at least one row), at most 64: a function of the shape
        per_row = " * ".join(self.size(d) for d in max((st.space[1:] for st in p.stages), key=_weight)) or "1"
        body.append(f"block = max(1, -(-n_rows // 64), 16384 // max(1, {per_row}))")
        body.append("nblocks = -(-n_rows // block)")
        for s in p.sinks:
            shape = ", ".join(["nblocks"] + [self.size(d) for d in s.shape])
            body.append(f"{s.name}_p = np.empty(({shape},), np.{s.acc_dtype.numpy_name})")
        body.append("for blk in numba.prange(nblocks):")
        loop = ["lo = blk * block", "hi = min(lo + block, n_rows)"]
        for s in p.sinks:
            if self.sink_scalar(s.shape):
                loop.append(f"{s.name} = {self.identity(s.op, s.acc_dtype)}")
            else:
                loop.append(f"{s.name} = {s.name}_p[blk]")
                loop.append(f"{s.name}[...] = {self.identity(s.op, s.acc_dtype)}")
        for r in self.reduces.values():
            if not self.scalar_acc(r.shape):
                shape = ", ".join(self.size(d) for d in r.shape[1:])
                loop.append(f"{r.name} = np.empty(({shape},), np.{r.acc_dtype.numpy_name})")
        loop.append("for j0 in range(lo, hi):")
        rows = []
        for k, st in enumerate(p.stages):
            if len(p.stages) > 1:
                rows.append(f"# stage {k}: over {', '.join(map(str, st.space[1:])) or 'the row'}")
            for r in st.steps:
                if isinstance(r, P.Reduce):
                    ident = self.identity(r.op, r.acc_dtype)
                    rows.append(f"{r.name} = {ident}" if self.scalar_acc(r.shape) else f"{r.name}[...] = {ident}")
            for s in st.row_steps:
                rows += self.step(s, outs)
            inner = []
            for s in st.steps:
                inner += self.step(s, outs)
            if inner:
                depth = 0
                for a in range(1, len(st.space)):
                    rows.append("    " * depth + f"for j{a} in range({self.size(st.space[a])}):")
                    depth += 1
                rows += ["    " * depth + line for line in inner]
            for s in st.after:
                rows += self.store_after(s, outs)
        loop += ["    " + line for line in rows]
        for s in p.sinks:
            if self.sink_scalar(s.shape):
                loop.append(f"{s.name}_p[blk] = {s.name}")
        body += ["    " + line for line in loop]
        body.append("return (" + "".join(f"{s.name}_p, " for s in p.sinks) + ")")
        head = [
            "@numba.njit(parallel=True, nogil=True, cache=True)",
            f"def {self.name}({', '.join(params)}):",
            f'    """{self.fn_name}\'s fused loop ({", ".join(p.places)}): one pass over the rows."""',
        ]
        return "\n".join(head + ["    " + line for line in body]) + "\n", params

    def identity(self, op: str, dt: DType) -> str:
        if op == "sum":
            return self.const(P.Const(0, dt))
        if op == "prod":
            return self.const(P.Const(1, dt))
        if dt.is_float:
            return self.const(P.Const(float("-inf") if op == "max" else float("inf"), dt))
        info = {DType.I64: (-2 ** 63, 2 ** 63 - 1), DType.I32: (-2 ** 31, 2 ** 31 - 1), DType.BOOL: (0, 1)}[dt]
        return self.const(P.Const(info[0] if op == "max" else info[1], dt))

    def combine(self, op: str, acc: str, value: str) -> str:
        if op == "sum":
            return f"{acc} += {value}"
        if op == "prod":
            return f"{acc} *= {value}"
        return f"{acc} = np.{'maximum' if op == 'max' else 'minimum'}({acc}, {value})"

    def step(self, s, outs) -> list[str]:
        where = f"  # {s.where}" if s.node.span else ""
        if isinstance(s, P.Step):
            return [f"{s.name} = {self.expr(s.expr)}{where}"]
        if isinstance(s, P.Reduce):
            target = s.name if self.scalar_acc(s.shape) else f"{s.name}[{self.index(s.index[1:])}]"
            return [self.combine(s.op, target, self.expr(s.value)) + where]
        if isinstance(s, P.Sink):
            target = s.name if self.sink_scalar(s.shape) else f"{s.name}[{self.index(s.index)}]"
            return [self.combine(s.op, target, self.expr(s.value)) + where]
        if isinstance(s, P.Store):
            o = outs[s.output]
            value = self.expr(s.value)
            target = f"{o.name}[{self.index(s.index)}]"
            if o.accumulate is None:
                return [f"{target} = {value}"]
            return [f"if add_{o.name}:", f"    {target} += {value}", "else:", f"    {target} = {value}"]
        raise AssertionError(s)  # pragma: no cover

    def store_after(self, s: P.Store, outs) -> list[str]:
        """A reduction's finished row written to its output: a loop over the result's axes."""
        o = outs[s.output]
        r = self.reduces[s.value.name]
        lines, depth = [], 0
        idx = ["j0"]
        for a, d in enumerate(r.shape[1:], start=1):
            if d == 1:
                idx.append("0")
                continue
            lines.append("    " * depth + f"for q{a} in range({self.size(d)}):")
            idx.append(f"q{a}")
            depth += 1
        acc = r.name if self.scalar_acc(r.shape) else f"{r.name}[{', '.join(idx[1:])}]"
        value = acc if r.acc_dtype == r.dtype else f"np.{r.dtype.numpy_name}({acc})"
        target = f"{o.name}[{', '.join(idx)}]"
        pad = "    " * depth
        if o.accumulate is None:
            lines.append(f"{pad}{target} = {value}")
        else:
            lines += [f"{pad}if add_{o.name}:", f"{pad}    {target} += {value}", f"{pad}else:",
                      f"{pad}    {target} = {value}"]
        return lines


def _weight(space) -> tuple:
    total, symbolic = 1, 0
    for d in space:
        if isinstance(d, Dim):
            symbolic += 1
        else:
            total *= d
    return (symbolic, total)


def reserved() -> tuple[str, ...]:
    return _RESERVED


def form_sources(names) -> str:
    """The definitions of the vectorisable forms the kernels call (numba_math.py), each once."""
    return _forms.source(sorted(names))
