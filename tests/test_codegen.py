"""Generated modules: standalone, deterministic, readable, checked and safe (docs/language.md, "Generated modules")."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corpus import PROGRAMS
from tapeless.compiler import compile_source

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_compiled_twice_is_byte_identical_and_standalone(path):
    text = path.read_text()
    a = compile_source(text, path=path.name)
    b = compile_source(text, path=path.name)
    assert a == b
    tree = ast.parse(a)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "numpy" in imported
    assert all(m == "numpy" or m.split(".")[0] in sys.stdlib_module_names for m in imported), imported


def test_identical_across_processes_and_hash_seeds():
    """No set or dict ordering may leak into the output."""
    code = ("import sys; from tapeless.compiler import compile_file; "
            "sys.stdout.write(compile_file(sys.argv[1]))")
    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests/cases/shapes.tl")],
                           capture_output=True, text=True, env=env, check=True)
        outs.add(r.stdout)
    assert len(outs) == 1


def test_readable_source_names_line_comments_and_docstrings(tl):
    src = "fn layer(x: f32[N, 5], w: f32[5, 3]) -> f32 {\n    z = x @ w\n    return sum(tanh(z))\n}\n"
    text = compile_source(src, path="layer.tl", opt_level=0)  # -O1 and up fuse tanh and sum in a loop
    assert "    z = x @ w  # layer.tl:2\n" in text
    assert '"""layer(x: f32[N, 5], w: f32[5, 3]) -> f32' in text
    assert "return np.sum(np.tanh(z))  # layer.tl:3" in text


def test_names_that_clash_with_python_are_renamed(tl):
    m = tl("fn lambda(sum: f64[2], np: f64, type: f64) -> f64 {\n"
           "    class = sum * np + type\n    return max(class)\n}\ngrad lambda wrt sum, np, type\n")
    assert m.lambda_(np.array([1.0, 2.0]), 3.0, 1.0) == 7.0
    value, d_sum, d_np, d_type = m.lambda_grad(np.array([1.0, 2.0]), 3.0, 1.0)
    assert (d_sum.tolist(), d_np, d_type) == ([0.0, 3.0], 2.0, 1.0)
    assert "the source name `lambda`, renamed" in m.__doc__


@pytest.mark.parametrize("opt_level", [0, 1, 2])
@pytest.mark.parametrize("classes, bad", [(10, -1), (10, 10), (300, -1), (300, 300), (300, -301)])
def test_cross_entropy_labels_out_of_range_raise_in_every_function(tl, opt_level, classes, bad):
    """A label outside [0, C) is an error in the loss, its gradient and _fwd, however the
    loss is spelled (the helper at -O0, primitives sharing exp(z - max) at -O1), never a
    silently wrong value (a negative index would pick from the end, or wrap on CuPy): the
    gather and the scatter of -O1 check them as the helper of -O0 does."""
    m = tl(f"fn f(z: f32[N, {classes}], k: i64[N]) -> f32 {{ return mean(cross_entropy(z, k)) }}\n"
           "grad f wrt z\n", opt_level=opt_level)
    z = np.zeros((3000, classes), np.float32)
    k = np.arange(3000) % classes
    k[1234] = bad
    for fn in (m.f, m.f_grad, m.f_grad_fwd):  # the message names the function and the argument
        with pytest.raises(ValueError, match=rf"^{fn.__name__}\(\): argument `k`: the labels of cross_entropy "
                                             rf"must lie in \[0, {classes}\), got values from"):
            fn(z, k)
    k[1234] = classes - 1
    np.testing.assert_allclose(m.f(z, k), np.log(classes), rtol=1e-6)


