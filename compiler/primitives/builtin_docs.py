"""What docs/builtins.md says of each built-in that the sources do not say themselves.

compiler/tools/builtin_reference.py builds docs/builtins.md from the @builtin registry
(builtin_functions.py): the signature from the parameter specs, the meaning and the
derivative from the lowering's docstring (first paragraph; a `Derivative:` paragraph) or
the primitive record's `doc` ("meaning; derivative ..."), and "none" for an integer result.
This module holds the rest, in one place: the groups (those of docs/language.md's table),
the names of multiple results, meanings and derivative conventions where the sources lack
them, and one example per built-in. It lives under primitives/ because it names built-ins
by their strings, which only primitives/ may (tests/test_architecture.py).
"""
from __future__ import annotations

# group -> the built-ins in it, in the order of docs/language.md's table
GROUPS: tuple[tuple[str, str], ...] = (
    ("elementwise", "exp log log1p expm1 sqrt abs sign sin cos tan tanh sigmoid relu softplus "
                    "maximum minimum where clip"),
    ("more elementwise math", "arcsin arccos arctan sinh cosh arcsinh arccosh arctanh log2 log10 exp2 cbrt square "
                              "reciprocal floor ceil round trunc arctan2 hypot mod fmod"),
    ("casts", "f16 f32 f64 i32 i64 bool"),
    ("convolution and pooling (NCHW)", "conv1d conv2d max_pool2d avg_pool2d"),
    ("special functions (scipy.special)", "erf erfc erfinv erfcx lgamma digamma polygamma xlogy xlog1py logit "
                                          "ndtr log_ndtr i0 i1 i0e i1e j0 j1"),
    ("scans and order", "cumsum cumprod logcumsumexp diff sort topk argsort argmax argmin flip roll pad tile repeat"),
    ("reductions", "sum prod max min logsumexp mean var std"),
    ("linear algebra", "einsum transpose trace diagonal outer tril triu kron tensordot norm solve inv det slogdet "
                       "logdet cholesky solve_triangular cho_solve eigh svd qr"),
    ("shapes", "reshape broadcast_to squeeze expand_dims concat stack take take_along_axis"),
    ("constructors", "zeros ones full eye zeros_like ones_like"),
    ("losses (unreduced, as PyTorch's reduction='none')", "softmax log_softmax bce_with_logits binary_cross_entropy "
                                                          "cross_entropy"),
    ("gradient control", "stop_gradient"),
)

# the names a call with several results is unpacked into
RESULTS = {"topk": "v, i", "slogdet": "sign, logabsdet", "eigh": "w, v", "svd": "u, s, vh", "qr": "q, r"}

_SMOOTH = "the closed form: "
_LINEAR = "linear, so its transpose: "
_CONSTANT = "none: a constant"

