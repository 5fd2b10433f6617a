"""`tapeless graph`: DOT structure (always), golden DOT files, SVG/PNG (when Graphviz's `dot` exists).

Regenerate the golden files on purpose only: `pytest tests/test_graph.py --update-golden`,
then read the diff. The rendering tests skip without Graphviz (CI installs it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tapeless.compiler.tools import cli, graph
from tapeless.compiler.tools.graph import GraphError, graph_text, stage_module
from tapeless.compiler.core.source import SourceFile

HERE = Path(__file__).parent
REPO = HERE.parent
GOLDEN = HERE / "golden_graph"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's `dot` is not installed (apt-get install graphviz)")

# golden file -> (path from the repository root, --fn, --stage, --collapse)
GOLDEN_CASES = {
    "layer.layer_grad.dot": ("examples/layer.tl", "layer_grad", "adjoint", "none"),
    "layer.layer.typed.dot": ("examples/layer.tl", "layer", "typed", "none"),
    "layer.layer_grad_fwd.dot": ("examples/layer.tl", "layer_grad_fwd", "adjoint", "none"),
    "layer.layer_grad_bwd.dot": ("examples/layer.tl", "layer_grad_bwd", "adjoint", "none"),
    "poly.poly.dot": ("examples/poly.tl", "poly", "adjoint", "none"),
    "square.square_vjp.dot": ("examples/square.tl", "square_vjp", "adjoint", "none"),
    "detach.half_detached_grad.dot": ("examples/detach.tl", "half_detached_grad", "adjoint", "none"),
    "mlp.mlp_grad.dot": ("tests/cases/mlp.tl", "mlp_grad", "adjoint", "none"),
    "mlp.mlp_grad.statements.dot": ("tests/cases/mlp.tl", "mlp_grad", "adjoint", "statements"),
}


def dot_of(path: str, fn: str, stage: str = "adjoint", collapse: str = "none") -> str:
    source = SourceFile.read(str(REPO / path), path)
    return graph_text(stage_module(source, stage), fn, stage, collapse)


def dot_of_text(text: str, fn: str, stage: str = "adjoint", collapse: str = "none", path: str = "t.tl",
                **kw) -> str:
    return graph_text(stage_module(SourceFile.from_text(path, text), stage), fn, stage, collapse, **kw)


# ---- a reader for the DOT that graph.py writes (one statement per line) ----------------------
@dataclass
class Box:
    key: str
    attrs: dict[str, str]
    cluster: str

    @property
    def lines(self) -> list[str]:
        return self.attrs["label"].split("\n")

    @property
    def head(self) -> str:
        return self.lines[0]


@dataclass
class Dot:
    title: list[str]
    boxes: dict[str, Box] = field(default_factory=dict)
    clusters: dict[str, list[str]] = field(default_factory=dict)  # cluster label -> box keys
    edges: list[tuple[str, str, dict]] = field(default_factory=list)  # data flow: input -> user

    def find(self, head: str) -> Box:
        found = [b for b in self.boxes.values() if b.head == head or b.head.startswith(head + " = ")]
        assert len(found) == 1, (head, [b.head for b in found])
        return found[0]

    def in_cluster(self, label: str) -> list[Box]:
        return [self.boxes[k] for k in self.clusters[label]]

    def flows(self) -> set[tuple[str, str]]:
        return {(self.boxes[s].head.split(" = ")[0], self.boxes[d].head.split(" = ")[0]) for s, d, _ in self.edges}


_STRING = r'"(?:[^"\\]|\\.)*"'
_ATTR = re.compile(rf'(\w+)=({_STRING}|[^,\]\s]+)')
_NODE = re.compile(rf'^    (n\d+) \[((?:\w+=(?:{_STRING}|[^,\]\s]+)(?:, )?)+)\];$')
_EDGE = re.compile(rf'^  (n\d+) -> (n\d+)(?: \[((?:\w+=(?:{_STRING}|[^,\]\s]+)(?:, )?)+)\])?;$')
_GRAPH = re.compile(rf'^ {{2,4}}graph \[((?:\w+=(?:{_STRING}|[^,\]\s]+)(?:, )?)+)\];$')


def _unquote(value: str) -> str:
    """A DOT string as Graphviz shows it: `\\n` breaks the line, `\\\\` is a backslash, `&amp;` is `&`."""
    if not value.startswith('"'):
        return value
    out, k, body = [], 0, value[1:-1]
    while k < len(body):
        c = body[k]
        if c == "\\":
            nxt = body[k + 1]
            out.append("\n" if nxt == "n" else nxt)
            k += 2
        else:
            out.append(c)
            k += 1
    return "".join(out).replace("&amp;", "&")


def _attrs(text: str) -> dict[str, str]:
    return {k: _unquote(v) for k, v in _ATTR.findall(text or "")}


def parse_dot(text: str) -> Dot:
    """Every line must be one of the statements graph.py writes: anything else fails."""
    lines = text.split("\n")
    assert lines[0] == "digraph tapeless {" and lines[-2:] == ["}", ""], "not one digraph"
    title = None
    dot = Dot([])
    cluster = None
    for line in lines[1:-2]:
        if m := _GRAPH.match(line):
            attrs = _attrs(m.group(1))
            if cluster is None:
                title = attrs["label"].split("\n")
            else:
                dot.clusters[attrs["label"]] = []
                cluster = attrs["label"]
        elif line in ('  node [fontname="Helvetica", fontsize=10];', "  edge [arrowsize=0.7];"):
            pass
        elif re.fullmatch(r"  subgraph cluster_\d+ \{", line):
            cluster = ""
        elif line == "  }":
            cluster = None
        elif m := _NODE.match(line):
            assert cluster, f"a box outside the clusters: {line}"
            dot.boxes[m.group(1)] = Box(m.group(1), _attrs(m.group(2)), cluster)
            dot.clusters[cluster].append(m.group(1))
        elif m := _EDGE.match(line):
            attrs = _attrs(m.group(3))
            s, d = (m.group(2), m.group(1)) if attrs.get("dir") == "back" else (m.group(1), m.group(2))
            dot.edges.append((s, d, attrs))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    dot.title = title
    for s, d, _ in dot.edges:
        assert s in dot.boxes and d in dot.boxes
    return dot


def fill(box: Box) -> str:
    return box.attrs.get("fillcolor", "")


def saved(box: Box) -> bool:
    return box.attrs.get("color") == "#38761d"


def is_output(box: Box) -> bool:
    return box.attrs.get("peripheries") == "2"


# ---- golden files ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str, update_golden: bool):
    text = dot_of(*GOLDEN_CASES[name])
    golden = GOLDEN / name
    if update_golden:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8", newline="\n")
        return
    assert golden.exists(), f"{golden} is missing: run pytest tests/test_graph.py --update-golden"
    assert text == golden.read_text(encoding="utf-8"), f"{name} differs (see git diff after --update-golden)"
    parse_dot(text)


def test_every_golden_file_is_a_case():
    for g in GOLDEN.iterdir():
        assert g.name in GOLDEN_CASES, f"stale golden file {g.name}"


def test_the_command_in_a_new_process_gives_the_golden_bytes(tmp_path):
    """Node ids differ between processes; the DOT must not."""
    r = subprocess.run([sys.executable, "-m", "tapeless.compiler.tools.cli", "graph", "examples/layer.tl",
                        "--fn", "layer_grad"], cwd=REPO, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (GOLDEN / "layer.layer_grad.dot").read_bytes()
    out = tmp_path / "g.dot"
    r = subprocess.run([sys.executable, "-m", "tapeless.compiler.tools.cli", "graph", "tests/cases/mlp.tl",
                        "--fn", "mlp_grad", "--collapse", "statements", "-o", str(out)], cwd=REPO, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (GOLDEN / "mlp.mlp_grad.statements.dot").read_bytes()


# ---- structure ---------------------------------------------------------------------------
def test_layer_grad_forward_backward_residuals_outputs():
    d = parse_dot(dot_of("examples/layer.tl", "layer_grad"))
    assert d.title == ["layer_grad = grad layer wrt w, b", "examples/layer.tl - stage adjoint"]
    assert list(d.clusters) == ["forward: layer", "backward: layer_grad (wrt w, b)"]
    fwd = [b.head for b in d.in_cluster("forward: layer")]
    bwd = [b.head for b in d.in_cluster("backward: layer_grad (wrt w, b)")]
    assert fwd == ["x", "y", "w", "b", "%0 = matmul(x, w)", "z = add(%0, b)", "%1 = bce_with_logits(z, y)",
                   "%2 = sum(%1) {axes=(0, 1), keepdims=False}", "%3 = div(%2, 10*N:f32)"]
    assert bwd == ["%4 = transpose(x) {perm=(1, 0)}", "%5 = div(1.0:f32, 10*N:f32)", "%6 = sigmoid(z)",
                   "%7 = sub(%6, y)", "d_z = mul(%5, %7)", "d_w = matmul(%4, d_z)",
                   "d_b = sum(d_z) {axes=(0,), keepdims=False}"]
    assert len(d.edges) == 17
    # parameters: inputs and wrt inputs told apart by colour, shaped as inputs
    for name in "xy":
        assert d.find(name).attrs["shape"] == "invhouse" and fill(d.find(name)) == "#cfe2f3"
        assert d.find(name).lines[2] == "input"
    for name in "wb":
        assert fill(d.find(name)) == "#ffd966" and d.find(name).lines[2] == "wrt input"
    assert d.find("x").lines == ["x", "f32[N, 784]", "input", "saved as x", "layer.tl:3"]
    # residuals: what layer_grad_fwd returns after the value
    assert sorted(b.head.split(" = ")[0] for b in d.boxes.values() if saved(b)) == ["x", "y", "z"]
    assert d.find("z").lines == ["z = add(%0, b)", "f32[N, 10]", "saved as z", "layer.tl:4"]
    # outputs
    outs = {b.head.split(" = ")[0]: b.lines[-2] for b in d.boxes.values() if is_output(b)}
    assert outs == {"%3": "output 0", "d_w": "output 1", "d_b": "output 2"}
    # constants are folded into their users, never boxes
    assert not any(b.head.startswith(("10*N", "1.0")) for b in d.boxes.values())
    # edges: forward black, forward->backward green dashed (residual reads), backward red drawn upwards
    cross = {(d.boxes[s].head.split(" = ")[0], d.boxes[t].head.split(" = ")[0])
             for s, t, a in d.edges if a.get("style") == "dashed"}
    assert cross == {("x", "%4"), ("z", "%6"), ("y", "%7")}
    back = [a for s, t, a in d.edges if a.get("color") == "#a61c00"]
    assert len(back) == 6 and all(a["dir"] == "back" for a in back)
    assert len([a for s, t, a in d.edges if not a]) == 8  # forward edges: plain
    assert ("d_z", "d_w") in d.flows() and ("%4", "d_w") in d.flows() and ("x", "%0") in d.flows()
    # every node points back to its source line
    assert d.find("%0").attrs["tooltip"] == "examples/layer.tl:4: z = x @ w + b"
    assert d.find("d_w").lines[-1] == "layer.tl:4"


def test_vjp_cotangents_are_parameters_of_the_backward_part():
    d = parse_dot(dot_of("examples/square.tl", "square_vjp"))
    ct = d.find("ct0")
    assert ct.cluster == "backward: square_vjp (wrt inp)"
    assert ct.attrs["shape"] == "house" and fill(ct) == "#f4cccc"
    assert ct.lines == ["ct0", "f64[5, 5]", "cotangent of output 0"]
    assert saved(d.find("%0")) and d.find("%0").lines[2] == "saved as r0"
    assert ("ct0", "d_inp") in d.flows()
    assert d.find("%0").head == "%0 = add(inp, 1.0:f64)"


def test_a_fn_is_drawn_with_every_derivative_the_file_declares():
    text = ("fn f(x: f64[N], y: f64[N]) -> f64 {\n    z = x * y\n    return sum(sin(z))\n}\n"
            "grad f wrt x\nvjp f wrt y as f_vjp\n")
    d = parse_dot(dot_of_text(text, "f"))
    assert d.title[0] == "fn f and its derivatives f_grad, f_vjp"
    assert list(d.clusters) == ["forward: f", "backward: f_grad (wrt x)", "backward: f_vjp (wrt y)"]
    assert [b.head for b in d.in_cluster("forward: f")] == ["x", "y", "z = mul(x, y)", "%0 = sin(z)",
                                                           "%1 = sum(%0) {axes=(0,), keepdims=False}"]
    assert fill(d.find("x")) == fill(d.find("y")) == "#ffd966"  # wrt of one derivative or the other
    assert d.find("ct0").cluster == "backward: f_vjp (wrt y)"
    outputs = sorted(b.lines[-2] for b in d.boxes.values() if is_output(b))
    assert outputs == ["f_grad output 1", "f_vjp output 1", "output 0"]
    assert any(line.endswith("by f_grad_fwd") for b in d.boxes.values() for line in b.lines)
    # the same function at stage typed: the forward part alone
    t = parse_dot(dot_of_text(text, "f", stage="typed"))
    assert t.title[0] == "fn f" and list(t.clusters) == ["forward: f"]
    assert [b.head for b in t.boxes.values()] == [b.head for b in d.in_cluster("forward: f")]
    assert fill(t.find("x")) == "#cfe2f3" and not any(saved(b) for b in t.boxes.values())


def test_a_fn_without_derivatives_is_its_forward_graph():
    d = parse_dot(dot_of_text("fn g(a: f32[3]) -> f32[3] {\n    return exp(a) * 2\n}\n", "g"))
    assert list(d.clusters) == ["forward: g"] and len(d.boxes) == 3 and len(d.edges) == 2
    assert d.find("%1").head == "%1 = mul(%0, 2.0:f32)" and is_output(d.find("%1"))


def test_fwd_and_bwd_alone_show_residuals_and_size_carriers():
    d = parse_dot(dot_of("examples/layer.tl", "layer_grad_fwd"))
    assert list(d.clusters) == ["forward: layer_grad_fwd"]
    assert {b.head.split(" = ")[0]: b.lines[-2] for b in d.boxes.values() if is_output(b)} == \
        {"%3": "output 0", "x": "output 1", "z": "output 2", "y": "output 3"}
    assert [b.head.split(" = ")[0] for b in d.boxes.values() if saved(b)] == ["x", "y", "z"]
    b = parse_dot(dot_of("examples/layer.tl", "layer_grad_bwd"))
    assert list(b.clusters) == ["backward: layer_grad_bwd"]
    for name in ("x", "z", "y"):
        r = b.find(name)
        assert fill(r) == "#d9ead3" and saved(r) and r.lines[2:4] == ["residual", "from layer_grad_fwd"]
    assert b.find("seed").lines[2] == "seed" and b.find("seed").attrs["shape"] == "house"
    # a size symbol no residual carries travels as an integer
    text = "fn f(x: f64[N]) -> f64 {\n    return sum(x) / N\n}\ngrad f wrt x\n"
    c = parse_dot(dot_of_text(text, "f_grad_bwd"))
    assert c.find("size_N").lines[2] == "size N" and c.find("size_N").attrs["shape"] == "ellipse"
    f = parse_dot(dot_of_text(text, "f_grad_fwd"))
    carrier = f.find("N:i64")
    assert saved(carrier) and is_output(carrier) and "saved as size_N" in carrier.lines
    g = parse_dot(dot_of_text(text, "f_grad"))  # combined: the size is folded into labels
    assert not any(b.head.startswith("N:") for b in g.boxes.values())


def test_higher_order_forward_part_is_the_first_derivative():
    d = parse_dot(dot_of("tests/cases/higher_order.tl", "energy_hvp"))
    assert list(d.clusters) == ["forward: energy_grad", "backward: energy_hvp (wrt w)"]
    assert {b.head for b in d.in_cluster("backward: energy_hvp (wrt w)") if b.attrs["shape"] == "house"} == \
        {"ct0", "ct1"}
    assert d.find("d_w").cluster == "forward: energy_grad" and d.find("d_w").lines[-2] == "output 1"
    assert d.find("d_w.1").lines[-2] == "output 2"


def test_collapse_statements_groups_each_source_line_per_part():
    full = parse_dot(dot_of("tests/cases/mlp.tl", "mlp_grad"))
    d = parse_dot(dot_of("tests/cases/mlp.tl", "mlp_grad", collapse="statements"))
    fwd, bwd = list(d.clusters)
    statements = [b for b in d.boxes.values() if b.attrs["style"] == "filled" and b.attrs["shape"] == "box"]
    assert len(statements) == 6 and len(d.boxes) == 12  # 6 parameters, 3 lines forward, 3 backward
    assert [b.lines[:2] for b in d.in_cluster(fwd) if b in statements] == [
        ["h = relu(x @ w1 + b1)", "matmul, add, relu"],
        ["logits = h @ w2 + b2", "matmul, add"],
        ["return mean(cross_entropy(logits, labels))", "cross_entropy, sum, div"]]
    assert [b.lines[:2] for b in d.in_cluster(bwd)] == [  # in the order of their first node
        ["h = relu(x @ w1 + b1)", "transpose, gt, where, matmul, sum"],
        ["return mean(cross_entropy(logits, labels))", "div, softmax, checked_labels, sub_label, mul"],
        ["logits = h @ w2 + b2", "transpose x2, matmul x2, sum"]]
    assert all(s != t for s, t, _ in d.edges)
    assert len({(s, t) for s, t, _ in d.edges}) == len(d.edges)
    assert len(d.edges) < len(full.edges)
    outs = [b.lines[-2] for b in d.boxes.values() if is_output(b)]
    assert outs == ["output 0", "output 1, output 2", "output 3, output 4"]
    assert [b.lines[0] for b in d.in_cluster(fwd) if saved(b)] == [
        "x", "labels", "w2", "h = relu(x @ w1 + b1)", "logits = h @ w2 + b2"]


def test_wide_fan_out_becomes_reference_boxes():
    uses = " + ".join(f"sin(x * {k})" for k in range(1, 6))
    text = f"fn f(x: f64[N]) -> f64 {{\n    return sum({uses})\n}}\n"
    plain = parse_dot(dot_of_text(text, "f"))
    assert len(plain.boxes) == 16 and not any("dashed" in b.attrs["style"] for b in plain.boxes.values())
    d = parse_dot(dot_of_text(text, "f", fanout=3))
    refs = [b for b in d.boxes.values() if "dashed" in b.attrs["style"]]
    assert [b.head for b in refs] == ["x"] * 5 and fill(refs[0]) == "#cfe2f3"
    assert refs[0].attrs["tooltip"] == "x: drawn once (t.tl:1), referenced at each of its 5 uses"
    assert len(d.edges) == len(plain.edges) and not any(d.boxes[s].head == "x" and "dashed" not in
                                                        d.boxes[s].attrs["style"] for s, _, _ in d.edges)


def test_optimized_stage_draws_the_optimized_module():
    d = parse_dot(dot_of("examples/layer.tl", "layer_grad", stage="optimized"))
    assert d.title[1] == "examples/layer.tl - stage optimized"
    assert list(d.clusters) == ["forward: layer", "backward: layer_grad (wrt w, b)"]


# ---- text from the user cannot break the DOT ------------------------------------------------
def test_dot_text_escapes():
    assert graph.dot_text('a"b\\c') == 'a\\"b\\\\c'
    assert graph.dot_text("l\\n\\G&lt;<x>") == "l\\\\n\\\\G&amp;lt;<x>"
    assert graph.dot_text("new\nline\ttab\x00\u202e") == "new\\\\nline\\\\ttab\\\\x00\\\\u202e"
    assert graph.dot_text("\udcff") == "\\\\udcff"  # a lone surrogate (undecodable file name) is shown
    assert graph.dot_text("é中") == "é中"


WEIRD_NAMES = ['q"uote\\back<lt>&amp;.tl', "new\nline\r\x01\u202e.tl", "\\N\\G\\l.tl"]


@pytest.mark.skipif(sys.platform == "win32", reason="these names are not valid Windows file names")
@pytest.mark.parametrize("name", WEIRD_NAMES, ids=["quotes", "control", "escapes"])
def test_weird_file_names_and_comments_stay_text(tmp_path, capsys, name):
    src = tmp_path / name
    src.write_text('fn f(x: f64[N]) -> f64 {   # a "comment" \\ & <b>\n'
                   '    y = einsum("i,i->", x, x)  # more # hashes "\n    return y * 2\n}\ngrad f wrt x\n')
    assert cli.main(["graph", str(src), "--fn", "f_grad"]) == 0
    text = capsys.readouterr().out
    d = parse_dot(text)
    shown = graph.clean(str(src))
    assert d.title[1] == f"{shown} - stage adjoint"
    assert d.find("y").lines[-1] == graph.clean(name) + ":2"
    assert d.find("y").attrs["tooltip"] == f'{shown}:2: y = einsum("i,i->", x, x)'
    assert "\n" not in "".join(b.attrs["label"].replace("\n", "") for b in d.boxes.values())
    text.encode("utf-8")  # always encodable
    if HAVE_DOT:
        svg = graph.render(text, "svg")
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        titles = [t.text for t in root.iter(f"{ns}text")]
        assert f"{shown} - stage adjoint" in titles
        assert len([g for g in root.iter(f"{ns}g") if g.get("class") == "node"]) == len(d.boxes)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes")
def test_undecodable_file_name(tmp_path, capsys):
    name = os.fsdecode(b'\xff\xfe"x.tl')
    (tmp_path / name).write_text("fn f(x: f64) -> f64 {\n    return x * x\n}\ngrad f wrt x\n")
    assert cli.main(["graph", str(tmp_path / name), "--fn", "f_grad"]) == 0
    d = parse_dot(capsys.readouterr().out)
    assert d.find("%0").lines[-1] == '\\udcff\\udcfe"x.tl:2'


# ---- the command ---------------------------------------------------------------------------
LAYER = str(REPO / "examples" / "layer.tl")


def test_unknown_function_lists_the_ones_there_are(capsys):
    assert cli.main(["graph", LAYER, "--fn", "layr"]) == 1
    err = capsys.readouterr().err
    assert err == (f"tapeless: error: {LAYER}: no function `layr` at stage adjoint; did you mean `layer`? "
                   "(functions: layer, layer_grad, layer_grad_fwd, layer_grad_bwd)\n")
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "--stage", "typed"]) == 1
    err = capsys.readouterr().err
    assert "`layer_grad` is a derivative function: it exists from --stage adjoint on; " \
           "functions at stage typed: layer" in err
    with pytest.raises(GraphError, match="no function `nope`"):
        graph.build_view(stage_module(SourceFile.read(LAYER), "adjoint"), "nope")


def test_errors_in_the_tl_file_are_located(tmp_path, capsys):
    src = tmp_path / "bad.tl"
    src.write_text("fn f(x: f64[3], y: f64[3, 2]) -> f64 {\n    return sum(x + y)\n}\n")
    assert cli.main(["graph", str(src), "--fn", "f"]) == 1
    err = capsys.readouterr().err
    assert f"{src}:2:16: error: cannot broadcast" in err and "Traceback" not in err
    assert cli.main(["graph", str(tmp_path / "missing.tl"), "--fn", "f"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_stages_and_collapse_choices_match_the_command_line():
    p = cli._parser()
    for stage in graph.STAGES:
        assert p.parse_args(["graph", "f.tl", "--fn", "f", "--stage", stage]).stage == stage
    for c in graph.COLLAPSE:
        assert p.parse_args(["graph", "f.tl", "--fn", "f", "--collapse", c]).collapse == c
    with pytest.raises(SystemExit):
        p.parse_args(["graph", "f.tl", "--fn", "f", "--stage", "parsed"])


def test_dot_to_stdout_or_file(tmp_path, capsys):
    golden = (GOLDEN / "layer.layer_grad.dot").read_text().replace("examples/layer.tl", LAYER)
    assert cli.main(["graph", LAYER, "--fn", "layer_grad"]) == 0
    assert capsys.readouterr().out == golden
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", "-"]) == 0
    assert capsys.readouterr().out == golden
    for name in ("g.dot", "g.gv", "G.DOT"):
        assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text() == golden
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.DOT", "g.dot", "g.gv"]


def test_output_name_errors(tmp_path, capsys):
    assert cli.main(["graph", LAYER, "--fn", "layer", "-o", str(tmp_path / "g.jpg")]) == 1
    assert "unknown output format; the name must end in .dot, .gv, .svg, .png" in capsys.readouterr().err
    src = tmp_path / "m.tl"
    src.write_text("fn f(x: f64) -> f64 {\n    return x\n}\n")
    assert cli.main(["graph", str(src), "--fn", "f", "-o", str(src)]) == 1
    assert "refusing to overwrite the source file" in capsys.readouterr().err
    assert cli.main(["graph", LAYER, "--fn", "layer", "-o", str(tmp_path / "no" / "g.dot")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_missing_graphviz_names_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    for fmt in ("svg", "png"):
        out = tmp_path / f"g.{fmt}"
        assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(out)]) == 1
        assert capsys.readouterr().err == (
            f"tapeless: error: rendering .{fmt} needs Graphviz's `dot` program (Debian/Ubuntu: apt-get install "
            "graphviz; macOS: brew install graphviz); use -o FILE.dot for the DOT text\n")
        assert not out.exists()
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(tmp_path / "g.dot")]) == 0


def _fake_dot(tmp_path: Path, body: str) -> None:
    exe = tmp_path / "dot"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)


@pytest.mark.skipif(not Path("/bin/sh").exists() or not shutil.which("sleep"),
                    reason="needs /bin/sh and sleep for a stand-in `dot`")
def test_a_failing_or_hanging_dot_is_a_clear_error(tmp_path, monkeypatch, capsys):
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "g.svg"
    _fake_dot(tmp_path, 'echo "Error: syntax error in line 1" >&2; exit 3')
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(out)]) == 1
    assert "Graphviz's `dot -Tsvg` failed with status 3: Error: syntax error in line 1" in capsys.readouterr().err
    _fake_dot(tmp_path, f"exec {sleep} 30")
    monkeypatch.setattr(graph, "RENDER_TIMEOUT", 0.5)
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(out)]) == 1
    assert "did not finish within 0.5 s; try --collapse statements" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot"]  # nothing written, no temporary file


def _svg_counts(svg: bytes) -> dict[str, int]:
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    classes = [g.get("class") for g in root.iter(f"{ns}g")]
    return {k: classes.count(k) for k in ("node", "edge", "cluster")}


@needs_dot
@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_graphs_render_to_svg(name):
    text = dot_of(*GOLDEN_CASES[name])
    d = parse_dot(text)
    counts = _svg_counts(graph.render(text, "svg", timeout=60))
    assert counts == {"node": len(d.boxes), "edge": len(d.edges), "cluster": len(d.clusters)}


@needs_dot
def test_svg_and_png_files(tmp_path):
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(svg)]) == 0
    assert cli.main(["graph", LAYER, "--fn", "layer_grad", "-o", str(png), "--collapse", "statements"]) == 0
    assert _svg_counts(svg.read_bytes()) == {"node": 16, "edge": 17, "cluster": 2}
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    umask = os.umask(0)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]


def test_the_docs_picture_is_the_layer_grad_graph():
    """docs/layer_grad.svg is `tapeless graph examples/layer.tl --fn layer_grad -o docs/layer_grad.svg`."""
    d = parse_dot((GOLDEN / "layer.layer_grad.dot").read_text())
    svg = (REPO / "docs" / "layer_grad.svg").read_bytes()
    assert _svg_counts(svg) == {"node": len(d.boxes), "edge": len(d.edges), "cluster": len(d.clusters)}
    root = ET.fromstring(svg)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {b.head for b in d.boxes.values()} <= texts


# ---- a large graph ---------------------------------------------------------------------------
def deep_program(layers: int) -> str:
    body = "\n".join(f"    h = tanh(h @ w + b) * 0.5 + h  # layer {k}" for k in range(layers))
    return (f"fn deep(x: f32[N, 8], w: f32[8, 8], b: f32[8]) -> f32 {{\n    h = x\n{body}\n"
            f"    return mean(h * h)\n}}\n\ngrad deep wrt w, b\n")


def test_a_500_node_graph_is_fast_to_write_and_to_render():
    layers = 32
    source = SourceFile.from_text("deep.tl", deep_program(layers))
    module = stage_module(source, "adjoint")
    start = time.perf_counter()
    text = graph_text(module, "deep_grad")
    seconds = time.perf_counter() - start
    d = parse_dot(text)
    refs = [b for b in d.boxes.values() if "dashed" in b.attrs["style"]]
    nodes = len(d.boxes) - len(refs)
    assert nodes >= 500, nodes
    # w, b and the one transpose of w are used by every layer: reference boxes, not long edges
    wide = [b for b in d.boxes.values() if b.head.endswith("= transpose(w) {perm=(1, 0)}")]
    assert len(wide) == 1
    wide_name = wide[0].head.split(" = ")[0]
    assert Counter(b.head for b in refs) == {"w": layers + 1, "b": layers, wide_name: layers - 1}
    assert refs[0].lines == ["w", "deep.tl:1"]
    assert max(sum(1 for s, _, _ in d.edges if s == k) for k in d.boxes) <= graph.FANOUT
    collapsed = parse_dot(graph_text(module, "deep_grad", collapse="statements"))
    groups = [b for b in collapsed.boxes.values() if b.attrs["style"] == "filled" and b.attrs["shape"] == "box"]
    assert len(groups) == 2 * (layers + 1)  # each layer and the return line, forward and backward
    print(f"\n{nodes} nodes ({len(refs)} reference boxes), {len(d.edges)} edges: DOT in {seconds * 1000:.1f} ms; "
          f"collapsed: {len(collapsed.boxes)} boxes")
    if not HAVE_DOT:
        pytest.skip("Graphviz's `dot` is not installed: the DOT was checked, rendering was not")
    for label, t in (("full", text), ("collapsed", graph_text(module, "deep_grad", collapse="statements"))):
        start = time.perf_counter()
        r = subprocess.run(["dot", "-Tsvg"], input=t.encode(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        print(f"dot -Tsvg ({label}): {time.perf_counter() - start:.2f} s")
        counts = _svg_counts(r.stdout)
        assert counts["node"] == len(parse_dot(t).boxes)
