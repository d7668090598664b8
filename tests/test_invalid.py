"""Invalid specs and inputs (issue #7): each raises our own error (`SpecError`, `ShapeError`, `SignatureError`), never
a raw torch RuntimeError, an AssertionError, a KeyError or a wrong result, and the message names the block, the key,
what was expected and what came.

Field-level problems are enumerated exhaustively (every kind x field x bad value); wiring, shapes, run-time inputs
and serialized specs are drawn by Hypothesis from the valid specs of `tests.strategies`, then broken. The fuzz
properties at the end break valid cases at random: the result must be our error or a spec whose fold still agrees
with torch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
import torch
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import perceptspec as ps
from perceptspec._spec._descriptor import Descriptor, field_hints, type_name
from tests.strategies import (INDEX, MASK, NUMBER, POSITIVE_FIELDS, TINY_MODEL, WRONG_FOR_ALL, WRONG_TYPE_VALUES,
                              Case, Shape, leaf_paths, random_inputs, replace_leaf, strided_fields, valid_cases,
                              with_non_positive)


def message_of(error: BaseException) -> str:
    return str(error)


def assert_names(message: str, *parts: str) -> None:
    missing = [p for p in parts if p not in message]
    assert not missing, f"the message lacks {missing}: {message!r}"


# --- one valid descriptor of every kind -------------------------------------------------------------------------

VALID: dict[type[Descriptor], Descriptor] = {d.__class__: d for d in (
    ps.Dense(in_keys="x", out_keys="y", hidden_units=[4]),
    ps.LinearOutput(in_keys="x", out_keys="y", output_units=2, bias=ps.ConstantBias(0.0)),
    ps.StateIndependentLogStd(in_keys="x", out_keys="y", log_std_init=-0.5),
    ps.Concat(in_keys=["x", "z"], out_keys="y"),
    ps.Flatten(in_keys="x", out_keys="y", num_flatten_dims=2),
    ps.Slice(in_keys="x", out_keys="y", slice_dim=-1, slice_idx=0),
    ps.MultiIndexSlicing(in_keys="x", out_keys="y", select_dim=-1, select_idxs=[0, 1]),
    ps.RepeatToMatch(in_keys=["x", "z"], out_keys="y", repeat_at_idx=-1),
    ps.GlobalAveragePooling(in_keys="x", out_keys="y"),
    ps.MaskedGlobalPooling(in_keys=["x", "m"], out_keys="y", pooling_func="mean", pooling_dim=-2),
    ps.Correlation(in_keys=["x", "z"], out_keys="y", reduce=True),
    ps.ActionMasking(in_keys=["x", "m"], out_keys="y", num_of_actor_actions=2),
    ps.Functional(in_keys="x", out_keys="y", func="identity"),
    ps.VGGConv(in_keys="x", out_keys="y", hidden_channels=[4], use_batch_norm=True),
    ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4], hidden_units=[8]),
    ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[4]),
    ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=2, hidden_units=[4]),
    ps.StridedConv(in_keys="x", out_keys="y", hidden_channels=[4], hidden_kernels=[3], hidden_strides=[1],
                   hidden_dilations=[1], hidden_padding=[1]),
    ps.StridedConvDense(in_keys="x", out_keys="y", hidden_channels=[4], hidden_kernels=[3], hidden_strides=[1],
                        hidden_dilations=[1], hidden_padding=[1], hidden_units=[4]),
    ps.LSTM(in_keys="x", out_keys="y", hidden_size=4),
    ps.LSTMLastStep(in_keys="x", out_keys="y", hidden_size=4),
    ps.GRU(in_keys="x", out_keys="y", hidden_size=4),
    ps.GRULastStep(in_keys="x", out_keys="y", hidden_size=4),
    ps.StatefulLSTM(in_keys=["x", "h", "c"], out_keys=["y", "h_next", "c_next"], hidden_size=4),
    ps.StatefulGRU(in_keys=["x", "h", "is_init"], out_keys=["y", "h_next"], hidden_size=4),
    ps.SelfAttentionSeq(in_keys="x", out_keys="y", num_heads=2, dropout=0.1),
    ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="y", num_heads=2, kdim=3, vdim=3, dropout=0.1),
    ps.SelfAttentionConv(in_keys="x", out_keys="y", embed_dim=2, dropout=0.1),
    ps.GraphConv(in_keys=["x", "a"], out_keys="y", hidden_features=[4]),
    ps.GraphAttention(in_keys=["x", "a"], out_keys="y", hidden_features=[4], n_heads=2),
    ps.TorchModel(in_keys="x", out_keys="y", module_factory=TINY_MODEL, kwargs={"units": 2}, out_shapes=[[2]],
                  in_num_dims=2, out_num_dims=2),
    ps.Graph({"h": ps.Dense(in_keys="x", out_keys="y", hidden_units=[4])}, out_keys="y"),
    ps.Ensemble(ps.Dense(in_keys="x", out_keys="y", hidden_units=[4]), size=2),
    ps.LayerNorm(in_keys="x", out_keys="y", num_normalized_dims=2), ps.Permute(in_keys="x", out_keys="y", dims=[2, 1]),
    ps.Reshape(in_keys="x", out_keys="y", shape=[2, -1]), ps.OneHot(in_keys="x", out_keys="y", num_classes=[3, 4]),
    ps.Embedding(in_keys="x", out_keys="y", num_embeddings=5, embedding_dim=3),
    ps.ToFloat(in_keys="x", out_keys="y", scale=0.5),
    ps.TorchDefault(), ps.NormC(1.0), ps.Orthogonal(1.0), ps.XavierUniform(1.0), ps.KaimingUniform("relu"),
    ps.ConstantBias(0.0), ps.CategoricalBias([0.5, 0.5]), ps.BernoulliBias(0.5),
)}


def test_every_registered_kind_has_a_valid_example() -> None:
    from perceptspec._spec._descriptor import _kinds

    assert set(_kinds.values()) == set(VALID)


def fields_of(value: Descriptor) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)  # type: ignore[arg-type]
            if f.init}  # descriptors are dataclasses


def build(kind: type[Descriptor], fields: Mapping[str, Any]) -> Descriptor:
    if kind is ps.Graph:
        return ps.Graph(fields["blocks"], fields["out_keys"], init=fields["init"])
    return kind(**fields)


def where(value: Descriptor, field: str) -> str:
    """How a SpecError names the descriptor: `Dense(out_keys='y')`, or the kind alone (initialisers, Graphs, or when
    the out keys themselves are what is wrong)."""
    kind = type(value).__name__
    keys_from = "spec" if isinstance(value, ps.Ensemble) else "out_keys"  # (an Ensemble's keys are its member's)
    if isinstance(value, ps.Block) and not isinstance(value, ps.Graph) and field != keys_from:
        keys = list(value.out_keys)
        return f"{kind}(out_keys={keys[0]!r})" if len(keys) == 1 else f"{kind}(out_keys={keys!r})"
    return kind


def wrong_type_cases() -> Iterator[Any]:
    for kind, value in VALID.items():
        hints = field_hints(kind)
        for field in fields_of(value):
            hint = type_name(hints[field])
            assert hint in WRONG_TYPE_VALUES, f"no wrong values for a field of type {hint} ({kind.__name__}.{field})"
            for bad in (*WRONG_FOR_ALL, *WRONG_TYPE_VALUES[hint]):
                if (field, bad) == ("padding_mode", None):  # Maze's Optional[str]: None means 'zeros'
                    continue
                yield pytest.param(kind, field, bad, id=f"{kind.__name__}.{field}={bad!r}")


@pytest.mark.parametrize("kind, field, bad", list(wrong_type_cases()))
def test_wrong_field_type_is_a_spec_error_naming_block_field_expected_and_got(
        kind: type[Descriptor], field: str, bad: object) -> None:
    value = VALID[kind]
    with pytest.raises(ps.SpecError) as info:
        build(kind, {**fields_of(value), field: bad})
    message = message_of(info.value)
    assert_names(message, where(value, field), f"field '{field}'", "expected")
    assert "got" in message or type(bad).__qualname__ in message, message  # TorchModel.kwargs: "... is a Opaque"


def non_positive_cases() -> Iterator[Any]:
    for kind, fields in POSITIVE_FIELDS.items():
        for field in fields:
            for bad in (0, -1):
                yield pytest.param(kind, field, bad, id=f"{kind.__name__}.{field}={bad}")


@pytest.mark.parametrize("kind, field, bad", list(non_positive_cases()))
def test_non_positive_units_are_a_spec_error_naming_block_field_expected_and_got(
        kind: type[ps.Block], field: str, bad: int) -> None:
    value = VALID[kind]
    with pytest.raises(ps.SpecError) as info:
        build(kind, {**fields_of(value), field: with_non_positive(getattr(value, field), bad)})
    assert_names(message_of(info.value), where(value, field), f"field '{field}'", "expected", "got", str(bad))


@pytest.mark.parametrize("field, bad, problem", [
    ("in_keys", [], "Dense takes 1 key(s), got []"),
    ("in_keys", ["a.b"], "key 'a.b' contains '.'"),
    ("in_keys", [""], "a key must be a non-empty string"),
    ("in_keys", ["x", "x"], "keys repeat in ['x', 'x']"),
    ("in_keys", ["x", "z"], "Dense takes 1 key(s), got ['x', 'z']"),
    ("out_keys", ["y", "y2"], "Dense takes 1 key(s), got ['y', 'y2']"),
    ("non_lin", "swish", "field 'non_lin': expected one of relu, relu6, leaky_relu, rrelu, elu, celu, selu, gelu, silu, mish, sigmoid, log_sigmoid, hardsigmoid, tanh, hardtanh, hardswish, softplus, softsign, softshrink, hardshrink, tanhshrink, identity"),
])
def test_bad_keys_and_names_are_spec_errors(field: str, bad: object, problem: str) -> None:
    with pytest.raises(ps.SpecError) as info:
        build(ps.Dense, {**fields_of(VALID[ps.Dense]), field: bad})
    assert_names(message_of(info.value), "Dense", f"field '{field}'", problem)


# --- wiring: unknown keys, cycles, two producers, unused outputs ---------------------------------------------------

def as_graph(spec: ps.Block) -> ps.Graph:
    return spec if isinstance(spec, ps.Graph) else ps.Graph({"only": spec}, out_keys=spec.out_keys)


GHOST = "ghost"  # a name the strategies never make


@given(valid_cases())
def test_an_out_key_nothing_produces_is_a_spec_error_naming_it(case: Case) -> None:
    graph = as_graph(case.spec)
    with pytest.raises(ps.SpecError) as info:
        ps.Graph(dict(graph.blocks), [*graph.out_keys, GHOST], init=graph.init)
    assert_names(message_of(info.value), "Graph", f"out key '{GHOST}' is produced by no block", "produced keys")


@given(valid_cases(), st.data())
def test_reading_an_unknown_key_names_it(case: Case, data: st.DataObject) -> None:
    """A key nothing produces is an input of the graph: the spec is valid, but in_shapes then lacks it (a
    ShapeError naming the key and the block that reads it), or the block that fed the old key is left dead."""
    paths = leaf_paths(case.spec)
    path = data.draw(st.sampled_from(sorted(paths)))
    block = paths[path]
    index = data.draw(st.integers(0, len(block.in_keys) - 1))
    broken = dataclasses.replace(block, in_keys=tuple(GHOST if i == index else k for i, k in enumerate(block.in_keys)))
    try:
        spec = replace_leaf(case.spec, path, broken)
    except ps.SpecError as e:  # the block that produced the key it read now feeds nothing
        assert_names(message_of(e), "contributes to no out key")
        return
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(spec, case.in_shapes)
    error = info.value
    assert (error.key, error.block) == (GHOST, path), message_of(error)
    assert_names(message_of(error), f"key '{GHOST}'", f"block '{path}'", "in_shapes has no shape for this input")


@st.composite
def chains(draw: st.DrawFn) -> tuple[dict[str, ps.Block], list[str], tuple[int, int]]:
    """A chain x -> b0 -> b1 -> ... (each block a Dense, or a Graph holding one), with block i made to read the
    output of block j >= i: a cycle through blocks i..j. Returns the blocks, their names and (i, j)."""
    n = draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(("a", "b", "c", "d", "e", "f", "g", "h", "torso", "head")),
                          min_size=n, max_size=n, unique=True))
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(i, n - 1))
    blocks: dict[str, ps.Block] = {}
    for m, name in enumerate(names):
        source = f"k{j}" if m == i else ("x" if m == 0 else f"k{m - 1}")
        block: ps.Block = ps.Dense(in_keys=source, out_keys=f"k{m}", hidden_units=[2])
        if draw(st.booleans()) and not m == i == j:  # a graph around a block reading its own output is invalid
            block = ps.Graph({"inner": block}, out_keys=f"k{m}")
        blocks[name] = block
    return blocks, names, (i, j)


@given(chains())
def test_a_cycle_is_a_spec_error_naming_the_blocks_on_it(chain: tuple[dict[str, ps.Block], list[str],
                                                                       tuple[int, int]]) -> None:
    blocks, names, (i, j) = chain
    with pytest.raises(ps.SpecError) as info:
        ps.Graph(blocks, out_keys=f"k{len(names) - 1}")
    message = message_of(info.value)
    found = re.search(r"blocks form a cycle: (.*)", message)
    assert found, message
    path = re.findall(r"'([^']*)'", found.group(1))
    assert path[0] == path[-1] and set(path) == set(names[i:j + 1]), (path, names[i:j + 1])
    for a, b in zip(path, path[1:]):  # each block on the path reads the next one's output
        assert set(blocks[a].in_keys) & set(blocks[b].out_keys), (a, b)


@given(valid_cases(), st.data())
def test_two_producers_of_one_key_are_a_spec_error_naming_both_and_the_key(case: Case, data: st.DataObject) -> None:
    graph = as_graph(case.spec)
    name = data.draw(st.sampled_from(sorted(graph.blocks)))
    key = data.draw(st.sampled_from(graph.blocks[name].out_keys))
    duplicate = ps.Dense(in_keys=graph.in_keys[0], out_keys=key, hidden_units=[2])
    with pytest.raises(ps.SpecError) as info:
        ps.Graph({**graph.blocks, "twin": duplicate}, graph.out_keys)
    first, second = sorted((name, "twin"))
    assert_names(message_of(info.value), f"key '{key}' is produced by two blocks, '{first}' and '{second}'")
    if data.draw(st.booleans()):  # the list form names blocks after their first out key
        with pytest.raises(ps.SpecError) as list_info:
            ps.Graph([ps.Dense(in_keys="x", out_keys=key, hidden_units=[2]),
                      ps.Dense(in_keys="z", out_keys=key, hidden_units=[3])], out_keys=key)
        assert_names(message_of(list_info.value), f"key '{key}' is produced by two blocks")


def live_blocks(graph: ps.Graph, out_keys: Sequence[str]) -> set[str]:
    producer = {k: name for name, b in graph.blocks.items() for k in b.out_keys}
    live: set[str] = set()
    frontier = [producer[k] for k in out_keys]
    while frontier:
        name = frontier.pop()
        if name not in live:
            live.add(name)
            frontier += [producer[k] for k in graph.blocks[name].in_keys if k in producer]
    return live


@given(valid_cases(), st.data())
def test_a_block_whose_outputs_reach_no_out_key_is_a_spec_error_naming_it(case: Case, data: st.DataObject) -> None:
    graph = as_graph(case.spec)
    if data.draw(st.booleans()) or len(graph.out_keys) == 1:  # a new block nothing reads
        source = data.draw(st.sampled_from(sorted(set(graph.in_keys) | {k for b in graph.blocks.values()
                                                                          for k in b.out_keys})))
        blocks = {**graph.blocks, "dead": ps.Dense(in_keys=source, out_keys=GHOST, hidden_units=[2])}
        out_keys: list[str] = list(graph.out_keys)
        dead = {"dead"}
    else:  # an out key dropped: its producer (and what only it reads) may be left dead
        blocks = dict(graph.blocks)
        drop = data.draw(st.sampled_from(graph.out_keys))
        out_keys = [k for k in graph.out_keys if k != drop]
        dead = set(blocks) - live_blocks(graph, out_keys)
        assume(dead)
    with pytest.raises(ps.SpecError) as info:
        ps.Graph(blocks, out_keys)
    for name in dead:
        assert_names(message_of(info.value), f"block '{name}' contributes to no out key (out_keys: {out_keys})")


def test_an_unused_output_of_a_live_block_is_allowed() -> None:
    """Only whole blocks must be live: a second output nothing reads (attention weights, say) is fine."""
    spec = ps.Graph({"attn": ps.SelfAttentionSeq(in_keys="x", out_keys=["y", "weights"], num_heads=1)},
                    out_keys="y")
    assert ps.infer_shapes(spec, {"x": (3, 4)})["weights"] == (3, 3)
    assert list(ps.materialize(spec, {"x": (3, 4)})({"x": torch.zeros(3, 4)})) == ["y"]


# --- shape errors ---------------------------------------------------------------------------------------------------

def nest(block: ps.Block, names: Sequence[str]) -> tuple[ps.Block, str]:
    """`block` inside graphs named `names` (outermost first; the block itself is 'leaf'), or bare when there are
    none: the spec and the block's path."""
    if not names:
        return block, block.out_keys[0]
    spec: ps.Block = ps.Graph({"leaf": block}, out_keys=block.out_keys)
    for name in reversed(names[1:]):
        spec = ps.Graph({name: spec}, out_keys=block.out_keys)
    return ps.Graph({names[0]: spec}, out_keys=block.out_keys), ".".join([*names, "leaf"])


