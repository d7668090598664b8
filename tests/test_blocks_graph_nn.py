"""Tests of the graph blocks (GraphConv, GraphAttention): folds against real forward passes, against dense-matrix
implementations written here (Maze's formulas, weights copied), isolated nodes, the compile path, initialisation,
and every error."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import perceptspec as ps
from perceptspec._torch.blocks._graph_nn import (GraphAttentionLayer, GraphAttentionModule, GraphConvLayer,
                                                 GraphConvModule)
from tests.blockcheck import check_block

KINDS: tuple[type[Any], ...] = (ps.GraphConv, ps.GraphAttention)
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "tanh": torch.tanh, "elu": F.elu, "identity": lambda t: t}

CONV_CONFIGS = [dict(hidden_features=[4]), dict(hidden_features=[5, 3], bias=[True, False], non_lins=["tanh", "elu"]),
                dict(hidden_features=[4, 4], node_self_importance=0.5, trainable_node_self_importance=True),
                dict(hidden_features=[6, 2], preprocess_adj=False)]
CONV_IDS = ["one-layer", "per-layer", "trainable-self", "normalised-adj"]
ATTENTION_CONFIGS = [dict(hidden_features=[4], n_heads=1), dict(hidden_features=[5, 3], n_heads=[2, 3]),
                     dict(hidden_features=[4, 2], n_heads=2, avg_last_head_attentions=False, non_lins="elu"),
                     dict(hidden_features=[3, 3, 2], n_heads=[3, 1, 2], attention_alpha=[0.1, 0.2, 0.5],
                          attention_dropout=0.3, non_lins=["tanh", "relu", "identity"])]
ATTENTION_IDS = ["one-head", "per-layer-heads", "concat-last", "three-layers"]
SHAPES = [(6, 3), (2, 6, 3), (2, 1, 6, 3)]
SHAPE_IDS = ["N,F", "K,N,F", "K,M,N,F"]


def make(kind: type[Any], **fields: Any) -> Any:
    return kind(in_keys=["x", "adj"], out_keys="y", **fields)


def graph_shapes(x: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {"x": x, "adj": x[:-1] + (x[-2],)}


def symmetric_adjacency(*shape: int, seed: int = 0) -> torch.Tensor:
    """A random 0/1 symmetric adjacency with an empty diagonal (..., N, N)."""
    a = (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) > 0.6).float().triu(1)
    return a + a.transpose(-2, -1)


# --- dense-matrix references, written from Maze's formulas, weights in Maze's (in, out) layout -------------------

def gcn_reference(x: torch.Tensor, adj: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor | None],
                  non_lins: list[str], s: float, preprocess: bool) -> torch.Tensor:
    adj_hat = adj.double()
    if preprocess:
        a_bar = adj_hat + s * torch.eye(adj.shape[-1], dtype=torch.float64)
        d = a_bar.sum(-1).pow(-0.5)
        d[torch.isinf(d)] = 0.0
        adj_hat = torch.diag_embed(d) @ a_bar @ torch.diag_embed(d)
    h = x.double()
    for w, b, non_lin in zip(weights, biases, non_lins):
        h = adj_hat @ (h @ w.double())
        h = ACTIVATIONS[non_lin](h if b is None else h + b.double())
    return h


def gat_reference(x: torch.Tensor, adj: torch.Tensor, layers: list[list[tuple[torch.Tensor, torch.Tensor,
                  torch.Tensor]]], alphas: list[float], averaged: list[bool], non_lins: list[str]) -> torch.Tensor:
    """layers[i][head] = (W (in, f), a1 (f, 1), a2 (f, 1)); each head computed on its own, as Maze's heads are."""
    a_bar = adj.double() + torch.eye(adj.shape[-1], dtype=torch.float64)  # Maze adds self-loops
    h_in = x.double()
    for heads, alpha, avg, non_lin in zip(layers, alphas, averaged, non_lins):
        outs = []
        for w, a1, a2 in heads:
            h = h_in @ w.double()
            e = F.leaky_relu(h @ a1.double() + (h @ a2.double()).transpose(-2, -1), alpha)
            att = torch.where(a_bar > 0, e, torch.full_like(e, -math.inf)).softmax(-1)
            outs.append(att @ h)
        h_in = ACTIVATIONS[non_lin](torch.stack(outs).mean(0) if avg else torch.cat(outs, -1))
    return h_in