@pytest.mark.parametrize("classes", [1, 10, 257, 1000])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5)])
def test_the_label_scatter_is_right_for_any_label_shape(tl, classes, shape):
    """cross_entropy's gradient p - onehot(label), a scatter of -1 into a copy of p, a given
    buffer or p itself, against the one-hot mask it replaces; and its loss, a gather."""
    dims = [f"D{i}" for i in range(len(shape))]
    k_type = f"i64[{', '.join(dims)}]" if dims else "i64"
    m = tl(f"fn f(z: f32[{', '.join(dims + ['C'])}], k: {k_type}) -> f32 {{ return sum(cross_entropy(z, k)) }}\n"
           "grad f wrt z\n")
    rng = np.random.default_rng(0)
    k = rng.integers(0, classes, shape)
    z = rng.standard_normal(shape + (classes,)).astype(np.float32)
    hot = k[..., None] == np.arange(classes)
    want = z - hot
    # (over 1-D labels a fused loop indexes with its rows in place, without the helper)
    sub_label = getattr(m, "_sub_label", None) or tl("fn f(z: f32[2, 3, C], k: i64[2, 3]) -> f32 "
                                                     "{ return sum(cross_entropy(z, k)) }\ngrad f wrt z\n")._sub_label
    np.testing.assert_array_equal(sub_label(z, k), want)
    buf = np.full_like(z, np.nan)
    assert sub_label(z, k, out=buf) is buf
    np.testing.assert_array_equal(buf, want)
    own = z.copy()
    assert sub_label(own, k, inplace=True) is own
    np.testing.assert_array_equal(own, want)
    np.testing.assert_array_equal(sub_label(z, k), want)  # z itself untouched
    if len(shape) == 1:  # the helper with the rows given, as a fused loop might call it
        buf = np.full_like(z, np.nan)
        np.testing.assert_array_equal(sub_label(z, k, out=buf, rows=np.arange(shape[0])), want)
    z64 = z.astype(np.float64)
    lse = np.log(np.sum(np.exp(z64), axis=-1))
    np.testing.assert_allclose(m.f(z, k), np.sum(lse - np.sum(np.where(hot, z64, 0), axis=-1)), rtol=1e-5, atol=1e-6)
    p = np.exp(z64 - lse[..., None])
    np.testing.assert_allclose(m.f_grad(z, k)[1], p - hot, rtol=1e-5, atol=1e-6)


def test_cross_entropy_of_infinite_logits_is_the_same_at_every_level(tl):
    """A masked class (-inf) costs nothing, an infinite wrong class makes the loss infinite
    (not inf - inf = nan), and the helpers (-O0) and the shared primitive form (-O1, -O2)
    agree value for value, nan for nan."""
    src = "fn f(z: f32[N, 3], k: i64[N]) -> f32 { return sum(cross_entropy(z, k)) }\ngrad f wrt z\n"
    inf, nan = np.inf, np.nan
    z = np.array([[-inf, 0, 0], [inf, 0, 0], [inf, 0, 0], [-inf, -inf, -inf], [nan, 0, 0], [1e4, -1e4, 0]],
                 np.float32)
    k = np.array([1, 1, 0, 0, 1, 1])
    rows = [tl(src, opt_level=level) for level in (0, 1, 2)]
    values = [[float(m.f(z[r:r + 1], k[r:r + 1])) for r in range(len(k))] for m in rows]
    assert values[0][0] == np.float32(np.log(2)) and values[0][1] == inf and np.isnan(values[0][2])
    assert values[0][5] == 2e4
    for m, v in zip(rows[1:], values[1:]):
        np.testing.assert_array_equal(v, values[0])
        np.testing.assert_array_equal(m.f_grad(z, k)[1], rows[0].f_grad(z, k)[1])


def test_infinite_logits_in_some_blocks_of_a_fused_loop_match_the_helpers(tl):
    """In a fused loop the shift takes its fast path (the row maxima are all finite) in most
    blocks and the full guard in the blocks holding an infinite or NaN row: the values and
    gradients equal the helpers' (-O0), nan for nan, and the finite rows' are unchanged."""
    src = ("fn f(z: f32[N, C], k: i64[N]) -> f32 { return sum(cross_entropy(z, k)) }\n"
           "fn g(z: f32[N, C]) -> f32[N, C] { return softmax(z, 1) * 2 }\ngrad f wrt z\n")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((512, 300)).astype(np.float32)
    k = rng.integers(0, 300, 512)
    z[7, :] = -np.inf
    z[100, 5] = np.inf
    z[301, 2] = np.nan
    z[400] = 3e38  # finite maxima whose sum overflows: the full guard, same values
    fused, plain = tl(src), tl(src, opt_level=0)
    assert "_finite_or_zero(" in Path(fused.__file__).read_text()
    np.testing.assert_array_equal(fused.f(z, k), plain.f(z, k))
    np.testing.assert_array_equal(fused.f_grad(z, k)[1], plain.f_grad(z, k)[1])
    np.testing.assert_array_equal(fused.g(z), plain.g(z))
    finite = np.isfinite(z).all(axis=1)
    zf = z[finite].astype(np.float64)
    m = zf.max(1, keepdims=True)
    want = np.log(np.exp(zf - m).sum(1)) - (zf[np.arange(len(zf)), k[finite]] - m[:, 0])
    np.testing.assert_allclose(fused.f(z[finite], k[finite]), want.sum(), rtol=1e-5)


