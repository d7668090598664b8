"""Scale (issue #14): every operation at 1,000 levels of nested graphs, generated sources leaving linecache with
their module, batch size 0 for every block kind, and keys of any odd spelling. Timings of large specs are
benchmarks (`python -m benchmarks.scale`), not tests."""

from __future__ import annotations

import copy
import gc
import linecache
import pickle
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import perceptspec as ps
from perceptspec._fold import lower
from perceptspec._torch import SpecModule, run_reference
from perceptspec._torch._codegen import Namespace
from tests.strategies import BLOCK_KINDS, Case, blocks_of, random_inputs

DEPTH = 1000
HAVE_DOT = shutil.which("dot") is not None


def nested(depth: int, units: int = 3) -> ps.Block:
    """Graph containing a Graph containing ... a Dense, `depth` graphs deep; reads 'x' (2,) and returns 'y'."""
    spec: ps.Block = ps.Dense(in_keys="x", out_keys="y", hidden_units=[units])
    for _ in range(depth):
        spec = ps.Graph({"g": spec}, out_keys="y")
    return spec


@pytest.fixture(scope="module")
def deep() -> ps.Block:
    return nested(DEPTH)


@pytest.fixture(autouse=True)
def recursion_limit_kept() -> Iterator[None]:
    """Nothing may leave the recursion limit raised."""
    limit = sys.getrecursionlimit()
    yield
    assert sys.getrecursionlimit() == limit


# --- 1,000 levels deep ------------------------------------------------------------------------------------------------

class TestDeepNesting:
    SHAPES = {"x": (2,)}

    def test_it_is_that_deep(self, deep: ps.Block) -> None:
        (eqn,) = lower(deep).eqns
        assert eqn.path == ".".join(["g"] * DEPTH)  # the graphs inside the outermost one, then the Dense

    def test_equal_and_hash_by_value(self, deep: ps.Block) -> None:
        again = nested(DEPTH)
        assert again is not deep and again == deep and hash(again) == hash(deep)
        assert nested(DEPTH, units=4) != deep
        assert nested(DEPTH - 1) != deep

    def test_pickle_and_copies(self, deep: ps.Block) -> None:
        for how, clone in (("pickle", pickle.loads(pickle.dumps(deep))), ("deepcopy", copy.deepcopy(deep)),
                           ("copy", copy.copy(deep))):
            assert clone == deep and hash(clone) == hash(deep), how

    def test_a_graph_used_twice_pickles_once(self) -> None:
        shared = nested(3)
        twice = ps.Graph({"inner": shared, "after": ps.Dense(in_keys="y", out_keys="y2", hidden_units=[2])}, "y2")
        spec = ps.Graph({"a": shared, "b": twice}, out_keys=["y", "y2"])
        clone = pickle.loads(pickle.dumps(spec))
        assert clone == spec and clone.blocks["a"] is clone.blocks["b"].blocks["inner"]

    def test_repr_is_the_code_that_builds_it(self, deep: ps.Block) -> None:
        lines = repr(deep).splitlines()
        assert sum(line.strip() == "Graph(" or line.endswith(": Graph(") for line in lines) == DEPTH
        assert lines[-1] == ")"
        shallower = nested(40)  # (Python's parser takes at most 200 nested parentheses)
        assert eval(repr(shallower), {"Graph": ps.Graph, "Dense": ps.Dense}) == shallower  # noqa: S307  (ours)

    def test_shape_and_parameter_folds(self, deep: ps.Block) -> None:
        assert ps.infer_shapes(deep, self.SHAPES) == {"x": (2,), "y": (3,)}
        assert ps.count_parameters(deep, self.SHAPES) == 2 * 3 + 3

    def test_summary(self, deep: ps.Block) -> None:
        rows = [line for line in ps.summary(deep, self.SHAPES).splitlines() if "Graph (1 blocks)" in line]
        assert len(rows) == DEPTH - 1  # a row per graph nested in the outermost one
        assert rows[-1].lstrip().startswith(".".join(["g"] * (DEPTH - 1)) + " ")

    def test_render(self, deep: ps.Block, tmp_path: Path) -> None:
        path = ps.render(deep, self.SHAPES, tmp_path / "deep.dot")
        source = path.read_text()
        assert source.count("subgraph cluster_") == DEPTH - 1
        assert source.count("{") == source.count("}")  # every cluster closed, inside its parent

    def test_dict_and_yaml_round_trips(self, deep: ps.Block) -> None:
        assert ps.from_dict(ps.to_dict(deep)) == deep
        text = ps.to_yaml(deep)  # nested deeper than libyaml reads: PyYAML's own loader takes over
        assert text.count("type: Graph") == DEPTH
        assert ps.from_yaml(text) == deep

    def test_materialize_forward_and_pickle_of_the_module(self, deep: ps.Block) -> None:
        module = ps.materialize(deep, self.SHAPES, seed=0)
        x = torch.randn(4, 2)
        (eqn,) = lower(deep).eqns
        linear = module.block_module(eqn.path).get_submodule("0")
        assert isinstance(linear, torch.nn.Linear)
        expected = F.relu(linear(x))
        torch.testing.assert_close(module({"x": x})["y"], expected)
        torch.testing.assert_close(run_reference(module, {"x": x})["y"], expected)
        clone = pickle.loads(pickle.dumps(module))
        torch.testing.assert_close(clone({"x": x})["y"], expected)
        assert repr(module).count("(g): BlockModules(") == DEPTH - 1



