"""Is a scalar fn a sum or a mean over a size symbol's axis of per-example terms
(compiler/autodiff/batch.py)? The answers `__tapeless__` records and dask_grad reads.

The per-primitive facts it reads (the `axis_map` facet) are checked against each record's
SymPy meaning: an axis a map says runs along an output axis must feed that axis element for
element.
"""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler import compile_source
from tapeless.compiler.core.nodes import apply, param
from tapeless.compiler.core.primitive import REGISTRY, SymContext
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.pipeline import ir_stage
from tapeless.compiler.tools.primitive_proofs import parse_type_text


def batch(text: str, fn: str = "f", path: str = "t.tl") -> dict:
    return dict(ir_stage(SourceFile.from_text(path, text)).batch.get(fn) or {})


LOGREG = """
fn f(x: f32[N, D], y: f32[N], w: f32[D], lam: f32) -> f32 {
    z = x @ w
    return mean(bce_with_logits(z, y)) + lam * sum(w * w)
}
grad f wrt w
"""


# ---- sums and means -----------------------------------------------------------------------------
@pytest.mark.parametrize("body, answer", [
    ("mean(bce_with_logits(x @ w, y))", ("mean", -1)),
    ("sum(bce_with_logits(x @ w, y))", ("total", 0)),
    ("sum((x @ w - y) ** 2)", ("total", 0)),
    ("mean((x @ w - y) ** 2) + 0.5 * sum(w * w)", ("mean", -1)),  # a mean absorbs a free term
    ("sum(x @ w - y) / (N * N)", ("total", -2)),
    ("sum(tanh(x @ w) * y) / f32(N)", ("mean", -1)),
    ("sum(x.T @ (y * 2.0)) / N", ("mean", -1)),  # a summed vector, summed again: still linear
    ("sum(where(y > 0.5, x @ w, 0.0)) / N", ("mean", -1)),
    ("sum(x @ w) * 3.0 + sum(y) * 2.0", ("total", 0)),
    ("sum(x @ w - y) + 2.0 * N", ("total", 0)),  # N x (a constant) is a constant per example, summed
    ("sum(x @ w - y + 2.0 * N)", ("coupled", "`add` at t.tl:2:16 (`x @ w - y + 2.0 * N`) combines values scaled by "
                                             "different powers of N (a shard, which sees its own size for N, would "
                                             "differ)")),
])
def test_sums_and_means_over_the_batch(body, answer):
    text = f"fn f(x: f32[N, D], y: f32[N], w: f32[D]) -> f32 {{\n    return {body}\n}}\n"
    assert batch(text)["N"] == answer


def test_logistic_regression_with_an_l2_term_is_a_mean_over_n_and_coupled_over_d():
    got = batch(LOGREG)
    assert got["N"] == ("mean", -1)
    kind, reason = got["D"]
    assert kind == "coupled" and "bce_with_logits" in reason and "t.tl:4:17" in reason and "t.tl:3:9" in reason


def test_a_sum_with_a_term_free_of_the_examples_names_the_term():
    text = """fn f(x: f32[N, D], y: f32[N], w: f32[D]) -> f32 {
    r = x @ w - y
    return sum(r * r) + 0.1 * sum(w * w)
}"""
    kind, reason = batch(text)["N"]
    assert kind == "free_term"
    assert "t.tl:3:25" in reason and "`0.1 * sum(w * w)`" in reason and "make the value a mean" in reason


def test_cross_entropy_with_labels_is_a_mean_over_rows_and_couples_the_classes():
    text = """fn f(x: f32[N, D], labels: i64[N], w: f32[D, C]) -> f32 {
    return mean(cross_entropy(x @ w, labels))
}"""
    got = batch(text)
    assert got["N"] == ("mean", -1)
    assert got["C"] == ("coupled", "cross_entropy along C at t.tl:2:17 (`cross_entropy(x @ w, labels)`)")


def test_rowwise_matmul_then_tanh_and_softmax_over_features_keep_examples_apart():
    text = """fn f(x: f32[N, D], w: f32[D, H], v: f32[H, C], y: f32[N, C]) -> f32 {
    h = tanh(x @ w)
    p = softmax(h @ v, axis=1)
    return -mean(sum(y * log(p), axis=1))
}"""
    got = batch(text)
    assert got["N"] == ("mean", -1)
    assert got["C"][0] == "coupled" and "softmax along C at t.tl:3:9" in got["C"][1]