nestings = st.lists(st.sampled_from(("torso", "g", "latent", "policy")), max_size=2, unique=True)


def assert_shape_error(error: ps.ShapeError, path: str, kind: str, key: str, *parts: str) -> None:
    assert (error.block, error.block_type, error.key) == (path, kind, key), message_of(error)
    assert_names(message_of(error), f"block '{path}' ({kind})", f"key '{key}'", "expected", "got", *parts)


@st.composite
def concat_mismatches(draw: st.DrawFn) -> tuple[ps.Concat, dict[str, Shape], str]:
    """A Concat whose second input differs from the first in rank or in a dim other than concat_dim."""
    first = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    k = draw(st.integers(0, len(first) - 1))
    dim = draw(st.sampled_from((k - len(first), k + 1)))
    if len(first) > 1 and draw(st.booleans()):
        j = draw(st.integers(0, len(first) - 1).filter(lambda j: j != k))
        second = first[:j] + (first[j] + draw(st.integers(1, 3)),) + first[j + 1:]
    else:
        second = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple).filter(
            lambda s: len(s) != len(first)))
    shapes = {"a": first, "b": second}
    if draw(st.booleans()):
        shapes["c"] = first
    return ps.Concat(in_keys=list(shapes), out_keys="y", concat_dim=dim), shapes, "b"