def test_a_summary_cell_holds_at_most_sixteen_keys_and_eighty_characters_of_label() -> None:
    """Every row is padded to the widest cell: a Concat of N keys listed in full would make the table N^2 long."""
    n = 40
    blocks: dict[str, ps.Block] = {f"d{i}": ps.Dense(in_keys="x", out_keys=f"h{i}", hidden_units=[2]) for i in range(n)}
    blocks["cat"] = ps.Concat(in_keys=[f"h{i}" for i in range(n)], out_keys="cat", concat_dim=-1)
    table = ps.summary(ps.Graph(blocks, out_keys="cat"), {"x": (3,)})
    (row,) = [line for line in table.splitlines() if line.startswith("cat ")]
    assert "h15 (2,), … (24 more)" in row and "h16" not in row
    assert f"Concat dim -1 {'+'.join(['2'] * 33)}…  " in row  # the label "Concat dim -1 2+2+...+2→80", cut
    assert max(map(len, table.splitlines())) < 400

# --- linecache --------------------------------------------------------------------------------------------------------

def test_generated_source_lives_in_linecache_exactly_as_long_as_its_module() -> None:
    module = ps.materialize(ps.Dense(in_keys="x", out_keys="y", hidden_units=[3]), {"x": (2,)}, check="off")
    filename = module.forward.__code__.co_filename
    assert linecache.getlines(filename) == module.code.splitlines(keepends=True)
    with pytest.raises(RuntimeError) as e:  # a shape the Linear cannot take (unchecked): raised in the forward
        module({"x": torch.zeros(1, 5)})
    frames = [f for f in traceback.extract_tb(e.value.__traceback__) if f.filename == filename]
    assert frames and "_call(" in (frames[0].line or "")  # the traceback shows the generated line
    del e  # (its traceback holds the forward's frame)
    clone = copy.deepcopy(module)  # shares the generated function
    del module
    gc.collect()
    assert filename in linecache.cache
    del clone
    gc.collect()
    assert filename not in linecache.cache


# --- the code generator's names ---------------------------------------------------------------------------------------

def test_names_made_from_many_keys_of_one_spelling_stay_unique() -> None:
    names = Namespace()
    made = [names.create(hint) for hint in ["a-b", "a.b", "a b", "a_b", "a_b_1", "a?b"] * 500]
    assert len(set(made)) == len(made)
    assert made[:6] == ["a_b", "a_b_1", "a_b_2", "a_b_3", "a_b_1_1", "a_b_4"]


# --- batch size 0 -----------------------------------------------------------------------------------------------------

KINDS = sorted(BLOCK_KINDS, key=lambda k: k.__name__)
#: examples per block kind: a thirtieth of the profile's (3 in `make test`)
PER_KIND = settings(max_examples=max(3, settings().max_examples // 30))


@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__ for k in KINDS])
def test_every_block_kind_runs_an_empty_batch(kind: type[ps.Block]) -> None:
    """Inputs of shape (0, *shape) (and (2, 0, *shape)) give outputs of shape (0, *out_shape), forward and backward,
    in training and in eval mode."""
    @PER_KIND
    @given(blocks_of(kind), st.sampled_from([(0,), (2, 0)]), st.booleans())
    def run(case: Case, batch: tuple[int, ...], training: bool) -> None:
        module = ps.materialize(case.spec, case.in_shapes, seed=0, check="always").train(training)
        shapes = ps.infer_shapes(case.spec, case.in_shapes)
        outputs = module(random_inputs(case.in_shapes, case.roles, batch, 0))
        assert {k: tuple(v.shape) for k, v in outputs.items()} == {k: (*batch, *shapes[k]) for k in outputs}
        floats = [v.sum() for v in outputs.values() if v.is_floating_point() and v.requires_grad]
        if floats:
            torch.autograd.backward(floats)

    run()