def test_parameters_named_like_the_fused_loops_own_variables_are_not_shadowed(tl):
    """A fused loop is a nested function with its own names (lo, hi, i, j, rows, s0, b0, acc);
    the function's parameters it reads (here a bias `b2` among scratch blocks b0..b4, and `j`,
    `lo`, `acc`, and `p`, once the name of a max's partial) keep their meaning inside it."""
    src = """
    fn f(j: f32[N, 10], labels: i64[N], b2: f32[10], lo: f32[10], acc: f32[10], p: f32[10]) -> f32 {
        return mean(cross_entropy(j * lo + b2 - acc, labels)) + max(j * p) + max(j - p)
    }
    grad f wrt b2, lo, acc, p
    """
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((4096, 10)).astype(np.float32), rng.integers(0, 10, 4096),
            *rng.standard_normal((4, 10)).astype(np.float32))
    fused, plain = tl(src), tl(src, opt_level=0)
    assert "def _fused" in Path(fused.__file__).read_text()
    for got, want in zip(fused.f_grad(*args), plain.f_grad(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_names_of_the_modules_own_globals_are_renamed(tl):
    """A .tl name never takes a name the generated module defines or imports (the fused loops'
    tunables, thread pool, imported modules, metadata, module dunders such as __builtins__):
    as a parameter it would be passed
    where _blocks' argument goes, as a function it would replace the global every loop reads."""
    from util import force_tiny_blocks

    m = tl("fn f(x: f32[N, 64], _CHEAP_BLOCKS: f32, os: f32, contextvars: f32) -> f32 {\n"
           "    return sum(x * _CHEAP_BLOCKS + x * x * os - contextvars)\n}\n"
           "fn _BLOCK_BYTES(x: f32[N, 64]) -> f32 { return sum(x * x) }\n"
           "fn __tapeless__(x: f32[N, 64]) -> f32 { return sum(x) }\n"
           "fn __builtins__(x: f32[N, 64]) -> f32 { return sum(x) }\n"
           "fn __getattr__(x: f32[N, 64]) -> f32 { return sum(x) }\n"
           "grad f wrt x\n")
    force_tiny_blocks(m, block_bytes=4096, threads=2)
    x = np.ones((300, 64), np.float32)
    assert m.f(x, 3.0, 2.0, 1.0) == m.f_grad(x, 3.0, 2.0, 1.0)[0] == 300 * 64 * 4
    assert m._BLOCK_BYTES_(x) == 300 * 64 and m._BLOCK_BYTES == 4096
    assert m.__tapeless___(x) == 300 * 64 and isinstance(m.__tapeless__, dict)
    assert m.__builtins___(x) == m.__getattr___(x) == 300 * 64  # module dunders keep their meaning
    with pytest.raises(AttributeError):
        m.no_such_function


def test_parameters_named_out_or_seed_are_renamed_in_the_signature(tl):
    m = tl("fn f(out: f64[2], seed: f64) -> f64 { return sum(out) * seed }\ngrad f wrt out\n")
    buf = np.zeros(2)
    value, d = m.f_grad(np.ones(2), 3.0, out=buf)
    assert d is buf and buf.tolist() == [3.0, 3.0]
    _, res = m.f_grad_fwd(np.ones(2), 3.0)
    assert m.f_grad_bwd(res, seed=2.0)[0].tolist() == [6.0, 6.0]


@pytest.mark.parametrize("payload", [
    "fn f(x: f64) -> f64 {\n    return x # \"\"\"; import os; os.system('echo pwned')\n}\n",
    "fn f(x: f64) -> f64 {\n    return x  # \\\n}\n",
    "fn f(x: f64) -> f64 {\r    return x  # \x0b\x0c\x1b[31m \u2028 import os\n}\n",
])
def test_nothing_in_a_tl_file_injects_code(payload, tmp_path, tl):
    m = tl(payload, path='evil"""\n\x00import os.tl')
    assert m.f(2.0) == 2.0
    text = compile_source(payload, path='evil"""\n\x00import os.tl')
    ast.parse(text)
    code_lines = [line for line in text.splitlines() if "import" in line and not line.lstrip().startswith("#")]
    assert all(line.startswith("import numpy") or "__tapeless_source__" in line or '"""' in line
               or line.startswith("    ") for line in code_lines)
    tree = ast.parse(text)
    assert [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))].__len__() == 1