def conv_module(module: ps.SpecModule) -> GraphConvModule:
    block = module.block_module("y")
    assert isinstance(block, GraphConvModule)
    return block


def attention_module(module: ps.SpecModule) -> GraphAttentionModule:
    block = module.block_module("y")
    assert isinstance(block, GraphAttentionModule)
    return block


def conv_layers(block: GraphConvModule) -> list[GraphConvLayer]:
    layers = list(block.layers)
    assert all(isinstance(layer, GraphConvLayer) for layer in layers)
    return layers  # type: ignore[return-value]  # checked just above


def conv_weights(block: GraphConvModule) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    layers = conv_layers(block)
    return ([layer.weight.detach().T for layer in layers],
            [None if layer.bias is None else layer.bias.detach() for layer in layers])


def attention_weights(block: GraphAttentionModule) -> list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    layers = []
    for layer in block.layers:
        assert isinstance(layer, GraphAttentionLayer)
        w = layer.weight.detach().view(layer.heads, layer.features, -1)
        a = layer.attention.detach()
        layers.append([(w[h].T, a[h, 0].unsqueeze(-1), a[h, 1].unsqueeze(-1)) for h in range(layer.heads)])
    return layers


class TestFoldAgainstForward:
    @pytest.mark.parametrize("fields", CONV_CONFIGS, ids=CONV_IDS)
    @pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
    def test_graph_conv(self, fields: dict[str, Any], shape: tuple[int, ...]) -> None:
        check_block(make(ps.GraphConv, **fields), graph_shapes(shape))

    @pytest.mark.parametrize("fields", ATTENTION_CONFIGS, ids=ATTENTION_IDS)
    @pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
    def test_graph_attention(self, fields: dict[str, Any], shape: tuple[int, ...]) -> None:
        check_block(make(ps.GraphAttention, **fields), graph_shapes(shape))

    @pytest.mark.parametrize("kind", KINDS)
    def test_edge_sizes(self, kind: type[Any]) -> None:
        """One node, one feature, one unit."""
        check_block(make(kind, hidden_features=[1]), graph_shapes((1, 1)))
        check_block(make(kind, hidden_features=[1, 1]), graph_shapes((3, 1, 1)))

    @pytest.mark.parametrize("kind", KINDS)
    def test_empty_batch(self, kind: type[Any]) -> None:
        check_block(make(kind, hidden_features=[3, 2]), graph_shapes((4, 3)), batches=((0,), (2, 0)))

    def test_shapes(self) -> None:
        shapes = graph_shapes((7, 5, 3))
        assert ps.infer_shapes(make(ps.GraphConv, hidden_features=[8, 4]), shapes)["y"] == (7, 5, 4)
        gat = make(ps.GraphAttention, hidden_features=[8, 4], n_heads=[2, 3])
        assert ps.infer_shapes(gat, shapes)["y"] == (7, 5, 4)
        assert ps.infer_shapes(make(ps.GraphAttention, hidden_features=[8, 4], n_heads=[2, 3],
                                    avg_last_head_attentions=False), shapes)["y"] == (7, 5, 12)

    def test_parameter_counts(self) -> None:
        shapes = graph_shapes((5, 3))
        assert ps.count_parameters(make(ps.GraphConv, hidden_features=[4, 2]), shapes) == (3 * 4 + 4) + (4 * 2 + 2)
        spec = make(ps.GraphConv, hidden_features=[4, 2], bias=False, trainable_node_self_importance=True)
        assert ps.count_parameters(spec, shapes) == 3 * 4 + 4 * 2 + 1
        # per head: W (f, in) and a1, a2 (f each); the 2nd layer reads the 2 concatenated heads of the 1st
        spec = make(ps.GraphAttention, hidden_features=[4, 2], n_heads=[2, 3])
        assert ps.count_parameters(spec, shapes) == 2 * (3 * 4 + 8) + 3 * (8 * 2 + 4)


