"""One case per built-in (and per interesting broadcast / keyword variant).

Each case is a one-line `.tl` function `f(params) = expr`, the same computation
written independently in NumPy (`ref`, evaluated with `np` and the inputs) and
in PyTorch (`torch`, used only by tests/reference/make_torch_refs.py to record
reference values; torch is never needed to run the tests), and the domain its
inputs are drawn from so every derivative exists there.

Domains: normal, positive (0.5..2), unit (0.05..0.95), above1 (1.1..3), spd (m m^T + n I), away (|x| in 0.3..2,
random sign: away from kinks at 0), int:LO:HI (integers in [LO, HI)).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    params: dict  # name -> type text
    expr: str
    ref: str
    torch: str | None = None
    domains: dict = field(default_factory=dict)  # name -> domain (default normal)
    wrt: tuple | None = None  # default: every floating parameter
    extremes: tuple = ()  # ({param: values}, ...) for forward-value tests at the extremes
    finite_differences: bool = True  # False where the derivative is *meant* to differ (stop_gradient)
    prelude: str = ""  # a statement before the return (`v, i = topk(a, 2)`)

    def source(self) -> str:
        params = ", ".join(f"{k}: {v}" for k, v in self.params.items())
        wrt = ", ".join(self.grad_params())
        before = f"    {self.prelude}\n" if self.prelude else ""
        text = f"fn f({params}) {{\n{before}    return {self.expr}\n}}\n"
        if wrt:
            text += f"vjp f wrt {wrt}\njvp f wrt {wrt}\n"
        return text

    def grad_params(self) -> tuple:
        if self.wrt is not None:
            return self.wrt
        return tuple(k for k, v in self.params.items() if v.startswith("f"))

    def inputs(self, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        out = {}
        for k, t in self.params.items():
            out[k] = draw(rng, t, self.domains.get(k, "normal"))
        return out


def parse_type(t: str):
    dtype, _, rest = t.partition("[")
    shape = tuple(int(d) for d in rest.rstrip("]").split(",") if d.strip()) if rest else ()
    return {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
            "bool": np.bool_}[dtype], shape


def draw(rng, t: str, domain: str):
    dtype, shape = parse_type(t)
    if domain.startswith("int:"):
        lo, hi = map(int, domain.split(":")[1:])
        return rng.integers(lo, hi, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if domain == "positive":
        v = rng.uniform(0.5, 2.0, shape)
    elif domain == "unit":
        v = rng.uniform(0.05, 0.95, shape)
    elif domain == "above1":
        v = rng.uniform(1.1, 3.0, shape)
    elif domain == "spd":  # symmetric positive definite matrices in the last two axes
        m = rng.standard_normal(shape)
        v = m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])
    elif domain == "away":
        v = rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif domain == "distinct":  # a permutation of spaced values: no ties in max/min/sort
        n = int(np.prod(shape)) if shape else 1
        v = (rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)
    else:
        v = rng.standard_normal(shape)
    return np.asarray(v, dtype=dtype)


F = "torch.nn.functional"


def conv2d_reference(x, w, stride, padding, dilation, groups):
    """torch.nn.functional.conv2d written with plain loops over the kernel (for `ref` expressions)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (x.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    patch = x[:, g * cg + ci, i * dilation[0]:i * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                              j * dilation[1]:j * dilation[1] + stride[1] * (ow - 1) + 1:stride[1]]
                    out[:, oc] += w[oc, ci, i, j] * patch
    return out
BIG = np.array([-1000.0, -800.0, -50.0, -1e-8, 0.0, 1e-8, 50.0, 800.0, 1000.0])

CASES = [
    # ---- elementwise unary
    Case("exp", {"a": "f64[3, 4]"}, "exp(a)", "np.exp(a)", "torch.exp(a)"),
    Case("log", {"a": "f64[3, 4]"}, "log(a)", "np.log(a)", "torch.log(a)", {"a": "positive"}),
    Case("log1p", {"a": "f64[5]"}, "log1p(a)", "np.log(1 + a.astype(np.longdouble)).astype(np.float64)",
         "torch.log1p(a)", {"a": "unit"}, extremes=({"a": np.array([1e-12, 1e-8, 0.0, -1e-10, 3.0])},)),
    Case("expm1", {"a": "f64[5]"}, "expm1(a)", "(np.exp(a.astype(np.longdouble)) - 1).astype(np.float64)",
         "torch.expm1(a)", extremes=({"a": np.array([1e-12, -1e-9, 0.0, 1e-5, 2.0])},)),
    Case("sqrt", {"a": "f64[2, 3]"}, "sqrt(a)", "np.sqrt(a)", "torch.sqrt(a)", {"a": "positive"}),
    Case("abs", {"a": "f64[6]"}, "abs(a)", "np.abs(a)", "torch.abs(a)", {"a": "away"}),
    Case("sign", {"a": "f64[6]"}, "sign(a)", "np.sign(a)", "torch.sign(a)", {"a": "away"}),
    Case("sin", {"a": "f64[4]"}, "sin(a)", "np.sin(a)", "torch.sin(a)"),
    Case("cos", {"a": "f64[4]"}, "cos(a)", "np.cos(a)", "torch.cos(a)"),
    Case("tan", {"a": "f64[4]"}, "tan(a)", "np.tan(a)", "torch.tan(a)", {"a": "unit"}),
    Case("tanh", {"a": "f64[4]"}, "tanh(a)", "np.tanh(a)", "torch.tanh(a)",
         extremes=({"a": BIG},)),
    Case("sigmoid", {"a": "f64[9]"}, "sigmoid(a)", "np.exp(-np.logaddexp(0, -a))", "torch.sigmoid(a)",
         extremes=({"a": BIG},)),
    Case("softplus", {"a": "f64[9]"}, "softplus(a)", "np.logaddexp(0, a)", f"{F}.softplus(a, threshold=1e9)",
         extremes=({"a": BIG},)),
    Case("relu", {"a": "f64[6]"}, "relu(a)", "np.where(a > 0, a, 0.0)", "torch.relu(a)", {"a": "away"}),
    Case("neg", {"a": "f64[3]"}, "-a", "-a", "-a"),
    # ---- more elementwise math (compiler/primitives/math_functions.py)
    Case("arcsin", {"a": "f64[5]"}, "arcsin(a)", "np.arcsin(a)", "torch.asin(a)", {"a": "unit"}),
    Case("arccos", {"a": "f64[5]"}, "arccos(a)", "np.arccos(a)", "torch.acos(a)", {"a": "unit"}),
    Case("arctan", {"a": "f64[5]"}, "arctan(a)", "np.arctan(a)", "torch.atan(a)"),
    Case("sinh", {"a": "f64[5]"}, "sinh(a)", "np.sinh(a)", "torch.sinh(a)"),
    Case("cosh", {"a": "f64[5]"}, "cosh(a)", "np.cosh(a)", "torch.cosh(a)"),
    Case("arcsinh", {"a": "f64[5]"}, "arcsinh(a)", "np.arcsinh(a)", "torch.asinh(a)",
         extremes=({"a": np.array([1e200, -1e200, 0.0, 1e-300, 3.0])},)),
    Case("arccosh", {"a": "f64[5]"}, "arccosh(a)", "np.arccosh(a)", "torch.acosh(a)", {"a": "above1"},
         extremes=({"a": np.array([1.0, 1.0 + 1e-12, 1e200, 2.0, 3.0])},)),
    Case("arctanh", {"a": "f64[5]"}, "arctanh(a)", "np.arctanh(a)", "torch.atanh(a)", {"a": "unit"}),
    Case("log2", {"a": "f64[5]"}, "log2(a)", "np.log2(a)", "torch.log2(a)", {"a": "positive"}),
    Case("log10", {"a": "f64[5]"}, "log10(a)", "np.log10(a)", "torch.log10(a)", {"a": "positive"}),
    Case("exp2", {"a": "f64[5]"}, "exp2(a)", "np.exp2(a)", "torch.exp2(a)"),
    Case("cbrt", {"a": "f64[6]"}, "cbrt(a)", "np.cbrt(a)", "torch.sign(a) * torch.abs(a) ** (1.0 / 3)",
         {"a": "away"}),
    Case("square", {"a": "f64[5]"}, "square(a)", "np.square(a)", "torch.square(a)"),
    Case("reciprocal", {"a": "f64[6]"}, "reciprocal(a)", "np.reciprocal(a)", "torch.reciprocal(a)",
         {"a": "away"}),
    Case("rounding", {"a": "f64[6]"}, "floor(a) + ceil(a) * 2 + trunc(a) * 3 + round(a) * 4 + a * 5",
         "np.floor(a) + np.ceil(a) * 2 + np.trunc(a) * 3 + np.round(a) * 4 + a * 5",
         "torch.floor(a) + torch.ceil(a) * 2 + torch.trunc(a) * 3 + torch.round(a) * 4 + a * 5", {"a": "away"}),
    Case("arctan2", {"y": "f64[3, 4]", "x": "f64[4]"}, "arctan2(y, x)", "np.arctan2(y, x)", "torch.atan2(y, x)"),
    Case("hypot", {"a": "f64[3, 4]", "b": "f64[3, 1]"}, "hypot(a, b)", "np.hypot(a, b)", "torch.hypot(a, b)"),
    Case("mod", {"a": "f64[6]", "b": "f64[6]"}, "mod(a, b)", "np.mod(a, b)", "torch.remainder(a, b)",
         {"b": "away"}),
    Case("percent", {"a": "f64[6]", "b": "f64[3, 1]"}, "a % b * 2", "np.mod(a, b) * 2", "torch.remainder(a, b) * 2",
         {"b": "away"}),
    Case("fmod", {"a": "f64[2, 3]", "b": "f64[3]"}, "fmod(a, b)", "np.fmod(a, b)", "torch.fmod(a, b)",
         {"b": "away"}),
    Case("f32_cast", {"a": "f64[3]"}, "f64(f32(a)) * 2", "a.astype(np.float32).astype(np.float64) * 2",
         "a.float().double() * 2"),
    # ---- scans and order (compiler/primitives/scans.py and expansions)
    Case("cumsum", {"a": "f64[3, 4]"}, "cumsum(a, axis=1)", "np.cumsum(a, axis=1)", "torch.cumsum(a, dim=1)"),
    Case("cumprod", {"a": "f64[3, 4]"}, "cumprod(a, axis=1)", "np.cumprod(a, axis=1)", "torch.cumprod(a, dim=1)",
         extremes=({"a": np.array([[1.0, 0.0, 2.0, 3.0], [0.0, 0.0, 1.5, 2.0], [2.0, 3.0, -1.0, 0.0]])},)),
    Case("logcumsumexp", {"a": "f64[3, 4]"}, "logcumsumexp(a, axis=1)",
         "np.apply_along_axis(lambda r: [scipy.special.logsumexp(r[:k + 1]) for k in range(r.size)], 1, a)",
         "torch.logcumsumexp(a, dim=1)",
         extremes=({"a": np.array([[1000.0, -1000.0, 999.0, 0.0], [-800.0, -700.0, 700.0, 0.0],
                                   [-np.inf, -np.inf, 3.0, -np.inf]])},)),
    Case("diff", {"a": "f64[3, 5]"}, "diff(a, n=2, axis=1)", "np.diff(a, n=2, axis=1)", "torch.diff(a, n=2, dim=1)"),
    Case("flip", {"a": "f64[3, 4]"}, "flip(a, axis=0) * a", "np.flip(a, 0) * a", "torch.flip(a, dims=[0]) * a"),
    Case("roll", {"a": "f64[3, 4]"}, "roll(a, -5, axis=1) * a", "np.roll(a, -5, 1) * a",
         "torch.roll(a, -5, dims=1) * a"),
    Case("pad", {"a": "f64[2, 3]"}, "pad(a, [[1, 0], [2, 1]], value=0.5) ** 2",
         "np.pad(a, [[1, 0], [2, 1]], constant_values=0.5) ** 2", f"{F}.pad(a, (2, 1, 1, 0), value=0.5) ** 2"),
    Case("tile", {"a": "f64[2, 3]"}, "tile(a, [2, 1, 2])", "np.tile(a, [2, 1, 2])", "torch.tile(a, (2, 1, 2))"),
    Case("repeat", {"a": "f64[2, 3]"}, "repeat(a, 3, axis=1)", "np.repeat(a, 3, axis=1)",
         "torch.repeat_interleave(a, 3, dim=1)"),
    Case("sort", {"a": "f64[3, 4]"}, "sort(a, axis=0) * a", "np.sort(a, axis=0) * a",
         "torch.sort(a, dim=0, stable=True).values * a", {"a": "distinct"}),
    Case("topk", {"a": "f64[3, 5]"}, "v * 2 + f64(i)",
         "np.take_along_axis(a, np.argsort(-a, axis=-1, kind='stable')[:, :2], -1) * 2"
         " + np.argsort(-a, axis=-1, kind='stable')[:, :2]",
         "torch.topk(a, 2).values * 2 + torch.topk(a, 2).indices.double()", {"a": "distinct"},
         prelude="v, i = topk(a, 2)"),
    Case("argsort", {"a": "f64[3, 4]"}, "f64(argsort(a, axis=0, descending=true)) * a",
         "np.argsort(-a, axis=0, kind='stable') * a",
         "torch.argsort(a, dim=0, descending=True, stable=True).double() * a", {"a": "distinct"}),
    Case("argmax_argmin", {"a": "f64[3, 4]"}, "f64(argmax(a, axis=1, keepdims=true) - argmin(a)) * a",
         "(np.argmax(a, axis=1, keepdims=True) - np.argmin(a)) * a",
         "(torch.argmax(a, dim=1, keepdim=True) - torch.argmin(a)).double() * a", {"a": "distinct"}),
    # ---- linear algebra built from contractions and masks
    Case("tril_triu", {"a": "f64[2, 3, 4]"}, "tril(a, k=1) * triu(a, -1) + tril(a)",
         "np.tril(a, 1) * np.triu(a, -1) + np.tril(a)", "torch.tril(a, 1) * torch.triu(a, -1) + torch.tril(a)"),
    Case("kron", {"a": "f64[2, 3]", "b": "f64[3]"}, "kron(a, b)", "np.kron(a, b)", "torch.kron(a, b)"),
    Case("tensordot", {"a": "f64[2, 3, 4]", "b": "f64[4, 3, 2]"}, "tensordot(a, b, [[1, 2], [1, 0]])",
         "np.tensordot(a, b, [[1, 2], [1, 0]])", "torch.tensordot(a, b, dims=([1, 2], [1, 0]))"),
    Case("norm_vector", {"a": "f64[3, 4]"},
         "norm(a, axis=1) + norm(a, 1, axis=1) + norm(a, inf, axis=1) + norm(a, -inf, axis=1) + norm(a, 3, axis=1)",
         "np.linalg.norm(a, axis=1) + np.linalg.norm(a, 1, axis=1) + np.linalg.norm(a, np.inf, axis=1)"
         " + np.linalg.norm(a, -np.inf, axis=1) + np.linalg.norm(a, 3, axis=1)",
         "torch.linalg.vector_norm(a, dim=1) + torch.linalg.vector_norm(a, 1, dim=1)"
         " + torch.linalg.vector_norm(a, float('inf'), dim=1) + torch.linalg.vector_norm(a, -float('inf'), dim=1)"
         " + torch.linalg.vector_norm(a, 3, dim=1)", {"a": "distinct"}),
    Case("norm_matrix", {"a": "f64[2, 3, 4]"},
         "norm(a, axis=[1, 2]) + norm(a, 1, axis=[1, 2]) + norm(a, inf, axis=[1, 2], keepdims=true)[:, 0, 0] + norm(a)",
         "np.linalg.norm(a, axis=(1, 2)) + np.linalg.norm(a, 1, axis=(1, 2))"
         " + np.linalg.norm(a, np.inf, axis=(1, 2), keepdims=True)[:, 0, 0] + np.linalg.norm(a)",
         "torch.linalg.matrix_norm(a) + torch.linalg.matrix_norm(a, 1)"
         " + torch.linalg.matrix_norm(a, float('inf'), keepdim=True)[:, 0, 0] + torch.linalg.vector_norm(a)",
         {"a": "distinct"}),
    # ---- linear algebra that factorizes (compiler/primitives/factorized.py); + 4 I keeps a well conditioned
    Case("solve", {"a": "f64[2, 3, 3]", "b": "f64[3, 2]"}, "solve(a + 4 * eye(3), b)",
         "np.linalg.solve(a + 4 * np.eye(3), b)", "torch.linalg.solve(a + 4 * torch.eye(3, dtype=torch.float64), b)"),
    Case("solve_vector", {"a": "f64[3, 3]", "b": "f64[3]"}, "solve(a + 4 * eye(3), b)",
         "np.linalg.solve(a + 4 * np.eye(3), b)", "torch.linalg.solve(a + 4 * torch.eye(3, dtype=torch.float64), b)"),
    Case("inv", {"a": "f64[3, 3]"}, "inv(a + 4 * eye(3))", "np.linalg.inv(a + 4 * np.eye(3))",
         "torch.linalg.inv(a + 4 * torch.eye(3, dtype=torch.float64))"),
    Case("det_slogdet", {"a": "f64[2, 3, 3]"}, "det(a) + s * l", "np.linalg.det(a) + np.prod(np.linalg.slogdet(a), 0)",
         "torch.linalg.det(a) + torch.linalg.slogdet(a).sign * torch.linalg.slogdet(a).logabsdet",
         prelude="s, l = slogdet(a)"),
    Case("eigh", {"a": "f64[2, 4, 4]", "b": "f64[4, 4]"}, "w * 2 + sum(v * v * b, axis=1)",
         "np.linalg.eigh((a + np.swapaxes(a, 1, 2)) / 2)[0] * 2"
         " + np.sum(np.linalg.eigh((a + np.swapaxes(a, 1, 2)) / 2)[1] ** 2 * b, axis=1)",
         "torch.linalg.eigh((a + a.mT) / 2).eigenvalues * 2"
         " + (torch.linalg.eigh((a + a.mT) / 2).eigenvectors ** 2 * b).sum(1)",
         prelude="w, v = eigh((a + transpose(a, [0, 2, 1])) / 2)"),
    # svd and qr: singular vectors and q, r are defined up to sign, so each loss reads them through
    # sign-free forms (u * u, u @ vh, r * r); tall and batched, then wide (the lambdas' defaults:
    # eval's locals are not a lambda's closure)
    Case("svd", {"a": "f64[2, 4, 3]", "b": "f64[4, 3]"}, "s * 2 + sum(u * u * b, axis=1) + sum((u @ vh) * b, axis=1)",
         "(lambda u, s, vh, b=b: s * 2 + np.sum(u * u * b, axis=1) + np.sum((u @ vh) * b, axis=1))"
         "(*np.linalg.svd(a, full_matrices=False))",
         "(lambda u, s, vh, b=b: s * 2 + (u * u * b).sum(1) + ((u @ vh) * b).sum(1))(*torch.linalg.svd(a, full_matrices=False))",
         prelude="u, s, vh = svd(a)"),
    Case("svd_wide", {"a": "f64[3, 5]", "b": "f64[5]", "c": "f64[3, 1]"},
         "s * s + sum(vh * vh * b, axis=1) + sum(u * u * c, axis=0)",
         "(lambda u, s, vh, b=b, c=c: s * s + np.sum(vh * vh * b, axis=1) + np.sum(u * u * c, axis=0))"
         "(*np.linalg.svd(a, full_matrices=False))",
         "(lambda u, s, vh, b=b, c=c: s * s + (vh * vh * b).sum(1) + (u * u * c).sum(0))(*torch.linalg.svd(a, full_matrices=False))",
         prelude="u, s, vh = svd(a)"),
    Case("norm_singular", {"a": "f64[2, 3, 4]", "b": "f64[3, 3]"},
         "norm(a, 2, axis=[1, 2]) + norm(a, -2, axis=[2, 1]) + norm(a, \"nuc\", axis=[1, 2]) + norm(b, 2)",
         "np.linalg.norm(a, 2, axis=(1, 2)) + np.linalg.norm(a, -2, axis=(2, 1)) + np.linalg.norm(a, 'nuc', axis=(1, 2))"
         " + np.linalg.norm(b, 2)",
         "torch.linalg.matrix_norm(a, 2) + torch.linalg.matrix_norm(a, -2, dim=(2, 1))"
         " + torch.linalg.matrix_norm(a, 'nuc') + torch.linalg.matrix_norm(b, 2)"),
    Case("qr", {"a": "f64[2, 4, 3]", "b": "f64[3, 3]", "c": "f64[4, 3]"},
         "sum(r * r * b, axis=2) + sum(q * q * c, axis=1)",
         "(lambda q, r, b=b, c=c: np.sum(r * r * b, axis=2) + np.sum(q * q * c, axis=1))(*np.linalg.qr(a))",
         "(lambda q, r, b=b, c=c: (r * r * b).sum(2) + (q * q * c).sum(1))(*torch.linalg.qr(a))",
         prelude="q, r = qr(a)"),
    Case("qr_wide", {"a": "f64[3, 5]", "b": "f64[3, 5]", "c": "f64[3, 3]"},
         "sum(r * r * b, axis=1) + sum(q * q * c, axis=0)",
         "(lambda q, r, b=b, c=c: np.sum(r * r * b, axis=1) + np.sum(q * q * c, axis=0))(*np.linalg.qr(a))",
         "(lambda q, r, b=b, c=c: (r * r * b).sum(1) + (q * q * c).sum(0))(*torch.linalg.qr(a))",
         prelude="q, r = qr(a)"),
    Case("cholesky", {"a": "f64[2, 3, 3]"}, "cholesky((a + transpose(a, [0, 2, 1])) / 2)",
         "np.linalg.cholesky((a + np.swapaxes(a, 1, 2)) / 2)", "torch.linalg.cholesky((a + a.mT) / 2)",
         {"a": "spd"}),
    Case("logdet", {"a": "f64[3, 3]"}, "logdet((a + a.T) / 2)", "np.linalg.slogdet((a + a.T) / 2)[1]",
         "torch.logdet((a + a.T) / 2)", {"a": "spd"}),
    Case("solve_triangular", {"a": "f64[3, 3]", "b": "f64[3, 2]"}, "solve_triangular(a + 4 * eye(3), b, lower=false)",
         "np.linalg.solve(np.triu(a + 4 * np.eye(3)), b)",
         "torch.linalg.solve_triangular(a + 4 * torch.eye(3, dtype=torch.float64), b, upper=True)"),
    Case("cho_solve", {"l": "f64[3, 3]", "b": "f64[3]"}, "cho_solve(tril(l) + 4 * eye(3), b)",
         "np.linalg.solve((np.tril(l) + 4 * np.eye(3)) @ (np.tril(l) + 4 * np.eye(3)).T, b)",
         "torch.cholesky_solve(b[:, None], torch.tril(l) + 4 * torch.eye(3, dtype=torch.float64))[:, 0]"),
    # ---- convolution and pooling (compiler/primitives/windows.py and expansions), NCHW
    Case("conv2d", {"x": "f64[2, 4, 6, 5]", "w": "f64[6, 2, 3, 2]"},
         "conv2d(x, w, stride=[2, 1], padding=1, dilation=[1, 2], groups=2)",
         "conv2d_reference(x, w, (2, 1), (1, 1), (1, 2), 2)",
         f"{F}.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)"),
    Case("conv1d", {"x": "f64[2, 3, 7]", "w": "f64[4, 3, 2]"}, "conv1d(x, w, stride=2, padding=1)",
         "conv2d_reference(x[..., None], w[..., None], (2, 1), (1, 0), (1, 1), 1)[..., 0]",
         f"{F}.conv1d(x, w, stride=2, padding=1)"),
    Case("conv2d_relu", {"x": "f64[3, 2, 6, 5]", "w": "f64[4, 2, 3, 2]"}, "relu(conv2d(x, w, padding=[0, 1]))",
         "np.maximum(conv2d_reference(x, w, (1, 1), (0, 1), (1, 1), 1), 0)",
         f"{F}.relu({F}.conv2d(x, w, padding=(0, 1)))"),
    Case("pool2d", {"x": "f64[2, 3, 6, 4]"}, "max_pool2d(x, 2) + avg_pool2d(x, [2, 4], stride=[2, 1])",
         "x.reshape(2, 3, 3, 2, 2, 2).max((3, 5)) + x.reshape(2, 3, 3, 2, 1, 4).mean((3, 5))",
         f"{F}.max_pool2d(x, 2) + {F}.avg_pool2d(x, (2, 4), stride=(2, 1))", {"x": "distinct"}),
    # ---- special functions (compiler/primitives/special.py: scipy.special)
    Case("erf", {"a": "f64[5]"}, "erf(a) + erfc(a) * 2", "scipy.special.erf(a) + scipy.special.erfc(a) * 2",
         "torch.special.erf(a) + torch.special.erfc(a) * 2"),
    Case("erfinv", {"a": "f64[5]"}, "erfinv(a)", "scipy.special.erfinv(a)", "torch.special.erfinv(a)",
         {"a": "unit"}),
    Case("erfcx", {"a": "f64[5]"}, "erfcx(a)", "scipy.special.erfcx(a)", "torch.special.erfcx(a)",
         extremes=({"a": np.array([-5.0, 0.0, 30.0, 1e5, 2.0])},)),
    Case("lgamma", {"a": "f64[5]"}, "lgamma(a) + digamma(a)", "scipy.special.gammaln(a) + scipy.special.digamma(a)",
         "torch.lgamma(a) + torch.special.digamma(a)", {"a": "positive"}),
    Case("polygamma", {"a": "f64[4]"}, "polygamma(1, a) + polygamma(2, a) + polygamma(0, a)",
         "scipy.special.polygamma(1, a) + scipy.special.polygamma(2, a) + scipy.special.digamma(a)",
         "torch.special.polygamma(1, a) + torch.special.polygamma(2, a) + torch.special.polygamma(0, a)",
         {"a": "positive"}),
    Case("xlogy", {"a": "f64[2, 3]", "b": "f64[3]"}, "xlogy(a, b) + xlog1py(a, b)",
         "scipy.special.xlogy(a, b) + scipy.special.xlog1py(a, b)",
         "torch.special.xlogy(a, b) + torch.special.xlog1py(a, b)", {"b": "positive"}),
    Case("logit", {"a": "f64[5]"}, "logit(a)", "scipy.special.logit(a)", "torch.special.logit(a)", {"a": "unit"}),
    Case("ndtr", {"a": "f64[6]"}, "ndtr(a) + log_ndtr(a)", "scipy.special.ndtr(a) + scipy.special.log_ndtr(a)",
         "torch.special.ndtr(a) + torch.special.log_ndtr(a)",
         extremes=({"a": np.array([-40.0, -10.0, 0.0, 5.0, 40.0, -1.0])},)),
    Case("bessel_i", {"a": "f64[5]"}, "i0(a) + i1(a) * 2 + i0e(a) * 3 + i1e(a) * 4",
         "scipy.special.i0(a) + scipy.special.i1(a) * 2 + scipy.special.i0e(a) * 3 + scipy.special.i1e(a) * 4",
         "torch.special.i0(a) + torch.special.i1(a) * 2 + torch.special.i0e(a) * 3 + torch.special.i1e(a) * 4"),
    # torch.special.bessel_j0/j1 have no derivatives (2.13): checked by SymPy and finite differences only
    Case("bessel_j", {"a": "f64[5]"}, "j0(a) + j1(a) * 2", "scipy.special.j0(a) + scipy.special.j1(a) * 2"),
    # ---- arithmetic with broadcasting
    Case("add", {"a": "f64[3, 1]", "b": "f64[4]"}, "a + b", "a + b", "a + b"),
    Case("sub", {"a": "f64[2, 3]", "b": "f64[3]"}, "a - b", "a - b", "a - b"),
    Case("mul", {"a": "f64[2, 1, 3]", "b": "f64[4, 1]"}, "a * b", "a * b", "a * b"),
    Case("div", {"a": "f64[3]", "b": "f64[2, 3]"}, "a / b", "a / b", "a / b", {"b": "positive"}),
    Case("pow", {"a": "f64[3]", "b": "f64[3]"}, "a ** b", "a ** b", "a ** b", {"a": "positive"}),
    Case("pow_const", {"a": "f64[4]"}, "a ** 3 + a ** 0.5", "a ** 3 + a ** 0.5", "a ** 3 + a ** 0.5",
         {"a": "positive"}),
    Case("scalar_literal", {"a": "f64[3]"}, "2 * a - 1 / a + 0.5", "2 * a - 1 / a + 0.5",
         "2 * a - 1 / a + 0.5", {"a": "positive"}),
    Case("maximum", {"a": "f64[3, 4]", "b": "f64[4]"}, "maximum(a, b)", "np.maximum(a, b)",
         "torch.maximum(a, b)"),
    Case("minimum", {"a": "f64[3, 4]", "b": "f64[3, 1]"}, "minimum(a, b)", "np.minimum(a, b)",
         "torch.minimum(a, b)"),
    Case("where", {"a": "f64[3, 4]", "b": "f64[4]"}, "where(a > b, a * 2, b)",
         "np.where(a > b, a * 2, b)", "torch.where(a > b, a * 2, b)"),
    Case("clip", {"a": "f64[8]"}, "clip(a, -0.5, 0.5)", "np.clip(a, -0.5, 0.5)", "torch.clamp(a, -0.5, 0.5)",
         {"a": "away"}),
    Case("compare_mask", {"a": "f64[5]"}, "a * f64(a > 0)", "a * (a > 0)", "a * (a > 0).double()",
         {"a": "away"}),
    # ---- reductions
    Case("sum_all", {"a": "f64[3, 4]"}, "sum(a)", "np.sum(a)", "torch.sum(a)"),
    Case("sum_axis", {"a": "f64[3, 4, 2]"}, "sum(a, axis=[0, 2])", "np.sum(a, axis=(0, 2))",
         "torch.sum(a, dim=(0, 2))"),
    Case("sum_keepdims", {"a": "f64[3, 4]"}, "sum(a, axis=1, keepdims=true)", "np.sum(a, axis=1, keepdims=True)",
         "torch.sum(a, dim=1, keepdim=True)"),
    Case("mean", {"a": "f64[3, 4]"}, "mean(a, axis=0)", "np.mean(a, axis=0)", "torch.mean(a, dim=0)"),
    Case("prod", {"a": "f64[2, 3]"}, "prod(a, axis=1)", "np.prod(a, axis=1)", "torch.prod(a, dim=1)"),
    Case("max", {"a": "f64[3, 4]"}, "max(a, axis=1)", "np.max(a, axis=1)", "torch.amax(a, dim=1)",
         {"a": "distinct"}),
    Case("min", {"a": "f64[3, 4]"}, "min(a)", "np.min(a)", "torch.amin(a)", {"a": "distinct"}),
    Case("logsumexp", {"a": "f64[3, 4]"}, "logsumexp(a, axis=1)",
         "np.log(np.sum(np.exp(a - a.max(1, keepdims=True)), 1)) + a.max(1)", "torch.logsumexp(a, dim=1)",
         extremes=({"a": np.array([[1000.0, 999.0, -1000.0, 0.0]] * 3)},)),
    Case("var", {"a": "f64[3, 4]"}, "var(a, axis=1)", "np.var(a, axis=1)", "torch.var(a, dim=1, unbiased=False)"),
    Case("std", {"a": "f64[3, 4]"}, "std(a, ddof=1)", "np.std(a, ddof=1)", "torch.std(a)"),
    # ---- linear algebra
    Case("matmul", {"a": "f64[3, 4]", "b": "f64[4, 2]"}, "a @ b", "a @ b", "a @ b"),
    Case("matmul_vec", {"a": "f64[4]", "b": "f64[4, 2]"}, "a @ b", "a @ b", "a @ b"),
    Case("matvec", {"a": "f64[3, 4]", "b": "f64[4]"}, "a @ b", "a @ b", "a @ b"),
    Case("dot", {"a": "f64[4]", "b": "f64[4]"}, "a @ b", "a @ b", "a @ b"),
    Case("matmul_batch", {"a": "f64[2, 3, 4]", "b": "f64[4, 5]"}, "a @ b", "a @ b", "a @ b"),
    Case("matmul_bcast", {"a": "f64[2, 1, 3, 4]", "b": "f64[5, 4, 2]"}, "a @ b", "a @ b", "a @ b"),
    Case("einsum", {"a": "f64[3, 4]", "b": "f64[4, 5]"}, 'einsum("ij,jk->ik", a, b)',
         'np.einsum("ij,jk->ik", a, b)', 'torch.einsum("ij,jk->ik", a, b)'),
    Case("einsum_implicit", {"a": "f64[3, 4]", "b": "f64[3, 4]"}, 'einsum("ij,ij", a, b)',
         'np.einsum("ij,ij", a, b)', 'torch.einsum("ij,ij", a, b)'),
    Case("einsum_batch", {"a": "f64[2, 3, 4]", "b": "f64[2, 4]"}, 'einsum("bij,bj->bi", a, b)',
         'np.einsum("bij,bj->bi", a, b)', 'torch.einsum("bij,bj->bi", a, b)'),
    Case("einsum_ellipsis", {"a": "f64[2, 3, 4]", "b": "f64[4]"}, 'einsum("...j,j->...", a, b)',
         'np.einsum("...j,j->...", a, b)', 'torch.einsum("...j,j->...", a, b)'),
    Case("einsum_outer_sum", {"a": "f64[3]", "b": "f64[2, 4]"}, 'einsum("i,jk->ij", a, b)',
         'np.einsum("i,jk->ij", a, b)', 'torch.einsum("i,jk->ij", a, b)'),
    Case("einsum_trace", {"a": "f64[3, 3]"}, 'einsum("ii->", a)', 'np.einsum("ii->", a)',
         'torch.einsum("ii->", a)'),
    Case("einsum_bcast", {"a": "f64[1, 3]", "b": "f64[2, 3]", "c": "f64[2, 1, 4]"}, 'einsum("...j,...j,...k->...k", a, b, c)',
         'np.einsum("...j,...j,...k->...k", a, b, c)', 'torch.einsum("...j,...j,...k->...k", a, b, c)'),
    Case("einsum_diag", {"a": "f64[3, 3]", "b": "f64[3]"}, 'einsum("ii,i->i", a, b)',
         'np.einsum("ii,i->i", a, b)', 'torch.einsum("ii,i->i", a, b)'),
    Case("transpose", {"a": "f64[2, 3, 4]"}, "transpose(a, [1, 2, 0]) * 2", "np.transpose(a, (1, 2, 0)) * 2",
         "a.permute(1, 2, 0) * 2"),
    Case("dot_T", {"a": "f64[2, 3]"}, "a.T @ a", "a.T @ a", "a.T @ a"),
    Case("trace", {"a": "f64[4, 4]"}, "trace(a)", "np.trace(a)", "torch.trace(a)"),
    Case("diagonal", {"a": "f64[3, 4]"}, "diagonal(a)", "np.diagonal(a)", "torch.diagonal(a)"),
    Case("outer", {"a": "f64[3]", "b": "f64[4]"}, "outer(a, b)", "np.outer(a, b)", "torch.outer(a, b)"),
    # ---- shapes
    Case("reshape", {"a": "f64[2, 6]"}, "reshape(a, [3, -1]) * 2", "a.reshape(3, -1) * 2", "a.reshape(3, -1) * 2"),
    Case("broadcast_to", {"a": "f64[3, 1]"}, "broadcast_to(a, [2, 3, 4])", "np.broadcast_to(a, (2, 3, 4))",
         "a.expand(2, 3, 4)"),
    Case("squeeze", {"a": "f64[3, 1, 2]"}, "squeeze(a, 1) * 2", "np.squeeze(a, 1) * 2", "a.squeeze(1) * 2"),
    Case("expand_dims", {"a": "f64[3, 2]"}, "expand_dims(a, 1) * 2", "np.expand_dims(a, 1) * 2",
         "a.unsqueeze(1) * 2"),
    Case("concat", {"a": "f64[2, 3]", "b": "f64[4, 3]"}, "concat([a, b * 2], axis=0)",
         "np.concatenate([a, b * 2], axis=0)", "torch.cat([a, b * 2], dim=0)"),
    Case("stack", {"a": "f64[3]", "b": "f64[3]"}, "stack([a, b], axis=1)", "np.stack([a, b], axis=1)",
         "torch.stack([a, b], dim=1)"),
    Case("index", {"a": "f64[4, 5]"}, "a[1:3, ::-2] * 2", "a[1:3, ::-2] * 2", "a[1:3].flip(1)[:, ::2] * 2"),
    Case("index_int_none", {"a": "f64[4, 5]"}, "a[-1, None, 2:]", "a[-1, None, 2:]", "a[-1, None, 2:]"),
    Case("index_ellipsis", {"a": "f64[2, 3, 4]"}, "a[..., 1] + a[0, ..., 0][None]", "a[..., 1] + a[0, ..., 0][None]",
         "a[..., 1] + a[0, ..., 0][None]"),
    Case("take", {"a": "f64[5, 3]", "i": "i64[4]"}, "take(a, i, axis=0)", "np.take(a, i, axis=0)",
         "torch.index_select(a, 0, i)", {"i": "int:0:5"}),
    Case("take_repeat", {"a": "f64[4]", "i": "i64[2, 3]"}, "take(a, i)", "np.take(a, i)", "a[i]",
         {"i": "int:0:2"}),
    Case("take_along_axis", {"a": "f64[3, 4]", "i": "i64[3, 2]"}, "take_along_axis(a, i, 1)",
         "np.take_along_axis(a, i, 1)", "torch.gather(a, 1, i)", {"i": "int:0:4"}),
    # ---- constructors
    Case("zeros_ones", {"a": "f64[2, 3]"}, "a + zeros([2, 3]) + ones([3]) * 2", "a + 2.0", "a + 2.0"),
    Case("full_eye", {"a": "f64[3, 3]"}, "a * eye(3) + full([3], 0.5)", "a * np.eye(3) + 0.5",
         "a * torch.eye(3, dtype=torch.float64) + 0.5"),
    Case("like", {"a": "f64[2, 2]"}, "a * ones_like(a) - zeros_like(a)", "a * 1.0", "a * 1.0"),
    # ---- neural-network losses
    Case("softmax", {"a": "f64[3, 4]"}, "softmax(a)",
         "np.exp(a - a.max(-1, keepdims=True)) / np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)",
         "torch.softmax(a, dim=-1)", extremes=({"a": np.array([[1000.0, 0.0, -1000.0, 999.0]] * 3)},)),
    Case("softmax_axis0", {"a": "f64[3, 4]"}, "softmax(a, axis=0)", "np.exp(a) / np.exp(a).sum(0, keepdims=True)",
         "torch.softmax(a, dim=0)"),
    Case("log_softmax", {"a": "f64[2, 5]"}, "log_softmax(a)",
         "a - a.max(-1, keepdims=True) - np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True))",
         "torch.log_softmax(a, dim=-1)",
         extremes=({"a": np.array([[1000.0, 0.0, -1000.0, 999.0, 5.0]] * 2)},)),
    Case("bce_with_logits", {"z": "f64[4, 3]", "y": "f64[4, 3]"}, "bce_with_logits(z, y)",
         "np.logaddexp(0, z) - z * y", f"{F}.binary_cross_entropy_with_logits(z, y, reduction='none')",
         {"y": "unit"}, extremes=({"z": np.array([[-1000.0, 0.0, 1000.0]] * 4), "y": np.full((4, 3), 0.3)},)),
    Case("binary_cross_entropy", {"p": "f64[4, 3]", "y": "f64[4, 3]"}, "binary_cross_entropy(p, y)",
         "-(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))", f"{F}.binary_cross_entropy(p, y, reduction='none')",
         {"p": "unit", "y": "unit"},
         extremes=({"p": np.array([[0.0, 1.0, 1e-50]] * 4), "y": np.array([[0.0, 1.0, 1.0]] * 4)},)),
    Case("cross_entropy", {"z": "f64[4, 5]", "k": "i64[4]"}, "cross_entropy(z, k)",
         "np.log(np.exp(z).sum(-1)) - z[np.arange(4), k]", f"{F}.cross_entropy(z, k, reduction='none')",
         {"k": "int:0:5"}),
    Case("stop_gradient", {"a": "f64[4]"}, "a * stop_gradient(a)", "a * a", "a * a.detach()",
         finite_differences=False),
    Case("mean_f32", {"a": "f32[64]"}, "mean(tanh(a) * 3)", "np.mean(np.tanh(a) * 3)", "torch.mean(torch.tanh(a) * 3)"),
]

BY_NAME = {c.name: c for c in CASES}