def test_two_batch_symbols():
    text = """fn f(x: f32[B, T, D], w: f32[D]) -> f32 {
    return mean(tanh(x @ w))
}"""
    got = batch(text)
    assert got["B"] == ("mean", -1) and got["T"] == ("mean", -1) and got["D"][0] == "coupled"


def test_embedding_lookup_and_reshape_keep_the_batch_axis():
    text = """fn f(tokens: i64[N, T], e: f32[V, D], w: f32[D]) -> f32 {
    h = take(e, tokens, axis=0)
    g = reshape(h, [N, T * D])
    return mean(g) + mean(h @ w)
}"""
    assert batch(text)["N"] == ("mean", -1)


# ---- coupled: the operation and where --------------------------------------------------------------
def test_batch_norm_couples_the_examples_through_the_mean():
    text = """fn f(x: f32[N, D], w: f32[D]) -> f32 {
    m = mean(x, axis=0)
    v = mean((x - m) ** 2, axis=0)
    return sum(tanh((x - m) / sqrt(v + 1e-5) @ w))
}"""
    kind, reason = batch(text)["N"]
    assert kind == "coupled"
    assert reason.startswith("`sub` at t.tl:3:15 (`x - m`) combines each example with the sum over N")
    assert "t.tl:2:9 (`mean(x, axis=0)`)" in reason


@pytest.mark.parametrize("body, reason", [
    ("max(x @ w, axis=0)", "max over N at t.tl:2:12 (`max(x @ w, axis=0)`)"),
    ("logsumexp(x @ w, axis=0)", "logsumexp over N at t.tl:2:12 (`logsumexp(x @ w, axis=0)`)"),
    ("sum((x[1:] - x[:-1]) ** 2)", "index along N at t.tl:2:17 (`x[1:]`)"),
    ("sum(softmax(x @ w, axis=0) * y)", "softmax along N at t.tl:2:16 (`softmax(x @ w, axis=0)`)"),
    ("sum(cumsum(x @ w, axis=0))", "cumsum along N at t.tl:2:16 (`cumsum(x @ w, axis=0)`)"),
    ("(x @ w)[0]", "index along N at t.tl:2:12 (`(x @ w)[0]`)"),
])
def test_operations_that_couple_the_examples_are_named_with_their_place(body, reason):
    text = f"fn f(x: f32[N, D], y: f32[N], w: f32[D]) -> f32 {{\n    return {body}\n}}\n"
    assert batch(text)["N"] == ("coupled", reason)


def test_a_nonlinear_function_of_a_sum_over_the_batch_couples():
    text = """fn f(x: f32[N, D], y: f32[N, D]) -> f32 {
    g = x.T @ y
    return sum(tanh(g))
}"""
    kind, reason = batch(text)["N"]
    assert kind == "coupled"
    assert reason == ("`tanh` at t.tl:3:16 (`tanh(g)`) is not linear in the sum over N made by "
                      "`matmul` at t.tl:2:9 (`x.T @ y`)")


def test_an_outer_product_over_the_batch_pairs_examples():
    text = """fn f(x: f32[N]) -> f32 {
    return sum(x[:, None] * x[None, :])
}"""
    kind, reason = batch(text)["N"]
    assert kind == "coupled" and "pairs examples along N" in reason and "t.tl:2:16" in reason


def test_a_mean_and_a_sum_cannot_be_split_together():
    text = """fn f(x: f32[N]) -> f32 {
    return mean(x) + sum(x * x)
}"""
    kind, reason = batch(text)["N"]
    assert kind == "coupled" and "different powers of N" in reason


def test_n_used_other_than_as_a_power_couples():
    text = """fn f(x: f32[N]) -> f32 {
    return mean(x) * log(f32(N))
}"""
    kind, reason = batch(text)["N"]
    assert kind == "coupled" and "uses N other than as a power" in reason and "`log` at t.tl:2:22" in reason


def test_a_parameter_with_the_symbol_on_two_axes_pairs_examples():
    assert batch("fn f(a: f32[N, N]) -> f32 { return sum(a) }")["N"] == (
        "coupled", "parameter `a` has N on 2 axes: its elements pair examples with each other")


def test_a_size_made_from_the_symbol_couples():
    kind, reason = batch("fn f(x: f32[N]) -> f32 { return sum(x[1:]) }")["N"]
    assert kind == "coupled" and "index along N at t.tl:1:37 (`x[1:]`)" == reason


def test_a_value_that_does_not_depend_on_the_examples_is_unbatched():
    assert batch("fn f(x: f32[N], w: f32) -> f32 { return w * w }")["N"] == (
        "unbatched", "the value does not depend on the examples along N")