class TestAgainstDenseReference:
    @pytest.mark.parametrize("fields", CONV_CONFIGS, ids=CONV_IDS)
    @pytest.mark.parametrize("batch", [(), (3,), (2, 2)], ids=["unbatched", "batch", "2-batch-dims"])
    def test_graph_conv(self, fields: dict[str, Any], batch: tuple[int, ...]) -> None:
        spec = make(ps.GraphConv, **fields)
        module = ps.materialize(spec, graph_shapes((6, 3)), seed=0)
        x, adj = torch.randn(*batch, 6, 3), symmetric_adjacency(*batch, 6, 6)
        if not spec.preprocess_adj:  # the input is then the normalised adjacency itself
            adj = gcn_reference_adj(adj)
        block = conv_module(module)
        weights, biases = conv_weights(block)
        s = spec.node_self_importance  # a trainable one starts there
        expected = gcn_reference(x, adj, weights, biases, list(spec.layer_non_lins), s, spec.preprocess_adj)
        torch.testing.assert_close(module({"x": x, "adj": adj})["y"], expected.float())

    def test_graph_conv_trained_self_importance(self) -> None:
        """The learned s is the one used: changing it changes the output as the reference says."""
        spec = make(ps.GraphConv, hidden_features=[4], trainable_node_self_importance=True)
        module = ps.materialize(spec, graph_shapes((5, 3)), seed=0)
        block = conv_module(module)
        assert isinstance(block.node_self_importance, torch.nn.Parameter)
        assert block.node_self_importance.item() == 1.0 and block.node_self_importance.requires_grad
        with torch.no_grad():
            block.node_self_importance.fill_(2.5)
        x, adj = torch.randn(5, 3), symmetric_adjacency(5, 5)
        weights, biases = conv_weights(block)
        expected = gcn_reference(x, adj, weights, biases, ["relu"], 2.5, True)
        torch.testing.assert_close(module({"x": x, "adj": adj})["y"], expected.float())
        out = module({"x": x, "adj": adj})["y"]
        (grad,) = torch.autograd.grad(out.square().sum(), [block.node_self_importance])
        assert torch.isfinite(grad) and grad != 0

    def test_graph_conv_fixed_self_importance_is_no_parameter(self) -> None:
        module = ps.materialize(make(ps.GraphConv, hidden_features=[4], bias=False), graph_shapes((5, 3)))
        assert list(module.state_dict()) == ["blocks.y.layers.0.weight"]

    @pytest.mark.parametrize("fields", ATTENTION_CONFIGS, ids=ATTENTION_IDS)
    @pytest.mark.parametrize("batch", [(), (3,), (2, 2)], ids=["unbatched", "batch", "2-batch-dims"])
    def test_graph_attention(self, fields: dict[str, Any], batch: tuple[int, ...]) -> None:
        spec = make(ps.GraphAttention, **fields)
        module = ps.materialize(spec, graph_shapes((6, 3)), seed=0).eval()  # eval: no attention dropout
        x, adj = torch.randn(*batch, 6, 3), symmetric_adjacency(*batch, 6, 6)
        sizes = spec.layer_sizes(3)
        expected = gat_reference(x, adj, attention_weights(attention_module(module)), list(spec.layer_alphas),
                                 [avg for *_, avg in sizes], list(spec.layer_non_lins))
        torch.testing.assert_close(module({"x": x, "adj": adj})["y"], expected.float())

    def test_graph_attention_weighted_adjacency(self) -> None:
        """Weights > 0 are edges, others are not; the diagonal is always attended."""
        spec = make(ps.GraphAttention, hidden_features=[3], n_heads=2)
        module = ps.materialize(spec, graph_shapes((5, 2)), seed=0)
        x = torch.randn(5, 2)
        weighted = torch.randn(5, 5)
        binary = (weighted > 0).float()
        binary.fill_diagonal_(1.0)
        torch.testing.assert_close(module({"x": x, "adj": weighted})["y"], module({"x": x, "adj": binary})["y"])


def gcn_reference_adj(adj: torch.Tensor) -> torch.Tensor:
    """A normalised adjacency D^-1/2 (A + I) D^-1/2, as a user of preprocess_adj=False would feed it."""
    a_bar = adj + torch.eye(adj.shape[-1])
    d = a_bar.sum(-1).rsqrt()
    return d.unsqueeze(-1) * a_bar * d.unsqueeze(-2)


