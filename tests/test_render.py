"""Drawings and tables (issue #5): `to_dot`/`render` of a spec, `render_models` of composed models, `summary`.

The DOT text is parsed back (a small parser for the subset the graphviz package writes) and checked structurally
against the spec's lowered program: one node per input, block and output, labels with keys, shapes, layer labels
and parameter counts, one edge per tensor read, a cluster per nested graph. No golden bytes.
"""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pytest

import perceptspec as ps
from perceptspec._fold import _render, lower, to_dot
from perceptspec._render_models import models_to_dot

ROOT = Path(__file__).resolve().parents[1]
HAVE_DOT = shutil.which("dot") is not None
NEEDS_DOT = pytest.mark.skipif(not HAVE_DOT, reason="graphviz's 'dot' program is not installed (apt-get install "
                                                    "graphviz); the .dot fallback is tested without it")
INVENTORY_ENV = "InventoryGrid"
EXAMPLES = {  # seed example -> (config, env)
    1: ("cartpole.yaml", "CartPole-v1"),
    2: ("complex.yaml", INVENTORY_ENV),
    3: ("plain_cartpole.yaml", "CartPole-v1"),
    4: ("shared_complex.yaml", INVENTORY_ENV),
}


# --- a parser for the DOT the graphviz package writes -----------------------------------------------------------------

@dataclasses.dataclass
class Cluster:
    name: str
    attrs: dict[str, str] = dataclasses.field(default_factory=dict)
    nodes: list[str] = dataclasses.field(default_factory=list)  # declared directly inside
    clusters: list[Cluster] = dataclasses.field(default_factory=list)

    def all_nodes(self) -> list[str]:
        return [*self.nodes, *(n for c in self.clusters for n in c.all_nodes())]

    def walk(self) -> Iterator[Cluster]:
        for c in self.clusters:
            yield c
            yield from c.walk()


@dataclasses.dataclass
class Dot:
    root: Cluster
    nodes: dict[str, dict[str, str]]
    edges: list[tuple[str, str, dict[str, str]]]

    def lines(self, node: str) -> list[str]:
        return label_lines(self.nodes[node]["label"])

    def find(self, *lines: str) -> list[str]:
        """The nodes whose label starts with `lines`."""
        return [n for n in self.nodes if self.lines(n)[:len(lines)] == list(lines)]

    def one(self, *lines: str) -> str:
        found = self.find(*lines)
        assert len(found) == 1, f"{len(found)} nodes labelled {lines}: {[self.lines(n) for n in self.nodes]}"
        return found[0]

    def heads(self, node: str) -> list[str]:
        return [h for t, h, _ in self.edges if t == node]

    def tails(self, node: str) -> list[str]:
        return [t for t, h, _ in self.edges if h == node]

    def cluster(self, label_start: str) -> Cluster:
        found = [c for c in self.root.walk() if c.attrs.get("label", "").startswith(label_start)]
        assert len(found) == 1, f"{len(found)} clusters labelled {label_start!r}"
        return found[0]


TOKEN = re.compile(r'\s*(?:(?P<arrow>->|--)|(?P<punct>[\[\]{}=;,])|(?P<quoted>"(?:\\.|[^"\\])*")|(?P<html><)'
                   r'|(?P<id>[^\s\[\]{}=;,"<>-]+|-?\d+(?:\.\d*)?))', re.S)