def test_masked_attention_with_weights_at_batch_0_in_eval_without_grad() -> None:
    """Regression (issue #14): torch's MultiheadAttention cannot reshape a mask of no rows, and its fast path
    returns no weights for an empty batch."""
    spec = ps.MultiHeadAttention(in_keys=["q", "k", "v", "mask"], out_keys=["out", "weights"], num_heads=2,
                                 use_key_padding_mask=True)
    module = ps.materialize(spec, {"q": (3, 4), "k": (5, 4), "v": (5, 4), "mask": (5,)}).eval()
    inputs = {"q": torch.zeros(0, 3, 4), "k": torch.zeros(0, 5, 4), "v": torch.zeros(0, 5, 4),
              "mask": torch.ones(0, 5, dtype=torch.bool)}
    with torch.no_grad():
        out = module(inputs)
    assert out["out"].shape == (0, 3, 4) and out["weights"].shape == (0, 3, 5)


# --- odd keys ---------------------------------------------------------------------------------------------------------

ODD_KEYS = ["with space", "class", "None", "self", "inputs", "__init__", "1abc", "x-1", "ünïcödé", "中文",
            "emoji🙂", "ﬁx", "fix", "tab\tkey", "new\nline", "nul\x00", "\x7f", "\u2028", "\u200b", "quote'\"",
            "back\\slash", "<b>&amp;", "{brace}", "#comment", "? q", ": c", "&anchor", "*alias", "!tag", "yes", "null",
            "~", "0", " ", "-"]


def test_keys_of_any_spelling_work_everywhere(tmp_path: Path) -> None:
    """A chain through every odd key, each also a block name and an output: YAML, summary, render, materialize,
    forward and pickle all work."""
    blocks = {}
    previous = "obs"
    for key in ODD_KEYS:
        blocks[key] = ps.Dense(in_keys=previous, out_keys=key, hidden_units=[2])
        previous = key
    spec = ps.Graph({"outer": ps.Graph(blocks, out_keys=ODD_KEYS)}, out_keys=ODD_KEYS)
    shapes = {"obs": (3,)}
    assert ps.from_yaml(ps.to_yaml(spec)) == spec
    table = ps.summary(spec, shapes)
    assert all(f"outer.{key}" in table for key in ODD_KEYS if key.isprintable())
    dot = ps.render(spec, shapes, tmp_path / "odd.dot")
    if HAVE_DOT:
        subprocess.run(["dot", "-Tsvg", "-o", str(tmp_path / "odd.svg"), str(dot)], check=True)
    module = ps.materialize(spec, shapes, seed=0)
    x = {"obs": torch.randn(2, 3)}
    outputs = module(x)
    assert list(outputs) == ODD_KEYS
    reference = run_reference(module, x)
    for key in ODD_KEYS:
        torch.testing.assert_close(outputs[key], reference[key])
    clone: SpecModule = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(clone(x)[ODD_KEYS[-1]], outputs[ODD_KEYS[-1]])


@pytest.mark.parametrize("where", ["in_keys", "out_keys", "block name"])
def test_a_lone_surrogate_in_a_key_is_refused_when_built(where: str) -> None:
    bad = "h\ud800"
    with pytest.raises(ps.SpecError, match=r"'h\\ud800' contains a lone surrogate") as e:
        if where == "block name":
            ps.Graph({bad: ps.Dense(in_keys="x", out_keys="h", hidden_units=[2])}, out_keys="h")
        elif where == "in_keys":
            ps.Dense(in_keys=bad, out_keys="h", hidden_units=[2])
        else:
            ps.Dense(in_keys="x", out_keys=bad, hidden_units=[2])
    str(e.value).encode()  # the message itself is UTF-8


def test_a_yaml_graph_that_contains_itself_is_refused() -> None:
    text = "&g {type: Graph, out_keys: [y], blocks: {inner: *g}}"
    with pytest.raises(ps.SpecError, match="a graph cannot contain itself"):
        ps.from_yaml(text)