def test_einsum_spec_is_validated_not_pasted(tmp_path):
    from tapeless.compiler import CompileError

    with pytest.raises(CompileError, match="einsum spec has the character"):
        compile_source('fn f(a: f64[2]) -> f64 {\n    return einsum("i\') + __import__(\'os\') + (\'", a)\n}\n')


def test_argument_checks(tl):
    m = tl("fn f(x: f32[N, 3], k: i64[N], s: f64) -> f32 {\n    return sum(x) + f32(sum(k)) + f32(s)\n}\n")
    x = np.ones((2, 3), np.float32)
    k = np.arange(2)
    assert m.f(x, k, 1.0) == 8.0
    assert m.f(x.tolist(), [0, 1], 1) == 8.0                     # array-likes convert (same_kind)
    assert m.f(x.astype(np.float64), k, np.float32(1)) == 8.0      # f64 -> f32 is same_kind
    with pytest.raises(TypeError, match=r"f\(\): argument `k` must be i64\[N\]: cannot convert float64 to int64"):
        m.f(x, k.astype(float), 1.0)
    with pytest.raises(ValueError, match=r"argument `k` must be i64\[N\], i.e. shape \(2,\) with N = 2 "
                                         r"\(from argument `x`\); got shape \(3,\)"):
        m.f(x, np.arange(3), 1.0)
    with pytest.raises(ValueError, match=r"argument `x` must be f32\[N, 3\] \(2-D\)"):
        m.f(np.ones(3, np.float32), k, 1.0)
    with pytest.raises(ValueError, match="argument `s` must be a scalar"):
        m.f(x, k, np.ones(2))
    with pytest.raises(TypeError, match="argument `s` must be f64"):
        m.f(x, k, "one")


def test_integer_arguments_that_do_not_fit_are_errors_not_wrapped(tl):
    """same_kind casting lets int64 become int32; values outside int32 must not wrap around."""
    m = tl("fn f(x: f64, k: i32, j: i32[N]) -> f64 { return x * f64(k) + sum(f64(j)) }\n")
    assert m.f(2.0, 5, np.array([1, 2])) == 13.0
    with pytest.raises(ValueError, match=r"f\(\): argument `k` must be i32: values from 1099511627776 to "
                                         r"1099511627776 do not fit int32"):
        m.f(2.0, 2 ** 40, np.array([1]))
    with pytest.raises(ValueError, match=r"argument `j` must be i32\[N\]: values from -2147483649 to 1 do not fit"):
        m.f(2.0, 1, np.array([1, -2 ** 31 - 1]))


def test_a_bwd_checks_cotangents_against_the_forward_sizes(tl):
    """A size only the cotangent shows (no residual array has it) travels in the residuals, so
    a wrong-sized cotangent is an error, not a gradient of the cotangent's size."""
    m = tl("fn two(x: f32[N]) -> f32[N] { return 2 * x }\nvjp two wrt x\n")
    y, res = m.two_vjp_fwd(np.ones(4, np.float32))
    assert m.two_vjp_bwd(res, np.ones(4, np.float32))[0].tolist() == [2.0] * 4
    with pytest.raises(ValueError, match=r"argument `ct0` must be f32\[N\], i.e. shape \(4,\) with N = 4 "
                                         r"\(from the residuals\); got shape \(5,\)"):
        m.two_vjp_bwd(res, np.ones(5, np.float32))


UNCHECKED = """
fn f(x: f64, y: f64[N], w: f32, k: i64) -> f64 {
    return sum(x * y) + f64(w) * f64(k)
}
grad f wrt x, y
fn h(a: f32[N], s: f32) -> f32[N] {
    return exp(a) * s
}
vjp h wrt a, s
"""