class TestIsolatedNodes:
    """Nodes without edges get finite outputs and gradients, even where Maze's normalisation divides by zero."""

    @pytest.mark.parametrize("s", [0.0, 1.0, -1.0], ids=["no-self", "self", "negative-self"])
    def test_graph_conv(self, s: float) -> None:
        spec = make(ps.GraphConv, hidden_features=[4, 3], node_self_importance=s, trainable_node_self_importance=True)
        module = ps.materialize(spec, graph_shapes((5, 2)), seed=0)
        adj = symmetric_adjacency(5, 5)
        adj[:, 0] = adj[0, :] = 0.0  # node 0 is isolated
        for a in (adj, torch.zeros(5, 5)):  # one isolated node; no edges at all
            x = torch.randn(5, 2, requires_grad=True)
            out = module({"x": x, "adj": a})["y"]
            assert torch.isfinite(out).all()
            grads = torch.autograd.grad(out.sum(), [x, *module.parameters()])
            assert all(torch.isfinite(g).all() for g in grads)
        if s == 0.0:  # no edges and no self-importance: every node sees nothing, only the last bias reaches it
            bias = conv_layers(conv_module(module))[-1].bias
            assert bias is not None
            torch.testing.assert_close(out, torch.relu(bias.detach()).expand(5, 3))

    def test_graph_attention(self) -> None:
        """With no edges every node attends to itself only: each head is then node-wise W x."""
        spec = make(ps.GraphAttention, hidden_features=[4], n_heads=3, non_lins="identity")
        module = ps.materialize(spec, graph_shapes((5, 2)), seed=0)
        x = torch.randn(2, 5, 2, requires_grad=True)
        out = module({"x": x, "adj": torch.zeros(2, 5, 5)})["y"]
        assert torch.isfinite(out).all()
        grads = torch.autograd.grad(out.sum(), [x, *module.parameters()])
        assert all(torch.isfinite(g).all() for g in grads)
        layer = attention_module(module).layers[0]
        assert isinstance(layer, GraphAttentionLayer)
        per_head = F.linear(x, layer.weight).reshape(2, 5, 3, 4)
        torch.testing.assert_close(out, per_head.mean(-2))

    def test_graph_attention_negative_diagonal(self) -> None:
        """A diagonal that would mask a node from itself does not: no row of attention is ever empty."""
        module = ps.materialize(make(ps.GraphAttention, hidden_features=[2], n_heads=1), graph_shapes((3, 2)))
        out = module({"x": torch.randn(3, 2), "adj": -5 * torch.eye(3)})["y"]
        assert torch.isfinite(out).all()


class TestAdjacencyInput:
    @pytest.mark.parametrize("kind", KINDS)
    def test_bool_adjacency(self, kind: type[Any]) -> None:
        """A raw adjacency may be bool (as in Maze), and means what its 0/1 floats mean."""
        module = ps.materialize(make(kind, hidden_features=[3], init=ps.Orthogonal()), graph_shapes((5, 2)), seed=0,
                                check="always")
        x, adj = torch.randn(4, 5, 2), symmetric_adjacency(4, 5, 5)
        torch.testing.assert_close(module({"x": x, "adj": adj.bool()})["y"], module({"x": x, "adj": adj})["y"])
        module.double()
        out = module({"x": x.double(), "adj": adj.bool()})["y"]
        assert out.dtype == torch.float64

    def test_normalised_adjacency_is_weights(self) -> None:
        """Without preprocess_adj the adjacency is a weight matrix: a bool one is refused at the signature check."""
        spec = make(ps.GraphConv, hidden_features=[3], preprocess_adj=False)
        assert spec.input_roles() == ("features", "features")
        assert make(ps.GraphConv, hidden_features=[3]).input_roles() == ("features", "mask")
        module = ps.materialize(spec, graph_shapes((5, 2)))
        expected = r"input 'adj': expected dtype torch.float32 .*got dtype torch.bool"
        with pytest.raises(ps.SignatureError, match=expected):
            module({"x": torch.randn(5, 2), "adj": torch.ones(5, 5, dtype=torch.bool)})

    @pytest.mark.parametrize("kind", KINDS)
    def test_wrong_adjacency_at_run_time(self, kind: type[Any]) -> None:
        module = ps.materialize(make(kind, hidden_features=[3]), graph_shapes((5, 2)), check="always")
        with pytest.raises(ps.SignatureError, match=r"input 'adj': expected shape \(\*batch, 5, 5\), got shape"):
            module({"x": torch.randn(5, 2), "adj": torch.ones(4, 4)})


