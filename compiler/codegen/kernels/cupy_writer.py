"""A fused kernel's Program (kernels/program.py) as CuPy kernel objects and their calls.

On a GPU a pass over the data is one kernel launch, and every intermediate of a chain
written one cupy call at a time is a round trip through device memory. Here the Program of a
fused chain, the one the numba backend renders, becomes:

- for each reduction (a `Reduce` over trailing axes, a `Sink` over the rows, a reduction over
  size-1 axes only), one `cp.ReductionKernel` whose map is the chain that computes the reduced
  value at each point (a `__device__` function in the preamble when it has steps), reduced in
  the Program's accumulator dtype (float32 sums in double) and written in the node's dtype;
- for the values the function reads after the kernel (the Program's stores), one
  `cp.ElementwiseKernel` per result shape, its body the chain's steps as C++ statements, each
  with its `file.tl:LINE` in a comment.

A chain's steps are recomputed in each kernel that needs them (on a GPU arithmetic is cheaper
than a store and a load); only reductions are materialised, and a later kernel reads them as
arrays. Every kernel's array arguments are the values it reads at their own shapes: CuPy
broadcasts them as NumPy does, which is what the IR's elementwise operations mean, so the
loop runs over the broadcast shape. (A reduction changes the rank, so it always ends a chain.)

Kernel objects are module-level, created once when the module is imported (CuPy compiles on
the first call and caches on disk); equal kernels share one object. Outputs of the function's
gradients are never accumulated inside a kernel: out= is added into after, as everywhere on
the CuPy backend.
"""
from __future__ import annotations

import re

import keyword

from ...core.derivative import Part
from ...core.ir import Node
from ...core.primitive import Kind, ops
from ...core.types import DType
from ..fused.plan import Kernel, PlanRules
from ..names import Names, place, sanitize_docstring
from ...primitives.common import CUDA_REDUCTIONS
from . import cuda
from . import program as P

FUNCTIONS = frozenset(cuda.FUNCTIONS) | frozenset(cuda.SPECIAL_FORMS)
_BASE = P.rules(FUNCTIONS)


def _dtypes_ok(n: Node) -> bool:
    """Kernels compute in float32/float64 with bool masks; an integer may only be read by a cast
    (C's integer division and overflow are not NumPy's)."""
    if n.dtype not in cuda.KERNEL_DTYPES:
        return False
    return n.op is ops.cast or all(i.dtype in cuda.KERNEL_DTYPES for i in n.inputs)


RULES = PlanRules(lambda n: _BASE.member(n) and _dtypes_ok(n), lambda n: _BASE.sink(n) and _dtypes_ok(n))

# names a kernel's parameters and locals never take: C++ keywords, the CUDA functions the
# kernels call, CuPy's own (the loop index i, a and b of reduce_expr, _ind ...)
C_RESERVED = frozenset("""
auto bool break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
class namespace template typename this new delete operator private public protected virtual friend using try
catch throw true false nullptr and or not xor bitand bitor compl explicit mutable export
i a b n T CArray CIndexer INFINITY NAN min max signbit isnan isinf isfinite y0 y1 yn jn gamma
_ind _in_ind _out_ind _type_reduce _J _j _i
""".split()) | frozenset(f for pair in cuda.FUNCTIONS.values() for f in pair) | frozenset(cuda.FUNCTIONS)



def _param(dtype: DType, name: str) -> str:
    return f"{dtype.np.name} {name}"