@given(concat_mismatches(), nestings)
def test_concat_shape_mismatch_names_block_key_expected_and_got(
        case: tuple[ps.Concat, dict[str, Shape], str], names: list[str]) -> None:
    block, shapes, bad = case
    spec, path = nest(block, names)
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(spec, shapes)
    assert_shape_error(info.value, path, "Concat", bad, str(shapes[bad]), f"concat_dim={block.concat_dim}")


def conv_layers(fields: Mapping[str, Any], dims: int) -> list[dict[str, tuple[int, ...]]]:
    """Each layer's kernel, stride, dilation and padding per spatial dim, with Maze's defaults for None (our own
    reading of the spec, independent of the library's)."""
    n = len(fields["hidden_channels"])

    def per_dim(name: str, default: int) -> list[tuple[int, ...]]:
        values = fields.get(name) or [default] * n
        return [(v,) * dims if isinstance(v, int) else tuple(v) for v in values]

    return [dict(zip(("kernel", "stride", "dilation", "padding"), layer)) for layer in zip(
        per_dim("hidden_kernels", 0), per_dim("hidden_strides", 1), per_dim("hidden_dilations", 1),
        per_dim("hidden_padding", 0))]


def torch_conv_chain(fields: Mapping[str, Any], shape: Shape) -> tuple[Shape | None, int | None]:
    """Run plain torch convolutions on a zero input of `shape`: (output shape, None), or (None, the 1-based layer
    torch refuses)."""
    dims = fields["convolution_dimension"]
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    x = torch.zeros(1, *shape[-dims - 1:])
    for i, (layer, channels) in enumerate(zip(conv_layers(fields, dims), fields["hidden_channels"]), start=1):
        options: dict[str, Any] = {"kernel_size": layer["kernel"], "stride": layer["stride"],
                                    "dilation": layer["dilation"], "padding": layer["padding"],
                                    "padding_mode": fields.get("padding_mode") or "zeros"}
        module = conv(x.shape[1], channels, **options)
        try:
            x = module(x)
        except (RuntimeError, ValueError):
            return None, i
    return shape[:-dims - 1] + tuple(x.shape[1:]), None