class TestTraining:
    def test_attention_dropout_only_in_training(self) -> None:
        spec = make(ps.GraphAttention, hidden_features=[8], n_heads=2, attention_dropout=0.5)
        module = ps.materialize(spec, graph_shapes((6, 3)), seed=0)
        inputs = {"x": torch.randn(4, 6, 3), "adj": symmetric_adjacency(4, 6, 6)}
        torch.manual_seed(0)
        train_a, train_b = module(inputs)["y"], module(inputs)["y"]
        assert not torch.equal(train_a, train_b)
        module.eval()
        assert torch.equal(module(inputs)["y"], module(inputs)["y"])

    @pytest.mark.parametrize("kind", KINDS)
    def test_functional_call_sees_replacement_weights(self, kind: type[Any]) -> None:
        module = ps.materialize(make(kind, hidden_features=[3]), graph_shapes((5, 2)), seed=0)
        zeros = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
        inputs = {"x": torch.randn(5, 2), "adj": symmetric_adjacency(5, 5)}
        out = torch.func.functional_call(module, zeros, (inputs,))["y"]
        assert torch.equal(out, torch.zeros(5, 3))

    # inductor imports torch.utils.mkldnn, whose class bodies call the deprecated torch.jit.script_method; that
    # DeprecationWarning comes from torch itself
    @pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
    @pytest.mark.slow  # inductor (make test-all); make test compiles once, in test_materialize
    def test_torch_compile_fullgraph_trains(self) -> None:
        torch._dynamo.reset()
        spec = ps.Graph([make(ps.GraphConv, hidden_features=[4], trainable_node_self_importance=True),
                         ps.GraphAttention(in_keys=["y", "adj"], out_keys="z", hidden_features=[3], n_heads=2)],
                        out_keys="z")
        module = ps.materialize(spec, graph_shapes((5, 2)), seed=0).eval()
        compiled = torch.compile(module, fullgraph=True)
        inputs = {"x": torch.randn(3, 5, 2), "adj": symmetric_adjacency(3, 5, 5)}
        got, expected = compiled(inputs)["z"], module(inputs)["z"]
        torch.testing.assert_close(got, expected)
        params = list(module.parameters())
        for g, e in zip(torch.autograd.grad(got.sum(), params), torch.autograd.grad(expected.sum(), params)):
            torch.testing.assert_close(g, e)


class TestInitialisation:
    def test_each_head_is_initialised_as_its_own_layer(self) -> None:
        spec = make(ps.GraphAttention, hidden_features=[3], n_heads=4, init=ps.Orthogonal())
        layer = attention_module(ps.materialize(spec, graph_shapes((5, 6)), seed=0)).layers[0]
        assert isinstance(layer, GraphAttentionLayer)
        for w in torch.split(layer.weight.detach(), 3):
            torch.testing.assert_close(w @ w.T, torch.eye(3))
        for a in layer.attention.detach():
            torch.testing.assert_close(a @ a.T, torch.eye(2))

    def test_graph_conv_init_and_bias(self) -> None:
        spec = make(ps.GraphConv, hidden_features=[4, 2], init=ps.NormC(std=0.5))
        block = conv_module(ps.materialize(spec, graph_shapes((5, 3)), seed=0))
        for layer in conv_layers(block):
            rows = layer.weight.shape[0]
            torch.testing.assert_close(layer.weight.detach().norm(dim=1), torch.full((rows,), 0.5))
            assert layer.bias is not None and torch.equal(layer.bias.detach(), torch.zeros(rows))

    @pytest.mark.parametrize("kind", KINDS)
    def test_deterministic_under_seed(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_features=[4, 3])
        first = ps.materialize(spec, graph_shapes((5, 3)), seed=7).state_dict()
        again = ps.materialize(spec, graph_shapes((5, 3)), seed=7).state_dict()
        other = ps.materialize(spec, graph_shapes((5, 3)), seed=8).state_dict()
        assert all(torch.equal(first[k], again[k]) for k in first)
        assert not all(torch.equal(first[k], other[k]) for k in first)