# name -> (meaning, derivative); None: what the sources say
NOTES: dict[str, tuple[str | None, str | None]] = {
    # elementwise
    "exp": ("e ** x (numpy.exp)", _SMOOTH + "exp(x)"),
    "log": ("the natural logarithm (numpy.log): -inf at 0, NaN below", _SMOOTH + "1 / x, inf at 0"),
    "log1p": (None, _SMOOTH + "1 / (1 + x)"),
    "expm1": (None, _SMOOTH + "exp(x)"),
    "sqrt": ("the square root (numpy.sqrt)", _SMOOTH + "1 / (2 sqrt(x)), inf at 0"),
    "abs": ("the absolute value (numpy.abs)", "sign(x); abs'(0) = 0 (PyTorch)"),
    "sign": ("-1, 0 or 1 (numpy.sign)", "0 everywhere, also at 0 (PyTorch)"),
    "sin": ("the sine (numpy.sin)", _SMOOTH + "cos(x)"),
    "cos": ("the cosine (numpy.cos)", _SMOOTH + "-sin(x)"),
    "tan": ("the tangent (numpy.tan)", _SMOOTH + "1 + tan(x)^2"),
    "tanh": ("the hyperbolic tangent (numpy.tanh), finite at +-800", _SMOOTH + "1 - tanh(x)^2"),
    "sigmoid": (None, "sigmoid(x) (1 - sigmoid(x))"),
    "relu": ("max(x, 0) (torch.relu)", "1 where x > 0, else 0; relu'(0) = 0 (PyTorch)"),
    "softplus": ("log(1 + exp(x)) as logaddexp(x, 0), so softplus(800) = 800 (torch.nn.functional.softplus)",
                 "sigmoid(x)"),
    "maximum": ("the larger of a and b, elementwise with broadcasting (numpy.maximum)",
                "to the larger side; at a tie, half to each (PyTorch), so maximum(a, 0) is not relu at 0"),
    "minimum": ("the smaller of a and b, elementwise with broadcasting (numpy.minimum)",
                "to the smaller side; at a tie, half to each (PyTorch)"),
    "where": ("a where cond is true, else b, with broadcasting (numpy.where)",
              "to a where cond holds, to b elsewhere; the branch not taken gets exactly 0, even where its own "
              "derivative is inf or NaN (where(x > 0, sqrt(x), 0) has gradient 0 at x <= 0)"),
    "clip": ("x limited to [lo, hi], with broadcasting (numpy.clip, torch.clamp); lo > hi gives hi",
             "to x on [lo, hi], bounds included (torch.clamp), to lo below it and to hi above it; the others get "
             "exactly 0"),
    # more elementwise math
    "sinh": ("the hyperbolic sine (numpy.sinh)", _SMOOTH + "cosh(x)"),
    "cosh": ("the hyperbolic cosine (numpy.cosh)", _SMOOTH + "sinh(x)"),
    "square": (None, "2 x"),
    "floor": ("the largest integer <= x (numpy.floor); integers unchanged",
              "0 everywhere, also at the jumps (PyTorch)"),
    "ceil": ("the smallest integer >= x (numpy.ceil); integers unchanged", "0 everywhere, also at the jumps (PyTorch)"),
    "round": ("x rounded to the nearest integer, halves to even (numpy.round, torch.round); integers unchanged",
              "0 everywhere, also at the jumps (PyTorch)"),
    "trunc": ("x rounded towards 0 (numpy.trunc); integers unchanged", "0 everywhere, also at the jumps (PyTorch)"),
    # casts
    "f16": (None, "a float-to-float cast passes the gradient back, converted to x's dtype; none from an integer x"),
    "f32": (None, "a float-to-float cast passes the gradient back, converted to x's dtype; none from an integer x"),
    "f64": (None, "a float-to-float cast passes the gradient back, converted to x's dtype; none from an integer x"),
    "i32": (None, "none: an integer result"),
    "i64": (None, "none: an integer result"),
    "bool": (None, "none: a bool result"),
    # convolution and pooling
    "conv1d": ("the cross-correlation of x [N, C, L] with w [O, C / groups, k], no bias "
               "(torch.nn.functional.conv1d); stride, padding (zeros) and dilation an int or [int]",
               "GEMMs with the same columns (to w) and each kernel position's slab added back (to x)"),
    "conv2d": ("the cross-correlation of x [N, C, H, W] with w [O, C / groups, kh, kw], no bias "
               "(torch.nn.functional.conv2d); stride, padding (zeros) and dilation an int or [int, int]",
               "GEMMs with the same columns (to w) and each kernel position's slab added back (to x)"),
    "max_pool2d": ("the maximum over k x k windows of the last two axes (torch.nn.functional.max_pool2d); "
                   "stride defaults to k",
                   "to each window's maximum; **decided:** ties in a window share it equally (PyTorch gives it all "
                   "to one element)"),
    "avg_pool2d": ("the mean over k x k windows of the last two axes (torch.nn.functional.avg_pool2d); "
                   "stride defaults to k", _LINEAR + "each window's cotangent spread evenly over the window"),
    # special functions
    "erfc": (None, _SMOOTH + "-2/sqrt(pi) exp(-x^2)"),
    "polygamma": (None, "polygamma(n + 1, x) in x (n a literal >= 0; polygamma(0, x) is digamma)"),
    # scans and order
    "cumsum": ("the running sum along axis (numpy.cumsum); without axis, 1-D x only; integers and bools sum to i64",
               _LINEAR + "the running sum of the cotangent from the end"),
    "cumprod": ("the running product along axis (numpy.cumprod); without axis, 1-D x only",
                "exact with zeros in the line, to every order (hvp too): a linear recurrence run from the end, no "
                "division"),
    "logcumsumexp": ("log(cumsum(exp(x))) along axis (torch.logcumsumexp), logaddexp accumulated: no overflow or "
                     "underflow at any magnitude; without axis, 1-D x only",
                     "exp(x_i - out_i) s_i with s_i = g_i + exp(out_i - out_(i+1)) s_(i+1), every factor at most 1; "
                     "0 along an all -inf prefix"),
    "diff": ("the n-th forward difference along axis (numpy.diff)", _LINEAR + "differences of the cotangent"),
    "sort": ("x sorted along axis, stably (numpy.sort(kind='stable')); descending=true sorts -x, ties kept in order",
             "each value's gradient goes back to the element it came from, tied elements by their stable order"),
    "argmax": ("the index of the first largest value along axis (numpy.argmax); without axis, into the flattened "
               "array; i64", None),
    "argmin": ("the index of the first smallest value along axis (numpy.argmin); without axis, into the flattened "
               "array; i64", None),
    "flip": ("x reversed along axis, every axis by default (numpy.flip)", _LINEAR + "the cotangent flipped back"),
    "roll": ("x shifted cyclically by shift along axis (numpy.roll, any shift); without axis, the flattened array",
             _LINEAR + "the cotangent rolled back"),
    # reductions
    "sum": ("the sum over axis, every axis by default (numpy.sum); integers and bools sum to i64",
            _LINEAR + "the cotangent broadcast back"),
    "prod": ("the product over axis, every axis by default (numpy.prod)",
             "exact with zeros in the slice (the product of the others); its second derivatives (hvp) are not yet "
             "exact where a slice holds a zero"),
    "max": ("the largest value over axis, every axis by default (numpy.max)",
            "ties share the gradient equally (torch.amax)"),
    "min": ("the smallest value over axis, every axis by default (numpy.min)",
            "ties share the gradient equally (torch.amin)"),
    "logsumexp": ("log(sum(exp(x))) over axis, max-shifted (scipy.special.logsumexp)",
                  "softmax(x) over those axes; over entries that are all -inf, value -inf and gradient 0"),
    "mean": ("the mean over axis, every axis by default (numpy.mean); integers as f64",
             _LINEAR + "the cotangent / count, broadcast back"),
    "var": ("the variance over axis, dividing by count - ddof (numpy.var; ddof=0, the population variance)",
            "2 (x - mean) / (count - ddof) times the cotangent"),
    "std": ("sqrt(var(x, axis, keepdims, ddof)) (numpy.std)",
            "that of sqrt(var), and 0 where the slice is constant (std 0), as torch.std's"),
    # linear algebra
    "einsum": ("numpy.einsum: explicit or implicit spec, `...`, size-1 axes broadcast; the spec is validated",
               "einsums of the cotangent with the other operands"),
    "transpose": ("the axes permuted (numpy.transpose); reversed by default, as x.T", _LINEAR +
                  "the inverse permutation"),
    "diagonal": (None, _LINEAR + "the cotangent on the diagonal, zeros elsewhere"),
    "trace": ("the sum of the diagonal of axes 0 and 1 (numpy.trace)", _LINEAR + "the cotangent times the identity"),
    "outer": ("a[:, None] * b of 1-D a and b (numpy.outer)", "the cotangent @ b to a, a @ the cotangent to b"),
    "tril": ("the lower triangle of the last two axes, diagonal k and below, zeros elsewhere (numpy.tril, batched)",
             _LINEAR + "the cotangent's lower triangle"),
    "triu": ("the upper triangle of the last two axes, diagonal k and above, zeros elsewhere (numpy.triu, batched)",
             _LINEAR + "the cotangent's upper triangle"),
    "solve": ("x with a x = b (numpy.linalg.solve, batched): a 1-D b is one vector, b of rank 2 or more a stack of "
              "matrices [..., n, k]",
              "solves with a^T, never an inverse; NumPy's LinAlgError at an exactly singular a"),
    "inv": ("the inverse of [..., n, n] (numpy.linalg.inv)",
            "-inv(a)^T g inv(a)^T; NumPy's LinAlgError at an exactly singular a"),
    "det": ("the determinant of [..., n, n] (numpy.linalg.det)",
            "det(a) inv(a)^T; at an exactly singular a NumPy's LinAlgError (PyTorch goes through an SVD there)"),
    "cholesky": ("the lower Cholesky factor of a symmetric positive definite [..., n, n] "
                 "(numpy.linalg.cholesky); LinAlgError otherwise",
                 "**decided:** that of cholesky((a + a^T) / 2), PyTorch's convention: the gradient is symmetric "
                 "(Murray 2016)"),
    "solve_triangular": (None, "triangular solves; the triangle not read gets no gradient"),
    # shapes
    "reshape": ("numpy.reshape; one -1 allowed, sizes may be symbols", _LINEAR + "reshaped back"),
    "broadcast_to": ("numpy.broadcast_to", _LINEAR + "the cotangent summed over the broadcast axes"),
    "squeeze": ("axes of size 1 removed (numpy.squeeze); without axis, every axis of literal size 1",
                _LINEAR + "reshaped back"),
    "expand_dims": ("new axes of size 1 at axis (numpy.expand_dims)", _LINEAR + "reshaped back"),
    "concat": ("a list of arrays joined along axis (numpy.concatenate)", _LINEAR + "the cotangent cut back into parts"),
    "stack": ("a list of arrays of one shape stacked along a new axis (numpy.stack)",
              _LINEAR + "the cotangent's slices"),
    "take": (None, "the cotangent added back at the indices (repeated indices accumulate); none to idx"),
    "take_along_axis": ("numpy.take_along_axis: x[..., idx[i], ...] along axis",
                        "the cotangent added back at the indices (repeated indices accumulate); none to idx"),
    # constructors
    "zeros": ("an array of zeros of shape; without dtype= weak (it takes the dtype it meets)", _CONSTANT),
    "ones": ("an array of ones of shape; without dtype= weak", _CONSTANT),
    "full": ("an array of shape filled with the scalar value (numpy.full); a literal value without dtype= is weak",
             "the cotangent's sum to value"),
    "eye": ("the n x n identity (numpy.eye); without dtype= weak", _CONSTANT),
    "zeros_like": ("zeros of x's shape and dtype (or dtype=)", "none: x is read for its shape only"),
    "ones_like": ("ones of x's shape and dtype (or dtype=)", "none: x is read for its shape only"),
    # losses
    "softmax": ("exp(x - max) / sum along axis (torch.softmax)", "s (g - sum(g s)) along the axis, s the softmax"),
    "log_softmax": ("x - logsumexp(x) along axis (torch.log_softmax)", "g - softmax(x) sum(g) along the axis"),
    "bce_with_logits": ("the binary cross-entropy of logits z and targets y, max(z, 0) - z y + log1p(exp(-|z|)) "
                        "(torch.nn.functional.binary_cross_entropy_with_logits), no overflow at +-1000",
                        "sigmoid(z) - y in the logits, -z in the targets"),
    "binary_cross_entropy": ("-(y log p + (1 - y) log(1 - p)) of probabilities p and targets y, each log clamped "
                             "at -100 "
                             "(torch.nn.functional.binary_cross_entropy); p is not checked to lie in [0, 1]",
                             "PyTorch's (p - y) / max(p (1 - p), 1e-12) in p; log(1 - p) - log(p), clamped, in y"),
    "cross_entropy": ("logsumexp(logits) - logits[label] over the last axis "
                      "(torch.nn.functional.cross_entropy); integer labels of the logits' shape without the class "
                      "axis, checked at run time to lie in [0, C)",
                      "softmax(logits) - onehot(labels) in the logits; none in the labels"),
    # gradient control
    "stop_gradient": (None, "0: a constant to every derivative (x.detach())"),
}