@given(strided_fields(max_dims=2), st.data())
def test_conv_too_small_for_its_kernel_is_a_shape_error_exactly_when_torch_refuses(
        fields: dict[str, Any], data: st.DataObject) -> None:
    dims = fields["convolution_dimension"]
    shape = data.draw(st.tuples(st.integers(1, 2), *[st.integers(1, 5)] * dims))
    block = ps.StridedConv(in_keys="x", out_keys="y", **fields)
    expected, refused_at = torch_conv_chain(fields, shape)
    if refused_at is None:
        assert ps.infer_shapes(block, {"x": shape})["y"] == expected
        return
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(block, {"x": shape})
    assert_shape_error(info.value, "y", "StridedConv", "x", str(shape),
                       f"conv layer {refused_at} of {len(fields['hidden_channels'])}")


@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.sampled_from((ps.VGGConv, ps.VGGConvGAP)))
def test_vgg_too_small_for_its_pools_is_a_shape_error_exactly_when_torch_refuses(
        stages: int, height: int, width: int, kind: type[ps.VGGConv] | type[ps.VGGConvGAP]) -> None:
    x = torch.zeros(1, 1, height, width)
    try:
        for _ in range(stages):
            x = nn.MaxPool2d(2)(nn.Conv2d(x.shape[1], 2, 3, padding=1)(x))
        refused = False
    except RuntimeError:
        refused = True
    block = kind(in_keys="x", out_keys="y", hidden_channels=[2] * stages)
    if not refused:
        assert ps.infer_shapes(block, {"x": (1, height, width)})["y"][:3] == tuple(x.shape[1:])[:3 if kind is ps.VGGConv
                                                                                                 else 1]
        return
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(block, {"x": (1, height, width)})
    assert_shape_error(info.value, "y", kind.__name__, "x", str((1, height, width)),
                       f"height and width of at least {2 ** stages}")