class TestSpec:
    def test_defaults(self) -> None:
        conv = make(ps.GraphConv, hidden_features=[8])
        assert (conv.bias, conv.non_lins, conv.node_self_importance, conv.trainable_node_self_importance,
                conv.preprocess_adj) == (True, ("relu",), 1.0, False, True)
        gat = make(ps.GraphAttention, hidden_features=[8])
        assert (gat.non_lins, gat.n_heads, gat.attention_alpha, gat.avg_last_head_attentions,
                gat.attention_dropout) == (("relu",), 8, 0.2, True, 0.0)

    def test_maze_style_values(self) -> None:
        """Maze's class-path non-linearities, lists per layer, ints for floats."""
        conv = make(ps.GraphConv, hidden_features=[8, 4], non_lins=["torch.nn.Tanh", "torch.nn.ReLU"],
                    bias=[True, False], node_self_importance=2)
        assert conv.layer_non_lins == ("tanh", "relu") and conv.layer_biases == (True, False)
        assert conv.node_self_importance == 2.0
        assert make(ps.GraphConv, hidden_features=[8, 4], non_lins="torch.nn.ELU").layer_non_lins == ("elu", "elu")
        gat = make(ps.GraphAttention, hidden_features=[8, 4], n_heads=[4, 1], attention_alpha=[0, 1],
                   attention_dropout=[0, 0.5])
        assert (gat.layer_heads, gat.layer_alphas, gat.layer_dropouts) == ((4, 1), (0.0, 1.0), (0.0, 0.5))

    @pytest.mark.parametrize("spec", [
        make(ps.GraphConv, hidden_features=[8]),
        make(ps.GraphConv, hidden_features=[8, 4], bias=[True, False], non_lins=["tanh", "elu"],
             node_self_importance=0.5, trainable_node_self_importance=True, preprocess_adj=False, init=ps.Orthogonal()),
        make(ps.GraphAttention, hidden_features=[8]),
        make(ps.GraphAttention, hidden_features=[8, 4], non_lins=["tanh", "elu"], n_heads=[4, 2],
             attention_alpha=[0.1, 0.3], avg_last_head_attentions=False, attention_dropout=[0.1, 0.0]),
    ], ids=["conv", "conv-full", "attention", "attention-full"])
    def test_round_trip(self, spec: ps.Block) -> None:
        back = ps.from_dict(ps.to_dict(spec))
        assert back == spec and hash(back) == hash(spec)
        assert ps.from_yaml(ps.to_yaml(spec)) == spec

    def test_labels(self) -> None:
        shapes = graph_shapes((5, 3))
        assert "GraphConv 3→16→8 relu" in ps.summary(make(ps.GraphConv, hidden_features=[16, 8]), shapes)
        spec = make(ps.GraphConv, hidden_features=[4], non_lins="tanh", trainable_node_self_importance=True)
        assert "GraphConv 3→4 tanh learned self-importance" in ps.summary(spec, shapes)
        spec = make(ps.GraphAttention, hidden_features=[16, 8], n_heads=[4, 2], non_lins=["elu", "tanh"])
        assert "GraphAttention 3→16×4→8×2 elu/tanh heads averaged" in ps.summary(spec, shapes)

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields, field, detail", [
        (dict(hidden_features=[]), "hidden_features", r"expected one or more positive ints, got \[\]"),
        (dict(hidden_features=[4, 0]), "hidden_features", r"expected one or more positive ints, got \[4, 0\]"),
        (dict(hidden_features=4), "hidden_features", r"expected Sequence\[int\], got 4"),
        (dict(hidden_features=[4, 2], non_lins=["relu"] * 3), "non_lins",
         r"expected one value for all layers or one per layer \(2, as hidden_features\), got \['relu', 'relu', "),
        (dict(hidden_features=[4], non_lins="swish"), "non_lins", r"expected one of relu.*got 'swish'"),
    ], ids=["empty", "zero", "not-a-list", "non_lins-length", "non_lins-name"])
    def test_invalid_common_field(self, kind: type[Any], fields: dict[str, Any], field: str, detail: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"^{kind.__name__}\(out_keys='y'\): field '{field}': {detail}"):
            make(kind, **fields)

    @pytest.mark.parametrize("kind, fields, field, detail", [
        (ps.GraphConv, dict(bias=[True, False, True]), "bias", r"expected one value for all layers or one per layer "
                                                               r"\(2, as hidden_features\), got \[True, False, True\]"),
        (ps.GraphConv, dict(bias="yes"), "bias", r"expected bool \| Sequence\[bool\], got 'yes'"),
        (ps.GraphConv, dict(node_self_importance=math.inf), "node_self_importance",
         r"expected a finite float, got inf"),
        (ps.GraphConv, dict(preprocess_adj=1), "preprocess_adj", r"expected bool, got 1"),
        (ps.GraphAttention, dict(n_heads=0), "n_heads", r"expected positive ints, got 0"),
        (ps.GraphAttention, dict(n_heads=[2, 2, 2]), "n_heads", r"expected one value for all layers or one per layer"),
        (ps.GraphAttention, dict(attention_alpha=math.nan), "attention_alpha", r"expected finite floats, got nan"),
        (ps.GraphAttention, dict(attention_dropout=[0.1, 1.0]), "attention_dropout",
         r"expected probabilities in \[0, 1\), got \(0.1, 1.0\)"),
        (ps.GraphAttention, dict(avg_last_head_attentions="no"), "avg_last_head_attentions", r"expected bool"),
    ], ids=["bias-length", "bias-type", "self-inf", "preprocess-int", "heads0", "heads-length", "alpha-nan",
            "dropout-1", "avg-str"])
    def test_invalid_field(self, kind: type[Any], fields: dict[str, Any], field: str, detail: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"^{kind.__name__}\(out_keys='y'\): field '{field}': {detail}"):
            make(kind, hidden_features=[4, 2], **fields)

    @pytest.mark.parametrize("kind", KINDS)
    def test_two_inputs_one_output(self, kind: type[Any]) -> None:
        with pytest.raises(ps.SpecError, match=rf"field 'in_keys': {kind.__name__} takes 2 key\(s\), got \['x'\]"):
            kind(in_keys="x", out_keys="y", hidden_features=[4])
        with pytest.raises(ps.SpecError, match=rf"field 'out_keys': {kind.__name__} takes 1 key\(s\)"):
            kind(in_keys=["x", "adj"], out_keys=["y", "z"], hidden_features=[4])

    def test_all_problems_at_once(self) -> None:
        with pytest.raises(ps.SpecError, match=r"(?s)field 'n_heads'.*field 'attention_dropout'"):
            make(ps.GraphAttention, hidden_features=[4], n_heads=0, attention_dropout=2.0)