class CupyKernels:
    """Writes one Program: the kernel objects into the module (ctx.mod.cupy_kernels), the calls
    into the function body. After write(), `bound` maps the node ids the function reads after
    the kernel (its outputs and sinks) to their variables."""

    def __init__(self, body, k: Kernel):
        self.body = body
        self.ctx = body.ctx
        self.k = k
        self.local = Names(C_RESERVED | frozenset(keyword.kwlist))
        self.prog = P.build(k, self.ctx.hint, self.local, name_of=lambda n: self.ctx.vars.get(n.id))
        self.bound: dict[int, str] = {}
        self.steps: dict[str, P.Step] = {}
        self.arrays: dict[str, tuple[Node, str]] = {}  # a C name read as an array -> (its node, its Python text)
        for op in self.prog.operands:
            self.arrays[op.name] = (op.node, body.exprs[op.node.id].text)
        self.sizes = {d: name for d, name in self.prog.sizes.items()}

    # ---- the chain behind a value ---------------------------------------------------------------------
    def _cone(self, values) -> tuple[list[P.Step], list[str], list]:
        """The steps `values` need (inputs first), the arrays they read (C names, in order of
        first use) and the sizes."""
        steps: list[P.Step] = []
        arrays: list[str] = []
        sizes: list = []
        seen: set[str] = set()

        def visit(e) -> None:
            kind = type(e).__name__
            if kind == "Const":
                if not isinstance(e.value, (bool, int, float)) and e.value not in sizes:
                    sizes.append(e.value)
            elif kind in ("Load", "Reduced") or (kind == "Ref" and e.name in self.arrays):
                name = e.operand if kind == "Load" else e.name
                if name not in arrays:
                    arrays.append(name)
            elif kind == "Ref":
                if e.name not in seen:
                    seen.add(e.name)
                    step = self.steps[e.name]
                    visit(step.expr)
                    steps.append(step)
            elif kind == "Unary":
                visit(e.a)
            elif kind == "Binary":
                visit(e.a)
                visit(e.b)
            elif kind == "Call":
                for a in e.args:
                    visit(a)

        for v in values:
            visit(v)
        return steps, arrays, sizes

    def _leaf(self, e) -> str:
        if type(e).__name__ == "Const":
            return self.sizes[e.value]
        return e.operand if type(e).__name__ == "Load" else e.name

    def _params(self, arrays: list[str], sizes: list) -> tuple[list[str], list[str]]:
        """The kernel's input parameters and the Python arguments for them."""
        params, args = [], []
        for name in arrays:
            node, text = self.arrays[name]
            params.append(_param(node.dtype, name))
            args.append(text)
        for d in sizes:
            params.append(f"int64 {self.sizes[d]}")
            args.append(self.ctx.dim(d))
        return params, args

    def _cover(self, arrays: list[str], args: list[str], shape) -> list[str]:
        """Arguments whose broadcast shape is `shape` (the loop's): the first array broadcast to it
        when the arrays alone are smaller."""
        from ...core.types import broadcast_shapes

        shapes = [tuple(self.arrays[a][0].shape) for a in arrays]
        if shapes and tuple(broadcast_shapes(*shapes)) == tuple(shape):
            return args
        if not shapes:
            raise AssertionError("a kernel over no arrays")  # pragma: no cover - members are arrays
        return [f"{self.ctx.xp}.broadcast_to({args[0]}, {self.ctx.shape(shape)})"] + args[1:]

    def _statements(self, steps: list[P.Step], used: set[str], indent: str) -> list[str]:
        lines = []
        for s in steps:
            text = cuda.expr(s.expr, self._leaf, used)
            lines.append(f"{indent}const {cuda.CTYPES[s.dtype]} {s.name} = {text};  // {_where(s.node)}")
        return lines

    # ---- writing ---------------------------------------------------------------------------------------------
    def write(self) -> list[str]:
        prog, ctx = self.prog, self.ctx
        lines = [f"# a fused chain as CuPy kernels ({', '.join(prog.places)})"]
        stores: list[P.Store] = []
        outputs = {o.name: o for o in prog.outputs}
        for stage in prog.stages:
            for item in stage.row_steps + stage.steps + stage.after:
                if isinstance(item, P.Step):
                    if item.name in self.steps:
                        continue  # (a recomputed step: the same name and expression)
                    self.steps[item.name] = item
                    if item.node.op.kind is Kind.REDUCE:  # a reduction over size-1 axes: still a reduction
                        lines += self.reduction(item.name, item.node, item.expr, item.dtype,
                                                P._acc_dtype(P._reduction(item.node), item.dtype))
                elif isinstance(item, (P.Reduce, P.Sink)):
                    lines += self.reduction(item.name, item.node, item.value, item.dtype, item.acc_dtype, item.op)
                elif isinstance(item, P.Store):
                    stores.append(item)
        by_shape: dict[tuple, list[P.Store]] = {}
        for st in stores:
            if type(st.value).__name__ in ("Reduced", "Ref") and st.value.name in self.arrays:
                self._bind(st.node, self.arrays[st.value.name][1])  # the reduction's own result
                continue
            by_shape.setdefault(tuple(outputs[st.output].shape), []).append(st)
        for shape, group in by_shape.items():
            lines += self.elementwise(shape, group, outputs)
        for s in prog.sinks:
            self._bind(s.node, self.arrays[s.name][1])
        return lines

    def _bind(self, node: Node, var: str) -> None:
        self.bound[node.id] = var

    def reduction(self, name: str, node: Node, value, dtype: DType, acc: DType, op: str | None = None) -> list[str]:
        """One ReductionKernel computing `node` (a sum, prod, max or min) of `value` over its input."""
        ctx = self.ctx
        op = op or P._reduction(node)
        x = node.inputs[0]
        steps, arrays, sizes = self._cone([value])
        params, args = self._params(arrays, sizes)
        used: set[str] = set()
        acc_c = cuda.CTYPES[acc]
        if steps:
            fname = f"_{name}_map"
            head = f"__device__ {acc_c} {fname}({', '.join('const ' + _c_param(p) for p in params)}) {{"
            body = self._statements(steps, used, "    ")
            body.append(f"    return {cuda.expr(value, self._leaf, used)};")
            map_fn = "\n".join([head] + body + ["}"])
            map_expr = f"{fname}({', '.join(p.split()[1] for p in params)})"
        else:
            map_fn = ""
            map_expr = cuda.expr(value, self._leaf, used)
        reduce_expr, identity = CUDA_REDUCTIONS[op]
        used |= {h for h in cuda.HELPERS if h in reduce_expr}
        out = self.local.fresh("out")
        post = f"{out} = ({cuda.CTYPES[dtype]})a" if acc != dtype else f"{out} = a"
        preamble = "\n".join(p for p in (cuda.preamble(used), map_fn) if p)
        kname = self._define("ReductionKernel", [", ".join(params), _param(dtype, out), map_expr, reduce_expr, post,
                                                 identity], {"reduce_type": acc_c, "preamble": preamble}, node)
        axes = node.attr("axes")
        kw = []
        if axes is not None and tuple(axes) != tuple(range(x.type.rank)):
            kw.append(f"axis={axes[0] if len(axes) == 1 else tuple(axes)}")
        if node.attr("keepdims"):
            kw.append("keepdims=True")
        var = ctx.names.fresh(ctx.hint(node) or self._fallback(node))
        self.arrays[name] = (node, var)
        call = f"{kname}({', '.join(self._cover(arrays, args, x.shape) + kw)})"
        return [f"{var} = {call}  # {place(node)}"]

    def elementwise(self, shape, stores: list[P.Store], outputs: dict) -> list[str]:
        """One ElementwiseKernel writing every store of this shape."""
        ctx = self.ctx
        steps, arrays, sizes = self._cone([st.value for st in stores])
        params, args = self._params(arrays, sizes)
        reads: dict[str, int] = {}  # step name -> how often this kernel reads it
        for e in [s.expr for s in steps] + [st.value for st in stores]:
            for name in _refs(e):
                reads[name] = reads.get(name, 0) + 1
        # a step only its store reads is written straight into the output
        direct = {st.value.name: st for st in stores if type(st.value).__name__ == "Ref" and
                  reads.get(st.value.name) == 1 and st.value.name in self.steps}
        used: set[str] = set()
        body = []
        for s in steps:
            st = direct.get(s.name)
            if st is None:
                body += self._statements([s], used, "")
            else:
                body.append(f"{outputs[st.output].name} = {cuda.expr(s.expr, self._leaf, used)};  // {_where(s.node)}")
        outs, vars_ = [], []
        for st in stores:
            o = outputs[st.output]
            outs.append(_param(o.dtype, o.name))
            if not (type(st.value).__name__ == "Ref" and st.value.name in direct):
                body.append(f"{o.name} = {cuda.expr(st.value, self._leaf, used)};")
            var = ctx.names.fresh(ctx.hint(o.node) or self._fallback(o.node))
            vars_.append(var)
            self._bind(o.node, var)
        kname = self._define("ElementwiseKernel", [", ".join(params), ", ".join(outs), "\n".join(body)],
                             {"preamble": cuda.preamble(used)}, stores[0].node)
        call = f"{kname}({', '.join(self._cover(arrays, args, shape))})"
        return [f"{', '.join(vars_)} = {call}  # {', '.join(sorted({place(st.node) for st in stores}))}"]

    def _fallback(self, node: Node) -> str:
        """A variable's name when the source gives none: `value` for a gradient function's value
        (as the per-op code names it), else `t`."""
        d = self.body.fn.derivative
        if d is not None and d.n_gradients and d.part is Part.WHOLE and any(o is node for o in self.body.fn.outputs):
            return "value"
        return "t"

    def _define(self, cls: str, args: list[str], kwargs: dict, node: Node) -> str:
        """The module-level kernel object (one per distinct kernel), by its Python name."""
        mod = self.ctx.mod
        key = _shape_of(cls, args, kwargs)
        name = mod.cupy_kernels.get(key)
        if name is not None:
            return name
        name = mod.cupy_kernels[key] = mod.names.fresh(f"_k{len(mod.cupy_kernels)}")
        xp = self.ctx.xp
        parts = [_string(a) for a in args] + [repr(f"tapeless{name}")]
        parts += [f"{k}={_string(v)}" for k, v in kwargs.items() if v]
        fn = sanitize_docstring(self.ctx.fn_name)
        mod.cupy_kernel_sources.append(
            f"# {fn}: {', '.join(self.prog.places) or place(node)}\n"
            f"{name} = {xp}.{cls}(\n" + "".join(f"    {p},\n" for p in parts) + ")\n")
        return name