@given(st.sampled_from((ps.LSTM, ps.LSTMLastStep, ps.GRU, ps.GRULastStep)),
       st.lists(st.integers(1, 5), max_size=1).map(tuple), nestings)
def test_recurrent_block_without_a_time_axis_is_a_shape_error(
        kind: type[ps.LSTM], shape: Shape, names: list[str]) -> None:
    spec, path = nest(kind(in_keys="obs", out_keys="y", hidden_size=3), names)
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(spec, {"obs": shape})
    assert_shape_error(info.value, path, kind.__name__, "obs", "(..., time, features)", "at least 2 dim(s)",
                       f"got {shape}")


# --- in_shapes ----------------------------------------------------------------------------------------------------

BAD_SHAPES: tuple[object, ...] = ((0,), (-1,), (2.5,), ("3",), (True,), None, 4, "4", (None,), ((2,),), {1: 2})


@given(valid_cases(), st.data())
def test_bad_in_shapes_are_shape_errors_naming_the_key(case: Case, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(case.in_shapes)))
    problem = data.draw(st.sampled_from(("missing", "extra", "bad")))
    shapes: dict[str, object] = dict(case.in_shapes)
    if problem == "missing":
        del shapes[key]
    elif problem == "extra":
        key = GHOST
        shapes[key] = (3,)
    else:
        shapes[key] = data.draw(st.sampled_from(BAD_SHAPES))
    with pytest.raises(ps.ShapeError) as info:
        ps.infer_shapes(case.spec, shapes)  # type: ignore[arg-type]  # deliberately wrong
    error = info.value
    assert error.key == key, message_of(error)
    expected = {"missing": "in_shapes has no shape for this input",
                "extra": "in_shapes names a key the spec does not read",
                "bad": f"expected a shape (a tuple of positive ints, without the batch dim), got {shapes.get(key)!r}"}
    assert_names(message_of(error), f"key '{key}'", expected[problem])
    if problem != "extra":  # the block that reads the key
        assert error.block is not None and f"block '{error.block}'" in message_of(error)
        assert key in leaf_paths(case.spec)[error.block].in_keys


# --- run-time inputs ----------------------------------------------------------------------------------------------

BAD_INPUTS = ("missing key", "extra key", "wrong dtype", "wrong trailing shape", "inconsistent batch dims",
              "not a tensor", "not a dict", "non-str key")