# name -> (parameters, body) of the example `fn f(PARAMETERS) { BODY }`; a built-in whose required
# parameters are all tensors may have none: then its example is NAME(p, ...) of f64[N] parameters
EXAMPLES: dict[str, tuple[str, str]] = {
    "where": ("x: f64[N]", "return where(x > 0, sqrt(x), 0)"),
    "clip": ("x: f64[N]", "return clip(x, -0.5, 0.5)"),
    "maximum": ("x: f64[N, 3], b: f64[3]", "return maximum(x, b)"),
    "arctan2": ("p: f64[N, 2]", "return arctan2(p[:, 1], p[:, 0])"),
    "mod": ("a: f64[N], b: f64[N]", "return mod(a, b) + a % 2"),
    "f16": ("x: f32[N]", "return f32(f16(x))"),
    "f32": ("x: f64[N]", "return f32(x) * 2"),
    "f64": ("x: f32[N]", "return f64(x) * 2"),
    "i32": ("x: f64[N]", "return i32(x > 0)"),
    "i64": ("x: f64[N]", "return x * f64(i64(x))"),
    "bool": ("k: i64[N]", "return bool(k)"),
    "conv1d": ("x: f32[N, 3, 32], w: f32[8, 3, 5]", "return conv1d(x, w, stride=2, padding=2)"),
    "conv2d": ("x: f32[N, 4, 28, 28], w: f32[6, 2, 3, 3]", "return relu(conv2d(x, w, padding=1, groups=2))"),
    "max_pool2d": ("x: f32[N, 3, 8, 8]", "return max_pool2d(x, 2)"),
    "avg_pool2d": ("x: f32[N, 3, 8, 8]", "return avg_pool2d(x, [2, 4], stride=[2, 1])"),
    "polygamma": ("x: f64[N]", "return polygamma(1, x)"),
    "xlogy": ("y: f64[N], p: f64[N]", "return sum(xlogy(y, p) + xlogy(1 - y, 1 - p))"),
    "cumsum": ("x: f64[N, 4]", "return cumsum(x, axis=1)"),
    "cumprod": ("x: f64[N]", "return cumprod(x)"),
    "logcumsumexp": ("x: f64[N, 4]", "return logcumsumexp(x, axis=1)"),
    "diff": ("x: f64[N, 5]", "return diff(x, n=2, axis=1)"),
    "sort": ("x: f64[N, 4]", "return sort(x, axis=0, descending=true)"),
    "topk": ("scores: f64[N]", "v, i = topk(scores, 5); return sum(v)"),
    "argsort": ("x: f64[N]", "return take(x, argsort(x))"),
    "argmax": ("x: f64[N, 10]", "return argmax(x, axis=1)"),
    "argmin": ("x: f64[N, 10]", "return argmin(x)"),
    "flip": ("x: f64[N, 4]", "return flip(x, axis=0)"),
    "roll": ("x: f64[N, 4]", "return roll(x, -1, axis=1)"),
    "pad": ("x: f64[N, 3]", "return pad(x, [[1, 0], [2, 2]], value=0.5)"),
    "tile": ("x: f64[2, 3]", "return tile(x, [2, 1, 2])"),
    "repeat": ("x: f64[N, 3]", "return repeat(x, 3, axis=1)"),
    "sum": ("x: f64[N, 4, 2]", "return sum(x, axis=[0, 2])"),
    "prod": ("x: f64[N, 3]", "return prod(x, axis=1)"),
    "max": ("x: f64[N, 4]", "return max(x, axis=1, keepdims=true)"),
    "min": ("x: f64[N, 4]", "return min(x)"),
    "logsumexp": ("x: f64[N, 4]", "return logsumexp(x, axis=1)"),
    "mean": ("x: f64[N, 4]", "return mean(x, axis=0)"),
    "var": ("x: f64[N, 4]", "return var(x, axis=1)"),
    "std": ("x: f64[N]", "return std(x, ddof=1)"),
    "einsum": ("a: f64[B, N, M], v: f64[B, M]", 'return einsum("bij,bj->bi", a, v)'),
    "transpose": ("x: f64[2, 3, 4]", "return transpose(x, [1, 2, 0])"),
    "trace": ("a: f64[N, N]", "return trace(a)"),
    "diagonal": ("a: f64[N, N]", "return diagonal(a)"),
    "tril": ("a: f64[N, N]", "return tril(a, k=-1)"),
    "triu": ("a: f64[N, N]", "return triu(a)"),
    "kron": ("a: f64[2, 3], b: f64[3]", "return kron(a, b)"),
    "tensordot": ("a: f64[2, 3, 4], b: f64[4, 3, 2]", "return tensordot(a, b, [[1, 2], [1, 0]])"),
    "norm": ("x: f64[N, 3]", "return norm(x, axis=1) + norm(x, 2)"),
    "solve": ("a: f64[N, N], b: f64[N]", "return solve(a, b)"),
    "inv": ("a: f64[3, 3]", "return inv(a + 4 * eye(3))"),
    "det": ("a: f64[B, 3, 3]", "return det(a)"),
    "slogdet": ("a: f64[N, N]", "sign, logabsdet = slogdet(a); return sign * logabsdet"),
    "logdet": ("a: f64[N, N]", "return logdet(a @ a.T + eye(N))"),
    "cholesky": ("a: f64[N, N]", "return cholesky(a @ a.T + eye(N))"),
    "solve_triangular": ("l: f64[N, N], b: f64[N, 2]", "return solve_triangular(l, b, lower=true)"),
    "cho_solve": ("a: f64[N, N], b: f64[N]", "return cho_solve(cholesky(a), b)"),
    "eigh": ("a: f64[N, N]", "w, v = eigh((a + a.T) / 2); return w"),
    "svd": ("a: f64[B, 4, 3]", "u, s, vh = svd(a); return s"),
    "qr": ("a: f64[5, 3]", "q, r = qr(a); return abs(r)"),
    "reshape": ("x: f64[N, 6]", "return reshape(x, [-1, 3])"),
    "broadcast_to": ("x: f64[N, 1]", "return broadcast_to(x, [2, N, 4])"),
    "squeeze": ("x: f64[N, 1, 2]", "return squeeze(x, 1)"),
    "expand_dims": ("x: f64[N, 2]", "return expand_dims(x, 1)"),
    "concat": ("a: f64[N, 3], b: f64[M, 3]", "return concat([a, b * 2], axis=0)"),
    "stack": ("a: f64[N], b: f64[N]", "return stack([a, b], axis=1)"),
    "take": ("x: f64[N, 3], idx: i64[K]", "return take(x, idx, axis=0)"),
    "take_along_axis": ("x: f64[N, 4], idx: i64[N, 2]", "return take_along_axis(x, idx, 1)"),
    "zeros": ("x: f64[N, 3]", "return x + zeros([N, 3])"),
    "ones": ("x: f64[N]", "return x * ones([N], dtype=f32)"),
    "full": ("x: f64[N]", "return x + full([N], 0.5)"),
    "eye": ("a: f64[3, 3]", "return a * eye(3)"),
    "zeros_like": ("x: f64[N, 2]", "return zeros_like(x, dtype=i64)"),
    "ones_like": ("x: f64[N, 2]", "return x - ones_like(x)"),
    "softmax": ("x: f64[N, 10]", "return softmax(x)"),
    "log_softmax": ("x: f64[N, 10]", "return log_softmax(x, axis=-1)"),
    "bce_with_logits": ("z: f32[N, 3], y: f32[N, 3]", "return mean(bce_with_logits(z, y))"),
    "binary_cross_entropy": ("p: f64[N], y: f64[N]", "return sum(binary_cross_entropy(p, y))"),
    "cross_entropy": ("logits: f32[N, 10], labels: i64[N]", "return mean(cross_entropy(logits, labels))"),
    "stop_gradient": ("x: f64[N]", "return x * stop_gradient(x)"),
}