def test_unchecked_modules_take_python_numbers_and_lists_as_checked_ones_do(tl):
    """--no-checks leaves the validation out, not the conversion: a Python float or int for a
    scalar, a list for an array, the default `seed=1.0` of a _bwd, give what the checked module
    gives, dtype included (they used to fail with "'float' object has no attribute 'astype'")."""
    checked, unchecked = tl(UNCHECKED), tl(UNCHECKED, checks=False)
    calls = [("f", (2.0, [1.0, 2.0], 3, 4)), ("f_grad", (2, [1, 2], 3.0, 4)), ("f_grad_fwd", (2.0, [1.0, 2.0], 3.0, 4)),
             ("h", ([0.5, 1.0], 2)), ("h_vjp", ([0.5, 1.0], 2.0, [1.0, 1.0]))]
    for name, args in calls:
        want, got = getattr(checked, name)(*args), getattr(unchecked, name)(*args)
        for w, g in zip(np.atleast_1d(want) if name == "f" else want, np.atleast_1d(got) if name == "f" else got,
                        strict=True):
            if isinstance(w, tuple):  # _fwd's residuals
                assert all(type(a) is type(b) and np.array_equal(a, b) for a, b in zip(w, g, strict=True)), name
                continue
            assert type(g) is type(w) and np.asarray(g).dtype == np.asarray(w).dtype, name
            np.testing.assert_array_equal(g, w, err_msg=name)
    _, res = unchecked.f_grad_fwd(2.0, [1.0, 2.0], 3.0, 4)
    d_x, d_y = unchecked.f_grad_bwd(res)  # seed = 1.0, a Python float
    assert d_x == 3.0 and d_y.tolist() == [2.0, 2.0]
    assert unchecked.f_grad_bwd(res, seed=2)[0] == 6.0
    x = np.float64(2.0)
    assert unchecked.f(x, np.ones(2), np.float32(3), np.int64(4)) == 16.0  # declared types: used as they are


def test_a_list_of_out_buffers_works_as_a_tuple_and_a_wrong_count_says_what_is_needed(tl):
    """out=[g_x, g_y] used to be read as one buffer ("got 1")."""
    for checks in (True, False):
        m = tl(UNCHECKED, checks=checks)
        g_x, g_y = np.zeros(()), np.zeros(2)
        value, r_x, r_y = m.f_grad(2.0, np.array([1.0, 2.0]), 3.0, 4, out=[g_x, g_y])
        assert r_x is g_x and r_y is g_y and g_y.tolist() == [2.0, 2.0] and float(g_x) == 3.0
        _, res = m.f_grad_fwd(2.0, np.array([1.0, 2.0]), 3.0, 4)
        assert m.f_grad_bwd(res, out=[g_x, g_y])[1] is g_y and g_y.tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match=r"^f_grad\(\): out= needs a tuple of 2 arrays, one per wrt name \(`x`, `y`\); "
                                         r"got a list of 1$"):
        m = tl(UNCHECKED)
        m.f_grad(2.0, np.ones(2), 3.0, 4, out=[np.zeros(2)])
    with pytest.raises(ValueError, match=r"^f_grad\(\): out= needs a tuple of 2 arrays, .*; got one array$"):
        m.f_grad(2.0, np.ones(2), 3.0, 4, out=np.zeros(2))