class TestShapeErrors:
    @pytest.mark.parametrize("kind", KINDS)
    def test_no_node_axis(self, kind: type[Any]) -> None:
        expected = r"expected a shape \(\.\.\., N, F\) with at least 2 dim\(s\), got \(3,\)"
        with pytest.raises(ps.ShapeError, match=rf"^block 'y' \({kind.__name__}\), key 'x': {expected}$"):
            ps.infer_shapes(make(kind, hidden_features=[4]), {"x": (3,), "adj": (3, 3)})

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("x, adj, expected", [
        ((5, 3), (4, 4), (5, 5)), ((5, 3), (5, 4), (5, 5)), ((5, 3), (5,), (5, 5)), ((2, 5, 3), (3, 5, 5), (2, 5, 5)),
        ((2, 5, 3), (5, 5), (2, 5, 5)),
    ], ids=["other-N", "not-square", "rank-1", "other-leading-dims", "no-leading-dims"])
    def test_adjacency_mismatch(self, kind: type[Any], x: tuple[int, ...], adj: tuple[int, ...],
                                expected: tuple[int, ...]) -> None:
        message = (rf"^block 'y' \({kind.__name__}\), key 'adj': expected an adjacency \(\.\.\., N, N\) = "
                   rf"{re.escape(str(expected))} for the node features {re.escape(str(x))} \(N=5, the same leading "
                   rf"dims\), got {re.escape(str(adj))}$")
        for fold in (ps.infer_shapes, ps.count_parameters, ps.materialize):
            with pytest.raises(ps.ShapeError, match=message):
                fold(make(kind, hidden_features=[4]), {"x": x, "adj": adj})

    def test_mismatch_inside_a_graph(self) -> None:
        spec = ps.Graph({"embed": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[4]),
                         "gnn": ps.GraphConv(in_keys=["h", "edges"], out_keys="g", hidden_features=[4])},
                        out_keys="g")
        with pytest.raises(ps.ShapeError, match=r"block 'gnn' \(GraphConv\), key 'edges': .*got \(6, 6\)"):
            ps.count_parameters(spec, {"obs": (5, 2), "edges": (6, 6)})