@given(valid_cases(), st.sampled_from(BAD_INPUTS), st.sampled_from(("always", "first")), st.data())
def test_bad_inputs_are_signature_errors_naming_key_expected_and_got(
        case: Case, problem: str, check: str, data: st.DataObject) -> None:
    module = ps.materialize(case.spec, case.in_shapes, seed=0, check=check)
    module.eval()
    batch = data.draw(st.sampled_from(((), (2,), (2, 3))))
    inputs: dict[Any, Any] = random_inputs(case.in_shapes, case.roles, batch, 0)
    keys = list(module.in_shapes)  # in the order the module checks them
    key = data.draw(st.sampled_from(keys))
    has_parameters = any(True for _ in module.parameters())
    expect: tuple[str | None, ...]  # key, then parts of the message
    if problem == "missing key":
        del inputs[key]
        expect = (key, "expected this key (inputs needed:", f"got keys {list(inputs)}")
    elif problem == "extra key":
        inputs[GHOST] = torch.zeros(1)
        key = GHOST
        expect = (key, f"expected only the keys {keys}", "got this key as well")
    elif problem == "wrong dtype":
        dtype = data.draw(st.sampled_from((torch.float64, torch.float16, torch.int64, torch.bool)))
        role = case.roles[key]
        assume(not (role == MASK and dtype == torch.bool) and role != NUMBER)  # a number input takes any real dtype
        assume(not (role == INDEX and not dtype.is_floating_point and dtype != torch.bool))
        inputs[key] = inputs[key].to(dtype)
        if role == INDEX:
            expect = (key, "expected an integer dtype (indices)", f"got dtype {dtype}")
        elif not has_parameters:  # no parameters pin the dtype: any floating one runs, an integer one is refused
            if dtype.is_floating_point:
                run_or_our_error(module, case, inputs, batch)
                return
            mask = " or torch.bool (a mask)" if case.roles[key] == MASK else ""
            expect = (key, f"expected a floating-point dtype{mask}", f"got dtype {dtype}")
        else:
            expect = (key, "expected dtype torch.float32 (the module's parameters')", f"got dtype {dtype}")
    elif problem == "wrong trailing shape":
        shape = case.in_shapes[key]
        assume(shape)
        index = data.draw(st.integers(0, len(shape) - 1))
        bad = shape[:index] + (shape[index] + 1,) + shape[index + 1:]
        inputs[key] = torch.zeros(*batch, *bad, dtype=inputs[key].dtype)
        expect = (key, f"expected shape (*batch, {', '.join(map(str, shape))})", f"got shape {(*batch, *bad)}")
    elif problem == "inconsistent batch dims":
        assume(len(keys) > 1)
        key = data.draw(st.sampled_from(keys[1:]))
        other = data.draw(st.sampled_from(((), (2,), (3,), (2, 3), (1, 2))).filter(lambda b: b != batch))
        inputs[key] = torch.zeros(*other, *case.in_shapes[key], dtype=inputs[key].dtype)
        expect = (key, f"expected leading batch dims {batch} like input '{keys[0]}'", f"got {other}")
    elif problem == "not a tensor":
        inputs[key] = inputs[key].tolist()  # a list, or a number for a 0-d input (a shape () with no batch)
        expect = (key, "expected a torch.Tensor", f"got {type(inputs[key]).__name__}")
    elif problem == "not a dict":
        inputs = list(inputs.values())  # type: ignore[assignment]  # deliberately wrong
        expect = (None, f"expected a dict of tensors with keys {keys}", "got list")
    else:
        inputs[3] = inputs.pop(key)
        expect = ("3", "expected str keys", "got int")
    with pytest.raises(ps.SignatureError) as info:
        module(inputs)
    error = info.value
    assert error.key == expect[0], message_of(error)
    where_ = "inputs" if expect[0] is None else f"input '{expect[0]}'"
    assert_names(message_of(error), where_, *[p for p in expect[1:] if p is not None])


def run_or_our_error(module: ps.SpecModule, case: Case, inputs: Mapping[str, torch.Tensor], batch: Shape) -> None:
    """Either our own error, or outputs of the shapes the fold promised (never a raw torch error)."""
    try:
        with torch.no_grad():
            outputs = module(dict(inputs))
    except ps.PerceptSpecError:
        return
    shapes = ps.infer_shapes(case.spec, case.in_shapes)
    for key, value in outputs.items():
        assert tuple(value.shape) == (*batch, *shapes[key]), key


def test_check_off_does_not_check() -> None:
    """check='off' trusts its caller: a wrong input is then torch's business (documented in docs/errors.md)."""
    module = ps.materialize(ps.Dense(in_keys="x", out_keys="y", hidden_units=[2]), {"x": (4,)}, check="off")
    with pytest.raises(RuntimeError):
        module({"x": torch.zeros(3)})


# --- YAML and dicts -------------------------------------------------------------------------------------------------

ran: list[object] = []


def record(*args: object) -> list[object]:
    """What a YAML python tag would call: if it ever runs, `ran` says so."""
    ran.append(args)
    return ran


TAGS = (f"!!python/object/apply:{__name__}.record ['ran']", f"!!python/name:{__name__}.record",
        "!!python/object/new:builtins.list [[1]]", f"!!python/object:{__name__}.Opaque {{}}",
        "!!python/tuple [1, 2]", "!!python/module:os")