def test_a_bwd_checks_its_residuals_against_what_its_fwd_returns(tl):
    """Residuals are never converted: each must have the dtype, rank and shape _fwd gave it, its
    size symbols bound consistently with the other residuals and the cotangents."""
    m = tl("fn f(x: f32[N], y: f32[N], s: f32) -> f32[N] { return x * y * s }\nvjp f wrt x, y\n")
    assert m.__tapeless__["f_vjp_bwd"]["inputs"] == (("residual", "x"), ("residual", "y"), ("residual", "s"),
                                                     ("cotangent", "ct0"))
    x, y, ct = np.arange(3, dtype=np.float32), np.ones(3, np.float32), np.ones(3, np.float32)
    _, res = m.f_vjp_fwd(x, y, 2.0)
    want = m.f_vjp_bwd(res, ct)
    assert all(np.array_equal(a, b) for a, b in zip(want, m.f_vjp_bwd(list(res), ct)))  # a list is fine, as for out=
    assert all(np.array_equal(a, b) for a, b in zip(want, m.f_vjp_bwd((x, y, np.array(2.0, np.float32)), ct)))
    bad = [  # (residuals, error, message)
        ((x.astype(np.float64), y, res[2]), TypeError,
         r"^f_vjp_bwd\(\): residual `x` must be f32\[N\] as f_vjp_fwd returns it, got float64\[3\]$"),
        ((x.tolist(), y, res[2]), TypeError, r"^f_vjp_bwd\(\): residual `x` must be f32\[N\] as f_vjp_fwd returns it, "
                                             r"got list$"),
        ((x, np.ones((3, 1), np.float32), res[2]), ValueError,
         r"^f_vjp_bwd\(\): residual `y` must be f32\[N\] \(1-D\), got an array of shape \(3, 1\)$"),
        ((x, np.ones(4, np.float32), res[2]), ValueError,
         r"^f_vjp_bwd\(\): residual `y` must be f32\[N\], i\.e\. shape \(3,\) with N = 3 \(from residual `x`\); "
         r"got shape \(4,\)$"),
        ((x, y, 2.0), TypeError, r"^f_vjp_bwd\(\): residual `s` must be f32 as f_vjp_fwd returns it, got float$"),
        ((x, y, np.float64(2.0)), TypeError, r"residual `s` must be f32 as f_vjp_fwd returns it, got float64\[\]$"),
        ((x, y, np.ones(1, np.float32)), TypeError,
         r"residual `s` must be f32 as f_vjp_fwd returns it, got float32\[1\]$"),
    ]
    for residuals, error, message in bad:
        with pytest.raises(error, match=message):
            m.f_vjp_bwd(residuals, ct)
    with pytest.raises(ValueError, match=r"^f_vjp_bwd\(\): argument `ct0` must be f32\[N\], i\.e\. shape \(3,\) "
                                         r"with N = 3 \(from residual `x`\); got shape \(2,\)$"):
        m.f_vjp_bwd(res, np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"^f_vjp_bwd\(\): `residuals` must be the tuple of 3 returned by f_vjp_fwd, "
                                         r"got 1 values$"):
        m.f_vjp_bwd(res[:1], ct)


def test_the_label_check_names_the_function_and_the_argument(tl):
    m = tl("fn f(z: f64[N, 3], k: i64[N]) -> f64 { return sum(cross_entropy(z, k)) }\n"
           "fn g(z: f64[N, 3], k: i64[N]) -> f64 { return sum(cross_entropy(z, k + 1)) }\n", path="ce.tl")
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^f\(\): argument `k`: the labels of cross_entropy must lie in \[0, 3\), "
                                         r"got values from 0 to 3$"):
        m.f(z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"^g\(\): the value at ce\.tl:2: the labels of cross_entropy must lie in "
                                         r"\[0, 3\), got values from 1 to 3$"):
        m.g(z, np.array([0, 2]))


def test_sizes_that_would_be_negative_are_argument_errors(tl):
    """x[1:-1] has size N - 2: with N = 1 the forward value used to be silently empty and the
    gradient a NumPy 'negative dimensions' error; zeros([N - 5]) likewise."""
    m = tl("fn f(x: f32[N]) -> f32 { return sum(x[1:-1]) }\ngrad f wrt x\n"
           "fn g(x: f32[N]) -> f32 { return sum(zeros([N - 5]) + x[5:]) }\n", path="neg.tl")
    assert m.f_grad(np.ones(3, np.float32))[1].tolist() == [0.0, 1.0, 0.0]
    for call, message in ((lambda: m.f(np.ones(1, np.float32)), r"f\(\): with N = 1, the size N - 2 "),
                          (lambda: m.f_grad(np.ones(1, np.float32)), r"f_grad\(\): with N = 1, the size N - 2"),
                          (lambda: m.g(np.ones(3, np.float32)), r"g\(\): with N = 3, the size N - 5 of a value "
                                                                 r"would be negative \(at neg.tl:3\)")):
        with pytest.raises(ValueError, match=message):
            call()