def tokens(source: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = TOKEN.match(source, pos)
        assert m, f"cannot tokenize at {source[pos:pos + 40]!r}"
        kind = m.lastgroup
        assert kind is not None
        if kind == "html":  # an HTML string: up to the matching '>'
            depth, i = 0, m.start("html")
            while True:
                depth += {"<": 1, ">": -1}.get(source[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append(("html", source[m.start("html") + 1:i - 1]))
            pos = i
            continue
        value = m.group(kind)
        out.append((kind if kind in ("quoted", "id") else value, value))
        pos = m.end()
    return out


def parse_dot(source: str) -> Dot:
    toks = tokens(source)
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    i = 0

    def value(tok: tuple[str, str]) -> str:
        kind, text = tok
        return text[1:-1].replace('\\"', '"') if kind == "quoted" else (f"<{text}>" if kind == "html" else text)

    def attrs() -> dict[str, str]:
        nonlocal i
        found: dict[str, str] = {}
        if i < len(toks) and toks[i][0] == "[":
            i += 1
            while toks[i][0] != "]":
                if toks[i][0] in (",", ";"):
                    i += 1
                    continue
                assert toks[i + 1][0] == "=", toks[i:i + 3]
                found[value(toks[i])] = value(toks[i + 2])
                i += 3
            i += 1
        return found

    def body(cluster: Cluster) -> None:
        nonlocal i
        assert toks[i][0] == "{"
        i += 1
        while toks[i][0] != "}":
            kind, text = toks[i]
            if kind == ";":
                i += 1
            elif kind == "{":  # an anonymous subgraph (rank=same): its nodes belong to the enclosing cluster
                plain = Cluster("")
                body(plain)
                cluster.nodes += plain.nodes
            elif kind == "id" and text in ("graph", "node", "edge") and toks[i + 1][0] == "[":
                i += 1
                found = attrs()
                if text == "graph":
                    cluster.attrs.update(found)
            elif kind == "id" and text == "subgraph":
                i += 1
                name = ""
                if toks[i][0] != "{":
                    name = value(toks[i])
                    i += 1
                if name.startswith("cluster"):
                    sub = Cluster(name)
                    cluster.clusters.append(sub)
                    body(sub)
                else:  # a plain subgraph (rank=same): its nodes belong to the enclosing cluster
                    plain = Cluster(name)
                    body(plain)
                    cluster.nodes += plain.nodes
                    cluster.clusters += plain.clusters
            elif i + 1 < len(toks) and toks[i + 1][0] == "=":
                cluster.attrs[value(toks[i])] = value(toks[i + 2])
                i += 3
            elif i + 1 < len(toks) and toks[i + 1][0] == "->":
                tail, head = value(toks[i]), value(toks[i + 2])
                i += 3
                edges.append((tail, head, attrs()))
            else:
                node = value(toks[i])
                i += 1
                assert node not in nodes, f"node {node} declared twice"
                nodes[node] = attrs()
                cluster.nodes.append(node)
        i += 1

    assert toks[0] == ("id", "digraph"), toks[:2]
    root = Cluster(value(toks[1]))
    i = 2
    body(root)
    assert i == len(toks), f"trailing tokens {toks[i:]}"
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes, f"edge {tail} -> {head} between undeclared nodes"
    return Dot(root, nodes, edges)


def label_lines(label: str) -> list[str]:
    """The lines of a label: an HTML table's cells without their tags, or an escString split at '\\n'."""
    if label.startswith("<") and label.endswith(">"):
        return [html.unescape(re.sub(r"<[^>]*>", "", cell)) for cell in re.findall(r"<TD>(.*?)</TD>", label)]
    return [part.replace("\\\\", "\\") for part in label.split("\\n")]


def shape_text(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def darkness(fill: str) -> int:
    return 3 * 255 - sum(int(fill[i:i + 2], 16) for i in (1, 3, 5))


# --- the structural check of a drawing against its spec --------------------------------------------------------------

def block_counts(spec: ps.Block, in_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    shapes = ps.infer_shapes(spec, in_shapes)
    return {e.path: ps.count_parameters(e.block, {k: shapes[v] for k, v in zip(e.block.in_keys, e.ins)})
            for e in lower(spec).eqns}


def check_spec_drawing(dot: Dot, spec: ps.Block, in_shapes: Mapping[str, tuple[int, ...]],
                       within: Cluster | None = None, total: int | None = None,
                       external: Mapping[str, str] | None = None) -> dict[str, str]:
    """Check the drawing of `spec` (inside cluster `within` when drawn among others; `external` names the node
    producing an input key that is not drawn as an input node); returns path -> node id."""
    program = lower(spec)
    shapes = ps.infer_shapes(spec, in_shapes)
    counts = block_counts(spec, in_shapes)
    total = sum(counts.values()) if total is None else total
    scope = set(within.all_nodes()) if within is not None else set(dot.nodes)
    ids = {}
    for eqn in program.eqns:
        (node,) = [n for n in dot.find(eqn.path) if n in scope and dot.nodes[n]["shape"] == "box"]
        ids[eqn.path] = node
        title, layer, params = dot.lines(node)
        assert layer.startswith(eqn.kind), (layer, eqn.kind)
        n = counts[eqn.path]
        share = f"{100 * n / total:.1f}%" if n >= total / 1000 else "<0.1%"
        assert params == (f"{n:,} params · {share}" if n else "no parameters"), params
        assert dot.nodes[node]["shape"] == "box"
    # every tensor a block reads is one edge labelled with its key and shape, from its producer or its input node
    producer = {**(external or {}), **{v: ids[e.path] for e in program.eqns for v in e.outs}}
    for eqn in program.eqns:
        want = Counter(v for v in eqn.ins)
        got: Counter[str] = Counter()
        for tail, head, attrs in dot.edges:
            if head == ids[eqn.path]:
                key, shape = label_lines(attrs["label"])
                assert shape == shape_text(shapes[key]), (key, shape)
                if key in producer:
                    assert tail == producer[key], f"{key} comes from {dot.lines(tail)}"
                else:  # an input node: key and shape, maybe a note below
                    assert dot.lines(tail)[:2] == [key, shape_text(shapes[key])]
                    assert dot.nodes[tail]["shape"] == "ellipse"
                got[key] += 1
        assert got == want, (eqn.path, got, want)
    # a cluster per nested graph, holding exactly its blocks
    graphs = {e.path.rsplit(".", 1)[0] for e in program.eqns if "." in e.path}
    graphs |= {g.rsplit(".", i)[0] for g in graphs for i in range(g.count(".") + 1)}
    for graph in graphs:
        (cluster,) = [c for c in (within or dot.root).walk() if c.attrs.get("label", "").startswith(f"{graph}:")]
        members = {ids[e.path] for e in program.eqns if e.path.startswith(graph + ".")}
        assert set(cluster.all_nodes()) == members
        sub = sum(counts[e.path] for e in program.eqns if e.path.startswith(graph + "."))
        assert cluster.attrs["label"].startswith(f"{graph}: {sub:,} params")
    # more parameters, darker fill
    by_count = sorted(program.eqns, key=lambda e: counts[e.path])
    fills = [darkness(dot.nodes[ids[e.path]]["fillcolor"]) for e in by_count]
    assert fills == sorted(fills)
    return ids


def check_single(dot: Dot, spec: ps.Block, in_shapes: Mapping[str, tuple[int, ...]]) -> None:
    """A drawing of one spec: its inputs, blocks and outputs, nothing else."""
    shapes = ps.infer_shapes(spec, in_shapes)
    program = lower(spec)
    ids = check_spec_drawing(dot, spec, in_shapes)
    inputs = [n for n in dot.nodes if not dot.tails(n)]
    outputs = [n for n in dot.nodes if not dot.heads(n)]
    assert sorted(dot.lines(n)[0] for n in inputs) == sorted(program.inputs)
    assert sorted(dot.lines(n)[0] for n in outputs) == sorted(program.outputs)
    assert len(dot.nodes) == len(inputs) + len(program.eqns) + len(outputs)
    producer = {v: ids[e.path] for e in program.eqns for v in e.outs}
    for node in [*inputs, *outputs]:
        key, shape = dot.lines(node)[:2]
        assert shape == shape_text(shapes[key])
        assert dot.nodes[node]["shape"] == "ellipse"
    for node in outputs:
        key = dot.lines(node)[0]
        ((tail, attrs),) = [(t, a) for t, h, a in dot.edges if h == node]
        assert tail == producer[key] and label_lines(attrs["label"]) == [key, shape_text(shapes[key])]
    assert len(dot.edges) == sum(len(e.ins) for e in program.eqns) + len(outputs)
    total = sum(block_counts(spec, in_shapes).values())
    assert dot.root.attrs["label"].endswith(f"{total:,} params")


# --- the seed examples -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def composed(example: int) -> ps.Models:
    import gymnasium as gym

    from perceptspec.examples.inventory_env import InventoryGridEnv

    config, env_name = EXAMPLES[example]
    env = InventoryGridEnv() if env_name == INVENTORY_ENV else gym.make(env_name)
    with resources.as_file(resources.files("perceptspec.examples") / config) as path:
        return ps.compose(path, env.observation_space, env.action_space)


def spec_networks(example: int) -> list[tuple[str, ps.Block, dict[str, tuple[int, ...]]]]:
    models = composed(example)
    return [(name, spec, models.in_shapes[name]) for name, spec in models.specs.items() if spec is not None]


class TestSeedExamples:
    @pytest.mark.parametrize("example", [1, 2, 4])
    def test_to_dot_of_each_network(self, example: int) -> None:
        for name, spec, in_shapes in spec_networks(example):
            check_single(parse_dot(to_dot(spec, in_shapes, name).source), spec, in_shapes)

    @pytest.mark.parametrize("example", [1, 2, 4])
    def test_render_models_draws_each_network_as_to_dot_does(self, example: int) -> None:
        drawings = models_to_dot(composed(example))
        assert list(drawings) == ["policy", "critic", "actor_critic"]
        for name, spec, in_shapes in spec_networks(example):
            check_single(parse_dot(drawings[name].source), spec, in_shapes)

    def test_example1_labels(self) -> None:
        dot = parse_dot(models_to_dot(composed(1))["policy"].source)
        assert dot.lines(dot.one("embedding")) == ["embedding", "Dense 4→16→32 relu", "624 params · 90.4%"]
        assert dot.lines(dot.one("action", "LinearOutput 32→2")) == ["action", "LinearOutput 32→2",
                                                                     "66 params · 9.6%"]
        assert dot.lines(dot.one("observation")) == ["observation", "(4,)"]
        assert dot.root.attrs["label"] == "policy: 690 params"

    def test_example2_nested_trunk_is_a_cluster(self) -> None:
        dot = parse_dot(models_to_dot(composed(2))["policy"].source)
        trunk = dot.cluster("trunk:")
        assert sorted(dot.lines(n)[0] for n in trunk.all_nodes()) == [
            "trunk.concat", "trunk.hidden", "trunk.inventory", "trunk.recurrent"]
        assert trunk.attrs["label"] == "trunk: 44,576 params (34.6%)"
        assert dot.lines(dot.one("trunk.concat"))[2] == "no parameters"
        concat_inputs = sorted(label_lines(a["label"])[0] for t, h, a in dot.edges if h == dot.one("trunk.concat"))
        assert concat_inputs == ["latent_screen", "trunk.latent_inventory"]

    def test_example3_plain_modules_are_one_box_each(self) -> None:
        drawings = models_to_dot(composed(3))
        policy = parse_dot(drawings["policy"].source)
        box = policy.one("policy")
        assert policy.lines(box) == ["policy", "PlainCartPolePolicy (plain torch module)", "690 params · 100.0%"]
        assert [policy.lines(t) for t in policy.tails(box)] == [["observation", "(4,)"]]
        assert [policy.lines(h) for h in policy.heads(box)] == [["action", "(2,)"]]
        joint = parse_dot(drawings["actor_critic"].source)
        observation = joint.one("observation")
        assert sorted(joint.lines(h)[1] for h in joint.heads(observation)) == [
            "PlainCartPoleCritic (plain torch module)", "PlainCartPolePolicy (plain torch module)"]
        assert joint.cluster("policy:").attrs["label"] == "policy: 690 params (51.2%)"
        assert joint.cluster("critic:").attrs["label"] == "critic: 657 params (48.8%)"

    def test_example4_shared_embedding_drawn_once_with_edges_into_both(self) -> None:
        models = composed(4)
        dot = parse_dot(models_to_dot(models)["actor_critic"].source)
        policy, critic = dot.cluster("policy:"), dot.cluster("critic:")
        assert set(policy.all_nodes()).isdisjoint(critic.all_nodes())
        screen = dot.one("screen")  # the embedding, once in the whole picture
        assert screen in policy.all_nodes()
        assert dot.lines(screen)[1].startswith("VGGConvDense")
        shared = [(h, a) for t, h, a in dot.edges if t == screen]
        assert len(shared) == 2
        heads = {h for h, _ in shared}
        assert {dot.lines(h)[0] for h in heads} == {"trunk.concat"}
        assert len(heads & set(policy.all_nodes())) == 1 and len(heads & set(critic.all_nodes())) == 1
        for _, attrs in shared:
            assert label_lines(attrs["label"]) == ["latent_screen", "(4, 32)"]
            assert attrs["penwidth"] == "2"  # highlighted
        inputs = sorted(dot.lines(n)[0] for n in dot.nodes if not dot.tails(n))
        assert inputs == ["observation_inventory", "observation_screen"]  # latent_screen is no input here
        outputs = sorted(dot.lines(n)[0] for n in dot.nodes if not dot.heads(n))
        assert outputs == ["action_move", "action_use", "value"]
        inventory = dot.one("observation_inventory")
        assert len(dot.heads(inventory)) == 2  # drawn once, read by both trunks
        for name, within in (("policy", policy), ("critic", critic)):
            spec = models.specs[name]
            assert spec is not None
            check_spec_drawing(dot, spec, models.in_shapes[name], within=within, total=173_597,
                               external={"latent_screen": screen} if name == "critic" else None)
        assert "latent_screen: computed once by the policy" in dot.root.attrs["label"]

    def test_example4_networks_alone_mark_the_shared_key(self) -> None:
        drawings = models_to_dot(composed(4))
        critic = parse_dot(drawings["critic"].source)
        assert critic.lines(critic.one("latent_screen")) == ["latent_screen", "(4, 32)", "from the policy"]
        policy = parse_dot(drawings["policy"].source)
        assert policy.lines(policy.one("latent_screen")) == ["latent_screen", "(4, 32)", "to the critic"]

    def test_example1_actor_critic_reads_the_observation_once(self) -> None:
        dot = parse_dot(models_to_dot(composed(1))["actor_critic"].source)
        observation = dot.one("observation")
        heads = dot.heads(observation)
        assert [dot.lines(h)[0] for h in heads] == ["embedding", "embedding"]
        assert {h in dot.cluster("policy:").nodes for h in heads} == {True, False}
        assert dot.root.attrs["label"] == "actor-critic: 1,347 params (policy 690 + critic 657)"


# --- render: files, formats, no dot, no torch -------------------------------------------------------------------------

def cartpole() -> tuple[ps.Block, dict[str, tuple[int, ...]]]:
    from perceptspec.examples.cartpole import cartpole_policy

    return cartpole_policy({"observation": (4,)}, {"action": (2,)}), {"observation": (4,)}


class TestRender:
    def test_dot_file_is_the_dot_source(self, tmp_path: Path) -> None:
        spec, shapes = cartpole()
        written = ps.render(spec, shapes, tmp_path / "sub" / "policy.dot")
        assert written == tmp_path / "sub" / "policy.dot"
        assert written.read_text() == to_dot(spec, shapes, "policy").source

    @NEEDS_DOT
    @pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
    def test_formats_by_suffix(self, tmp_path: Path, suffix: str, magic: bytes) -> None:
        spec, shapes = cartpole()
        written = ps.render(spec, shapes, tmp_path / f"policy{suffix}")
        assert written == tmp_path / f"policy{suffix}"
        assert written.read_bytes().startswith(magic)

    def test_unsupported_suffix(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"unsupported file suffix '\.jpg'.*\.svg, \.png, \.pdf, \.dot"):
            ps.render(*cartpole(), tmp_path / "policy.jpg")

    def test_without_dot_writes_dot_and_says_how_to_install(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setattr(_render, "dot_program", lambda: None)
        written = ps.render(*cartpole(), tmp_path / "policy.png")
        assert written == tmp_path / "policy.dot" and written.read_text().startswith("digraph")
        assert not (tmp_path / "policy.png").exists()
        err = capsys.readouterr().err
        assert "policy.dot" in err and "apt-get install graphviz" in err and "brew install graphviz" in err

    def test_bare_block(self) -> None:
        spec = ps.Dense(in_keys="x", out_keys="y", hidden_units=[3])
        dot = parse_dot(to_dot(spec, {"x": (2,)}).source)
        check_single(dot, spec, {"x": (2,)})
        assert dot.lines(dot.one("y", "Dense 2→3 relu")) == ["y", "Dense 2→3 relu", "9 params · 100.0%"]

    def test_keys_are_escaped(self, tmp_path: Path) -> None:
        key = 'a<b>&"c\\n:d'
        spec = ps.Graph([ps.Dense(in_keys=key, out_keys="h", hidden_units=[2]),
                         ps.LinearOutput(in_keys="h", out_keys="y<1>", output_units=1)], out_keys="y<1>")
        dot = parse_dot(to_dot(spec, {key: (3,)}).source)
        check_single(dot, spec, {key: (3,)})
        assert dot.lines(dot.one(key)) == [key, "(3,)"]
        if HAVE_DOT:
            assert ps.render(spec, {key: (3,)}, tmp_path / "odd.svg").read_text().count("<svg") == 1

    def test_deeply_nested_graphs_are_nested_clusters(self) -> None:
        inner = ps.Graph({"d": ps.Dense(in_keys="x", out_keys="h", hidden_units=[4])}, out_keys="h")
        middle = ps.Graph({"inner": inner, "f": ps.Flatten(in_keys="h", out_keys="z", num_flatten_dims=1)},
                          out_keys="z")
        spec = ps.Graph({"middle": middle, "head": ps.LinearOutput(in_keys="z", out_keys="y", output_units=2)},
                        out_keys="y")
        dot = parse_dot(to_dot(spec, {"x": (3,)}).source)
        check_single(dot, spec, {"x": (3,)})
        assert dot.cluster("middle.inner:") in dot.cluster("middle:").clusters

class TestRenderModels:
    def test_files_and_formats(self, tmp_path: Path) -> None:
        written = ps.render_models(composed(4), tmp_path, format=["dot", "svg"])
        suffix = ".svg" if HAVE_DOT else ".dot"
        assert [p.name for p in written] == ["policy.dot", f"policy{suffix}", "critic.dot", f"critic{suffix}",
                                             "actor_critic.dot", f"actor_critic{suffix}"]
        assert all(p.exists() for p in written)

    @NEEDS_DOT
    def test_png(self, tmp_path: Path) -> None:
        written = ps.render_models(composed(1), tmp_path, format="png")
        assert [p.name for p in written] == ["policy.png", "critic.png", "actor_critic.png"]
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)

    def test_unknown_format(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"unsupported format 'jpg'"):
            ps.render_models(composed(1), tmp_path, format="jpg")

    def test_without_a_critic_there_is_no_actor_critic_picture(self) -> None:
        models = dataclasses.replace(composed(1), critics={}, specs={"policy": composed(1).specs["policy"]})
        assert list(models_to_dot(models)) == ["policy"]


# --- summary ---------------------------------------------------------------------------------------------------------

class TestSummary:
    def test_torchinfo_like_table_with_nested_graph_rows(self) -> None:
        spec, shapes = composed(2).specs["policy"], composed(2).in_shapes["policy"]
        assert spec is not None
        text = ps.summary(spec, shapes)
        lines = text.splitlines()
        assert lines[0] == "=" * len(lines[0]) and lines[1].split()[:3] == ["Block", "Layer", "Inputs"]
        (trunk,) = [line for line in lines if line.startswith("trunk ")]
        assert "Graph (4 blocks)" in trunk and "(44,576)" in trunk and "(34.6%)" in trunk
        assert "observation_inventory (4, 16), latent_screen (4, 32)" in trunk and "latent (32,)" in trunk
        children = [line for line in lines if line.lstrip().startswith("trunk.")]
        assert len(children) == 4 and all(line.startswith("  trunk.") for line in children)
        assert "Total parameters: 128,988" in lines
        inputs = 4 * (4 * 3 * 64 * 64 + 4 * 16)
        assert f"Input size (per sample, float32): {inputs / 1e3:.2f} kB" in lines
        assert f"Parameter memory (float32): {4 * 128_988 / 1e3:.2f} kB" in lines

    def test_small_shares_are_not_zero(self) -> None:
        spec, shapes = composed(2).specs["critic"], composed(2).in_shapes["critic"]
        assert spec is not None
        (value,) = [line for line in ps.summary(spec, shapes).splitlines() if line.startswith("value ")]
        assert value.split()[-2:] == ["33", "<0.1%"]

    def test_a_bare_block(self) -> None:
        text = ps.summary(ps.Dense(in_keys="x", out_keys="y", hidden_units=[3]), {"x": (2,)})
        (row,) = [line for line in text.splitlines() if line.startswith("y ")]
        assert row.split() == ["y", "Dense", "2→3", "relu", "x", "(2,)", "y", "(3,)", "9", "100.0%"]
        assert "Block outputs size (per sample, float32): 12 B" in text
        assert all(line == line.rstrip() for line in text.splitlines())

    def test_parameter_free_spec(self) -> None:
        text = ps.summary(ps.Flatten(in_keys="x", out_keys="y", num_flatten_dims=2), {"x": (2, 3)})
        assert "Total parameters: 0" in text
        (row,) = [line for line in text.splitlines() if line.startswith("y ")]
        assert row.split()[-2:] == ["0", "-"]