def _shape_of(cls: str, args: list[str], kwargs: dict) -> tuple:
    """A kernel's identity up to the names of its local steps (`const float t_1 = ...`): two
    functions computing the same chain get their steps numbered differently, and share one
    kernel object all the same (CuPy compiles each distinct source once)."""
    text = "\n".join([cls, *args, *(f"{k}={v}" for k, v in sorted(kwargs.items()))])
    names = dict.fromkeys(re.findall(r"\bconst \w+ (\w+) =", text))
    for k, name in enumerate(names):
        text = re.sub(rf"\b{name}\b", f"\x00{k}", text)
    return (text,)


def _refs(e):
    """The step names an expression reads."""
    kind = type(e).__name__
    if kind == "Ref":
        yield e.name
    elif kind == "Unary":
        yield from _refs(e.a)
    elif kind == "Binary":
        yield from _refs(e.a)
        yield from _refs(e.b)
    elif kind == "Call":
        for a in e.args:
            yield from _refs(a)


def _c_param(p: str) -> str:
    """`float32 x` as a C parameter: `float x`."""
    dtype, name = p.split()
    return f"{cuda.CTYPES[DType.from_numpy(dtype)]} {name}"


def _where(node: Node) -> str:
    return sanitize_docstring(place(node))


def _string(text: str) -> str:
    """C++ text as a Python literal: one line as a repr, several as a triple-quoted block."""
    if "\n" not in text:
        return repr(text)
    assert '"""' not in text and "\\" not in text, text
    return '"""\n' + text + '\n"""'