def scalar_paths(data: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """The paths to every scalar value (and every 'type' value) in a to_dict result."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from scalar_paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from scalar_paths(v, (*path, i))
    else:
        yield path


def set_at(data: Any, path: tuple[object, ...], value: object) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


MARK = "MARK-7f3e"


@given(valid_cases(), st.sampled_from(TAGS), st.data())
def test_yaml_with_python_tags_is_a_spec_error_and_runs_nothing(case: Case, tag: str, data: st.DataObject) -> None:
    ran.clear()
    tree = ps.to_dict(case.spec)
    set_at(tree, data.draw(st.sampled_from(list(scalar_paths(tree)))), MARK)
    text = yaml.safe_dump(tree, sort_keys=False).replace(MARK, tag)
    with pytest.raises(ps.SpecError) as info:
        ps.from_yaml(text)
    assert_names(message_of(info.value), "YAML", "tag")
    assert ran == []


@given(valid_cases(), st.data())
def test_unknown_kinds_fields_and_missing_fields_are_spec_errors(case: Case, data: st.DataObject) -> None:
    tree = ps.to_dict(case.spec)
    kinds = [p for p in scalar_paths(tree) if p[-1] == "type"]
    path = data.draw(st.sampled_from(kinds))
    node: Any = tree
    for step in path[:-1]:
        node = node[step]
    problem = data.draw(st.sampled_from(("unknown kind", "unknown field", "missing field")))
    if problem == "unknown kind":
        node["type"] = "Conv9000"
        expected = ["unknown kind 'Conv9000'", "known kinds:", "Dense"]
    elif problem == "unknown field":
        node["hidden_unitz"] = [3]
        expected = [f"({node['type']})", "unknown field 'hidden_unitz'"]
    else:
        required = required_fields(node["type"])
        assume(required)
        field = data.draw(st.sampled_from(required))
        del node[field]
        expected = [f"({node['type']})", f"'{field}'"]
    for load in (ps.from_dict, lambda t: ps.from_yaml(yaml.safe_dump(t))):
        with pytest.raises(ps.SpecError) as info:
            load(tree)
        assert_names(message_of(info.value), *expected)


def required_fields(kind: str) -> list[str]:
    from perceptspec._spec._descriptor import descriptor_kind

    cls = descriptor_kind(kind)
    return [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]  # a descriptor class
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@given(valid_cases(), json_values, st.data())
def test_any_value_anywhere_in_a_spec_dict_loads_or_is_a_spec_error(case: Case, value: object,
                                                                     data: st.DataObject) -> None:
    """Fuzz: one value of a valid spec's dict replaced by any JSON value: from_dict gives a valid spec (whose round
    trip holds) or a SpecError, never a raw TypeError, KeyError, ... and never an unhashable spec."""
    tree = ps.to_dict(case.spec)
    set_at(tree, data.draw(st.sampled_from(list(scalar_paths(tree)))), value)
    try:
        spec = ps.from_dict(tree)
    except ps.SpecError:
        return
    assert hash(spec) == hash(ps.from_dict(ps.to_dict(spec)))
    if all(v == v for v in spec_floats(spec)):  # NaN is never equal to itself
        assert ps.from_dict(ps.to_dict(spec)) == spec


def spec_floats(spec: object) -> Iterator[float]:
    from tests.strategies import all_field_values

    return (v for v in all_field_values(spec) if isinstance(v, float))


# --- fuzz: no silent wrong result -----------------------------------------------------------------------------------

def assert_locates(error: ps.PerceptSpecError) -> None:
    """Our error says where: a SpecError the descriptor (or graph) and field, a ShapeError the block or key."""
    if isinstance(error, ps.ShapeError):
        assert error.block is not None or error.key is not None, message_of(error)
    elif isinstance(error, ps.SpecError):
        assert error.where and error.problems, message_of(error)


def assert_fold_matches_forward_or_our_error(spec: ps.Block, in_shapes: Mapping[str, object],
                                             roles: Mapping[str, str]) -> None:
    """Our error, or a module whose outputs have the shapes the fold promised (a TorchModel whose module returns
    other shapes than its declared out_shapes may say so at run time, with a ShapeError)."""
    try:
        shapes = ps.infer_shapes(spec, in_shapes)  # type: ignore[arg-type]  # maybe deliberately wrong
        module = ps.materialize(spec, in_shapes, seed=0)  # type: ignore[arg-type]
    except ps.PerceptSpecError as e:
        assert_locates(e)
        return
    assert ps.count_parameters(spec, in_shapes) == sum(p.numel() for p in module.parameters())  # type: ignore[arg-type]
    module.eval()
    inputs = random_inputs(module.in_shapes, roles, (2,), 0)
    try:
        with torch.no_grad():
            outputs = module(inputs)
    except ps.ShapeError as e:
        assert "returned shape" in message_of(e), e
        return
    except ps.SignatureError as e:  # indices drawn below INDEX_BOUND, beyond a changed class count: refused, rightly
        assert "expected indices in" in message_of(e), e
        return
    for key, value in outputs.items():
        assert tuple(value.shape) == (2, *shapes[key]), (key, tuple(value.shape), shapes[key])


@st.composite
def perturbed_shapes(draw: st.DrawFn, shape: Shape) -> Shape:
    how = draw(st.sampled_from(("change", "drop", "add front", "add back")))
    if how == "change" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        return shape[:i] + (draw(st.integers(1, 6).filter(lambda n: n != shape[i])),) + shape[i + 1:]
    if how == "drop" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        return shape[:i] + shape[i + 1:]
    return (draw(st.integers(1, 4)), *shape) if how == "add front" else (*shape, draw(st.integers(1, 4)))


@given(valid_cases(), st.data())
def test_any_input_shape_gives_our_error_or_a_fold_that_matches_torch(case: Case, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(case.in_shapes)))
    shapes = {**case.in_shapes, key: data.draw(perturbed_shapes(case.in_shapes[key]))}
    assert_fold_matches_forward_or_our_error(case.spec, shapes, case.roles)


INT_FIELDS = ("int", "int | None", "Sequence[int]", "int | Sequence[int]", "Sequence[int | Sequence[int]]",
              "Sequence[int | Sequence[int]] | None", "int | Sequence[int] | None")


@given(valid_cases(), st.integers(-2, 6), st.data())
def test_any_int_field_value_gives_our_error_or_a_fold_that_matches_torch(case: Case, value: int,
                                                                           data: st.DataObject) -> None:
    paths = leaf_paths(case.spec)
    path = data.draw(st.sampled_from(sorted(paths)))
    block = paths[path]
    hints = field_hints(type(block))
    fields = [f for f in fields_of(block) if type_name(hints[f]) in INT_FIELDS]
    assume(fields)
    field = data.draw(st.sampled_from(fields))
    current = getattr(block, field)
    new: object = value if not isinstance(current, tuple) or not current else \
        [value if i == len(current) - 1 else v for i, v in enumerate(current)]
    try:
        changes: dict[str, Any] = {field: new}
        spec = replace_leaf(case.spec, path, dataclasses.replace(block, **changes))
    except ps.SpecError as e:
        assert_names(message_of(e), type(block).__name__, "field '")
        return
    assert_fold_matches_forward_or_our_error(spec, case.in_shapes, case.roles)


# --- regressions found by the properties above (issue #7) -------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: ps.BernoulliBias([True]),
    lambda: ps.GraphAttention(in_keys=["x", "a"], out_keys="y", hidden_features=[2], n_heads=[True]),
    lambda: ps.MultiIndexSlicing(in_keys="x", out_keys="y", select_dim=-1, select_idxs=[True]),
    lambda: ps.TorchModel(in_keys="x", out_keys="y", module_factory=TINY_MODEL, out_shapes=[[True]]),
    lambda: ps.TorchModel(in_keys="x", out_keys="y", module_factory=TINY_MODEL, in_num_dims=[True]),
    lambda: ps.ActionMasking(in_keys=["x", "m"], out_keys="y", num_of_actor_actions=True),
    lambda: ps.SelfAttentionSeq(in_keys="x", out_keys="y", num_heads=1, dropout=False),
    lambda: ps.GraphAttention(in_keys=["x", "a"], out_keys="y", hidden_features=[2], attention_alpha=True),
    lambda: ps.Dense(in_keys="x", out_keys="y", hidden_units=b"ab"),
], ids=["BernoulliBias([True])", "GraphAttention(n_heads=[True])", "MultiIndexSlicing(select_idxs=[True])",
        "TorchModel(out_shapes=[[True]])", "TorchModel(in_num_dims=[True])",
        "ActionMasking(num_of_actor_actions=True)", "SelfAttentionSeq(dropout=False)",
        "GraphAttention(attention_alpha=True)", "Dense(hidden_units=b'ab')"])
def test_regression_bools_and_bytes_in_int_or_float_fields_are_spec_errors(make: Callable[[], object]) -> None:
    """A bool is not an int or a float (NormC(True) and Dense(hidden_units=[True]) are refused already), and bytes
    are not a list of ints; through a Union field they were accepted (and lists kept, unhashable and mutable) or
    broke an invariant check with a raw TypeError."""
    with pytest.raises(ps.SpecError, match="field"):
        make()


def test_regression_wrong_dtype_without_parameters_is_a_signature_error() -> None:
    """A spec without parameters pins no dtype, but its blocks still need floating inputs: an int64 input to
    GlobalAveragePooling raised torch's RuntimeError (mean(): could not infer output dtype)."""
    module = ps.materialize(ps.GlobalAveragePooling(in_keys="x", out_keys="y"), {"x": (2, 3, 3)}, check="always")
    with pytest.raises(ps.SignatureError, match=r"input 'x': expected .*float.*got dtype torch.int64"):
        module({"x": torch.ones(2, 3, 3, dtype=torch.int64)})


def test_regression_a_layer_norm_without_affine_does_not_hide_the_parameters_dtype() -> None:
    """Found by the thorough profile (session 5): nn.LayerNorm(elementwise_affine=False) keeps `weight` as None in
    `_parameters`; taken as the module's first parameter, it let a float64 input reach F.linear (a raw torch error)."""
    spec = ps.Graph({"norm": ps.LayerNorm(in_keys="x", out_keys="n", elementwise_affine=False, bias=False),
                     "h": ps.Dense(in_keys="x", out_keys="h", hidden_units=[2])}, out_keys=["n", "h"])
    module = ps.materialize(spec, {"x": (3,)}, check="always")
    with pytest.raises(ps.SignatureError, match=r"expected dtype torch.float32 \(the module's parameters'\)"):
        module({"x": torch.zeros(1, 3, dtype=torch.float64)})