def test_constant_indices_past_a_sized_axis_are_argument_errors(tl):
    """x[2] of x: f32[N] needs N >= 3 (x[-3] too): a ValueError naming the function, the sizes
    and the source line, not NumPy's IndexError from inside the function or its gradient."""
    m = tl("fn f(x: f32[N]) -> f32 { return x[2] * x[-3] }\ngrad f wrt x\n"
           "fn g(x: f32[N, M]) -> f32 { return sum(x[None, 1, 4]) }\n", path="idx.tl")
    assert m.f_grad(np.arange(3, dtype=np.float32))[1].tolist() == [2.0, 0.0, 0.0]
    for call, message in ((lambda: m.f(np.ones(2, np.float32)), r"f\(\): with N = 2, index 2 is out of range "
                                                                 r"for axis 0 of size N \(at idx.tl:1\)"),
                          (lambda: m.f_grad(np.ones(2, np.float32)), r"f_grad\(\): with N = 2, index 2"),
                          (lambda: m.g(np.ones((3, 4), np.float32)), r"with N = 3, M = 4, index 4 is out of range "
                                                                      r"for axis 1 of size M")):
        with pytest.raises(ValueError, match=message):
            call()


def test_arrays_of_the_declared_dtype_are_not_copied(tl):
    m = tl("fn f(x: f64[3]) -> f64[3] { return x }\nfn g(x: f64[3]) -> f64[3] { return x[::-1] }\n")
    x = np.arange(3.0)
    y = m.f(x)
    assert y.tolist() == x.tolist() and not np.shares_memory(x, y)   # results never alias arguments
    assert not np.shares_memory(m.g(x), x)


RESHAPED_RESULTS = """
fn fresh(x: f64[N, 4], w: f64[4, 6]) -> f64[N, 2, 3] { return reshape(x @ w, [N, 2, 3]) }
fn both(x: f64[N, 4], w: f64[4, 6]) -> (f64[N, 6], f64[6, N]) {
    m = x @ w
    return m, transpose(m)
}
fn arg(x: f64[N, 4]) -> f64[4, N] { return transpose(reshape(x, [N, 4])) }
"""


def test_a_reshaped_temporary_is_returned_without_a_copy(tl):
    """A reshape or transpose of an array the function made, which nothing else reads or
    returns (a conv2d weight gradient: a GEMM's result as [O, C, KH, KW]), is already a fresh
    array: returned as it is. One of an argument, or of another result, is still copied."""
    m = tl(RESHAPED_RESULTS)
    assert ".copy()" not in inspect.getsource(m.fresh)
    assert ".copy()" in inspect.getsource(m.both) and ".copy()" in inspect.getsource(m.arg)
    x, w = np.arange(12.0).reshape(3, 4), np.ones((4, 6))
    np.testing.assert_array_equal(m.fresh(x, w), (x @ w).reshape(3, 2, 3))
    a, b = m.both(x, w)
    assert not np.shares_memory(a, b) and np.array_equal(b, (x @ w).T)
    assert not np.shares_memory(m.arg(x), x)


def test_no_checks_option_removes_validation():
    text = compile_source("fn f(x: f64[N]) -> f64 { return sum(x) }\n", checks=False)
    assert "_array" not in text and "_shape_error" not in text and "N = x.shape[0]" not in text


def test_no_checks_binds_the_sizes_a_fused_loop_uses(tl):
    """A loop over rows of a symbolic size: without checks the size is still read from the
    argument (the module stopped with "size symbol(s) ['N'] have no binding here": only the
    checks bound it; long fuzz run, input #5278). Sizes are now bound where the code first
    needs them, so an unused one still costs nothing."""
    text = """
    fn f(y: f64[N, 3]) -> f64 { return sum(prod(y, axis=1)) }
    grad f wrt y
    fn g(y: f64[N, M], z: f64[K]) -> f64[N] { return exp(sum(y * y, axis=1)) * 2.0 + 1.0 }
    vjp g wrt y
    """
    y, z = np.linspace(0.1, 0.9, 12).reshape(4, 3), np.ones(5)
    for level in (0, 1, 2):
        checked, unchecked = tl(text, opt_level=level), tl(text, opt_level=level, checks=False)
        for name, args in (("f_grad", (y,)), ("g_vjp", (y, z, np.ones(4)))):
            for w, g in zip(getattr(checked, name)(*args), getattr(unchecked, name)(*args)):
                np.testing.assert_array_equal(g, w, err_msg=f"{name} at -O{level}")
        assert "    K = " not in compile_source(text, checks=False, opt_level=level)