# the operators: (syntax, meaning, derivative, example parameters, example body)
OPERATORS: tuple[tuple[str, str, str, str, str], ...] = (
    ("a + b, a - b", "add, subtract, with broadcasting and NumPy 2 promotion", "1 and +-1, summed over broadcast "
     "axes", "a: f64[N, 3], b: f64[3]", "return a + b - 1"),
    ("a * b", "multiply", "b and a", "a: f64[N], b: f64[N]", "return a * b"),
    ("a / b", "true division; integers are divided as f64", "1 / b and -a / b^2", "a: f64[N], b: f64[N]",
     "return a / b"),
    ("a % b", "mod(a, b): the remainder with the sign of b", "1 and -floor(a / b)", "a: f64[N]", "return a % 1.5"),
    ("a ** b", "power (right-associative; -x**2 is -(x**2))",
     "in a, 0 where b == 0 (x ** 0.0 has gradient 0 at 0); in b, 0 where a == 0 and b >= 0", "x: f64[N]",
     "return x ** 3 + x ** 0.5"),
    ("a @ b", "numpy.matmul: 1-D operands, batch broadcasting", "g @ b^T and a^T @ g", "a: f64[N, 4], b: f64[4, 2]",
     "return a @ b"),
    ("-a, +a", "negation, identity", "-1, 1", "a: f64[N]", "return -a"),
    ("a == b, a != b, a < b, a <= b, a > b, a >= b", "comparisons (not chainable), bool results",
     "none: a bool result", "a: f64[N]", "return where(a > 0, a, 0)"),
    ("x[...]", "indexing with constant ints, slices, `...` and None (no index arrays: see take)",
     "the cotangent placed back, zeros elsewhere", "x: f64[N, 5]", "return x[1:, ::-2] + x[-1, None, :3]"),
    ("x.T", "every axis reversed (numpy's .T)", "transposed back", "x: f64[N, 3]", "return x.T @ x"),
)