def test_eye_over_the_batch_depends_on_the_position():
    kind, reason = batch("fn f(x: f32[N, N2]) -> f32 { return sum(x @ eye(N2)) }")["N2"]
    assert kind == "coupled" and "depends on the position along N2" in reason


def test_a_call_kept_as_a_call_is_looked_through():
    # a callee of more than CALL_INLINE_LIMIT operations stays a call in the IR
    steps = "\n".join(f"    h = h * 1.001 + {k}.0" for k in range(40))
    text = f"""fn g(x: f32[N, D]) -> f32[N, D] {{
    h = x
{steps}
    return h
}}
fn f(x: f32[N, D], m: f32[N, D]) -> f32 {{
    return mean(g(x) * m)
}}
fn h(x: f32[N, D]) -> f32 {{
    return sum(softmax(g(x), axis=0))
}}"""
    assert batch(text, "f")["N"] == ("mean", -1)
    assert batch(text, "h")["N"][0] == "coupled"


def test_only_scalar_float_fns_with_symbols_are_analysed():
    text = """fn f(x: f32[N]) -> f32[N] { return x * 2.0 }
fn g(x: f32[3]) -> f32 { return sum(x) }
fn h(x: f32[N]) -> f32 { return sum(x) }
grad h wrt x"""
    module = ir_stage(SourceFile.from_text("t.tl", text))
    assert set(module.batch) == {"h"}


def test_the_generated_table_records_the_answers():
    namespace: dict = {}
    exec(compile_source(LOGREG, path="t.tl"), namespace)  # noqa: S102 - the compiler's own output
    table = namespace["__tapeless__"]
    assert table["f"]["batch"]["N"] == ("mean", -1)
    assert "batch" not in table["f_grad"]


# ---- the axis_map facet against the records' meanings ---------------------------------------------
def _examples():
    for name, prim in sorted(REGISTRY.items()):
        if prim.axis_map is None or prim.sympy is None:
            continue
        for k, (types, attrs, domains) in enumerate(prim.examples):
            if not any(isinstance(d, tuple) for d in domains.values()):  # (computed inputs: spd's factor)
                yield pytest.param(name, types, attrs, domains, id=f"{name}-{k}")


@pytest.mark.parametrize("name, types, attrs, domains", list(_examples()))
def test_an_axis_mapped_to_an_output_axis_feeds_it_element_for_element(name, types, attrs, domains):
    import sympy

    prim = REGISTRY[name]
    params = [param(f"a{i}", parse_type_text(t), i) for i, t in enumerate(types)]
    node = apply(prim, *params, **attrs)
    rng = np.random.default_rng(0)
    args, symbols = [], {}
    for i, p in enumerate(params):
        shape = tuple(p.shape)
        if p.dtype.is_float:
            a = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                a[idx] = sympy.Symbol(f"a{i}_" + "_".join(map(str, idx)))
                symbols[a[idx]] = (i, idx)
        else:
            dom = domains.get(i, "int:0:2")
            lo, hi = (int(v) for v in dom.split(":")[1:]) if str(dom).startswith("int:") else (0, 2)
            a = rng.integers(lo, hi, size=shape)
        args.append(a)
    out = np.asarray(prim.sympy(SymContext({}), args, node), dtype=object)
    maps = prim.axis_map(node)
    assert len(maps) == len(params) and all(len(m) == p.type.rank for m, p in zip(maps, params))
    for o in np.ndindex(out.shape):
        for sym in getattr(out[o], "free_symbols", ()):
            i, idx = symbols[sym]
            for a, b in enumerate(maps[i]):
                if b is not None and b >= 0 and params[i].shape[a] != 1:
                    assert idx[a] == o[b], (f"{name}: input {i} axis {a} is mapped to output axis {b}, "
                                            f"but input element {idx} feeds output element {o}")


def test_every_primitive_a_program_reaches_has_an_axis_map():
    """Ops only derivatives make (scatters, the gradients of conv and windows), loops and calls
    (expanded first) have none: the analysis reports them as unknown."""
    without = sorted(n for n, p in REGISTRY.items()
                     if p.axis_map is None and p.rule_shape not in ("leaf", "constructor"))
    assert without == ["call", "ckpt_bwd", "ckpt_fwd", "conv_grad_w", "conv_grad_x", "dyn_index", "dyn_update",
                       "for_loop", "index_grad", "index_grads", "index_grads_onto", "stack_first",
                       "take_along_axis_grad", "take_grad", "windows_grad"]