def test_generated_code_has_no_warnings_as_errors_surprises(tl):
    m = tl("fn f(x: f64[N]) -> f64 { return sum(where(x > 0, log(x), 0)) }\n")
    with np.errstate(all="raise"):
        assert m.f(np.array([-1.0, 0.0, np.e])) == 1.0


EINSUM_VIEWS = """
fn k(x: f64[N, 64], y: f64[N, 64]) -> f64[N, 64] {
    t = einsum("ij->ij", x)
    a = exp(t)
    b = a * y
    c = b + sin(x)
    return c * b
}
fn f(x: f64[N, 64], y: f64[N, 64]) -> (f64[N, 64], f64[N, 64]) {
    t = einsum("ij->ij", x)
    return exp(t) * 2 + y, t
}
fn tr(x: f64[N, 64]) -> f64[64, N] {
    return einsum("ij->ji", x)
}
fn diag(x: f64[64, 64]) -> f64[64] {
    return einsum("ii->i", x)
}
"""


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_one_operand_einsums_are_views_never_written_over(tl, opt_level):
    """numpy.einsum of one operand with nothing summed returns a view of it ('ij->ij' is the
    caller's array itself): a fused loop must not take its memory, and a returned one is a
    copy, as for transpose. (Found by review: at -O1 `k` wrote over x and `f` returned x.)"""
    from util import force_tiny_blocks

    m, plain = tl(EINSUM_VIEWS, opt_level=opt_level), tl(EINSUM_VIEWS, opt_level=0)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 64)), rng.standard_normal((300, 64))
    sq = rng.standard_normal((64, 64))
    keep = x.copy(), y.copy(), sq.copy()
    for tiny in (False, True):
        if tiny:
            force_tiny_blocks(m)
        np.testing.assert_allclose(m.k(x, y), plain.k(x.copy(), y.copy()), rtol=1e-12)
        for got, want in zip(m.f(x, y), (np.exp(x) * 2 + y, x)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
            assert not np.shares_memory(got, x) and not np.shares_memory(got, y)
        got = m.tr(x)
        assert np.array_equal(got, x.T) and not np.shares_memory(got, x)
        got = m.diag(sq)
        assert np.array_equal(got, np.diag(sq)) and not np.shares_memory(got, sq)
        for before, after in zip(keep, (x, y, sq)):
            np.testing.assert_array_equal(after, before)  # the caller's arrays are untouched


def test_einsum_contraction_path_is_decided_once(tl):
    src = ('fn f(a: f64[N, 5], b: f64[5, 3], c: f64[3, 4]) -> f64[N, 4] { return einsum("ij,jk,kl->il", a, b, c) }\n'
           'fn g(a: f64[2, 5], b: f64[5, 3], c: f64[3, 4]) -> f64[2, 4] { return einsum("ij,jk,kl->il", a, b, c) }\n')
    text = compile_source(src)
    assert "optimize=['einsum_path'," in text              # literal sizes: the path is in the source
    assert "_einsum('ij,jk,kl->il', a, b, c)" in text         # symbolic sizes: found on the first call
    m = tl(src)
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((6, 5)), rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    for _ in range(3):
        np.testing.assert_allclose(m.f(a, b, c), a @ b @ c)
    assert len(m._PATHS) == 1                                # cached per spec and shapes
    np.testing.assert_allclose(m.g(a[:2], b, c), a[:2] @ b @ c)


def test_an_einsum_operand_written_as_an_expression_is_computed_once(tl):
    """The path helper once took the operands again: an inlined operand ran twice."""
    src = 'fn f(a: f64[N, N], b: f64[N]) -> f64[N, N] { return einsum("i,j->ij", solve_triangular(a, b), b) }\n'
    text = compile_source(src)
    assert text.count("_solve_tri(a, b[:, None], True)") == 1, text
    m = tl(src)
    a = np.tril(np.random.default_rng(1).standard_normal((4, 4))) + 4 * np.eye(4)
    b = np.arange(1.0, 5.0)
    np.testing.assert_allclose(m.f(a, b), np.outer(np.linalg.solve(a, b), b))
