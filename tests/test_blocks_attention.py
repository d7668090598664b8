"""Tests of the attention blocks: SelfAttentionSeq, MultiHeadAttention and SelfAttentionConv.

Each kind: the folds against real forward passes (tests.blockcheck) for several shapes with extra leading dims, the
module against nn.MultiheadAttention / the SAGAN formula applied by hand with copied weights, the mask rules (no
NaN ever), train mode, initialisation, and one test per invalid field and per shape mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import pytest
import torch
from torch import nn

import perceptspec as ps
from perceptspec._torch import SpecModule
from tests.blockcheck import check_block

Shapes = Mapping[str, tuple[int, ...]]
T = TypeVar("T")


def _part(module: SpecModule, name: str, kind: type[T]) -> T:
    """The submodule or parameter `name` of the module's block 'y', checked to be a `kind`."""
    part = getattr(module.block_module("y"), name)
    assert isinstance(part, kind)
    return part


def _gamma(module: SpecModule) -> nn.Parameter:
    return _part(module, "gamma", nn.Parameter)


def _self_attn(module: SpecModule) -> nn.MultiheadAttention:
    return _part(module, "self_attn", nn.MultiheadAttention)


def _materialize(spec: ps.Block, in_shapes: Shapes, gamma: float = 0.7, seed: int = 0) -> SpecModule:
    """An eval-mode module whose `gamma` is set to a known value."""
    assert spec.out_keys[0] == "y"
    module = ps.materialize(spec, in_shapes, seed=seed)
    module.eval()
    with torch.no_grad():
        _gamma(module).fill_(gamma)
    return module


def _mha_like(module: SpecModule, *, add_bias_kv: bool = False, kdim: int | None = None,
              vdim: int | None = None) -> nn.MultiheadAttention:
    """A plain, sequence-first nn.MultiheadAttention holding a copy of the block's `self_attn` weights."""
    attn = _self_attn(module)
    ref = nn.MultiheadAttention(attn.embed_dim, attn.num_heads, bias=attn.in_proj_bias is not None,
                                add_bias_kv=add_bias_kv, kdim=kdim, vdim=vdim)
    ref.load_state_dict(attn.state_dict())
    return ref.eval()


def _shape_error(kind: str, key: str, message: str) -> str:
    """A pattern for the ShapeError of block 'y' of `kind` at `key` whose message contains `message`."""
    return re.escape(f"block 'y' ({kind}), key '{key}': ") + ".*" + re.escape(message)


def _run(module: SpecModule, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out: dict[str, torch.Tensor] = module(inputs)
    return out


class TestSelfAttentionSeq:
    @pytest.mark.parametrize("x_shape", [(8,), (5, 8), (3, 5, 8), (2, 3, 4, 8)])
    @pytest.mark.parametrize("with_mask", [False, True])
    @pytest.mark.parametrize("with_weights", [False, True])
    def test_fold_matches_forward(self, x_shape: tuple[int, ...], with_mask: bool, with_weights: bool) -> None:
        n = 1 if len(x_shape) == 1 else x_shape[-2]
        in_shapes = {"x": x_shape} | ({"m": (*x_shape[:-2], n, n)} if with_mask else {})
        spec = ps.SelfAttentionSeq(in_keys=list(in_shapes), out_keys=["y", "w"] if with_weights else "y", num_heads=2)
        check_block(spec, in_shapes)
        shapes = ps.infer_shapes(spec, in_shapes)
        assert shapes["y"] == x_shape
        if with_weights:
            assert shapes["w"] == (*x_shape[:-2], n, n)

    @pytest.mark.parametrize("options", [dict(bias=False), dict(add_input_to_output=False), dict(dropout=0.3),
                                         dict(num_heads=1), dict(num_heads=8)])
    def test_options(self, options: dict[str, object]) -> None:
        spec = ps.SelfAttentionSeq(in_keys="x", out_keys="y", **{"num_heads": 4, **options})  # type: ignore[arg-type]
        check_block(spec, {"x": (6, 8)})

    @pytest.mark.parametrize("bias", [True, False])
    def test_parameter_count_is_nn_multihead_attention_plus_gamma(self, bias: bool) -> None:
        spec = ps.SelfAttentionSeq(in_keys="x", out_keys="y", num_heads=5, bias=bias)
        expected = sum(p.numel() for p in nn.MultiheadAttention(10, 5, bias=bias).parameters()) + 1
        assert ps.count_parameters(spec, {"x": (7, 10)}) == expected

    def test_against_nn_multihead_attention(self) -> None:
        spec = ps.SelfAttentionSeq(in_keys=["x", "m"], out_keys=["y", "w"], num_heads=2)
        module = _materialize(spec, {"x": (3, 5, 8), "m": (3, 5, 5)})
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4, 3, 5, 8, generator=g)
        mask = torch.rand(4, 3, 5, 5, generator=g) > 0.5
        out = _run(module, {"x": x, "m": mask})
        ref = _mha_like(module)
        flat = x.reshape(12, 5, 8).transpose(0, 1)  # (L, batch, E)
        allowed = mask.reshape(12, 5, 5).clone()
        allowed[..., 0] = True  # Maze: key 0 is always attendable
        with torch.no_grad():
            attended, weights = ref(flat, flat, flat, attn_mask=~allowed.repeat_interleave(2, dim=0))
        expected = 0.7 * attended.transpose(0, 1).reshape(x.shape) + x
        torch.testing.assert_close(out["y"], expected)
        torch.testing.assert_close(out["w"], weights.reshape(4, 3, 5, 5))

    def test_gamma_starts_as_in_maze(self) -> None:
        """Maze (0.1.0 on) draws gamma from N(0, 1) clamped to [-1, 1]: the block does not start as the identity
        (Maze's first commit, and SAGAN, started at 0). Seeded, the draw is the block's own."""
        spec = ps.SelfAttentionSeq(in_keys="x", out_keys="y", num_heads=2)
        gammas = [_gamma(ps.materialize(spec, {"x": (5, 8)}, seed=s)).item() for s in range(20)]
        assert all(-1.0 <= g <= 1.0 for g in gammas) and len(set(gammas)) > 10
        assert _gamma(ps.materialize(spec, {"x": (5, 8)}, seed=3)).item() == gammas[3]
        module = ps.materialize(spec, {"x": (5, 8)}, seed=0)
        x = torch.randn(3, 5, 8)
        with torch.no_grad():
            _gamma(module).zero_()
        assert torch.equal(_run(module, {"x": x})["y"], x)  # gamma 0: the input passes through

    def test_fully_masked_row_attends_to_the_first_key(self) -> None:
        spec = ps.SelfAttentionSeq(in_keys=["x", "m"], out_keys=["y", "w"], num_heads=2)
        module = _materialize(spec, {"x": (4, 8), "m": (4, 4)})
        mask = torch.ones(2, 4, 4, dtype=torch.bool)
        mask[0, 1] = False  # query 1 of sample 0 may attend to nothing
        mask[1, :, 0] = False  # in sample 1 nobody may attend to key 0
        out = _run(module, {"x": torch.randn(2, 4, 8), "m": mask})
        assert not out["y"].isnan().any()
        torch.testing.assert_close(out["w"][0, 1], torch.tensor([1.0, 0.0, 0.0, 0.0]))
        assert (out["w"][1, :, 0] > 0).all()  # Maze's rule: key 0 stays attendable anyway

    def test_float_mask_equals_bool_mask(self) -> None:
        spec = ps.SelfAttentionSeq(in_keys=["x", "m"], out_keys="y", num_heads=2)
        module = _materialize(spec, {"x": (4, 8), "m": (4, 4)})
        x, mask = torch.randn(3, 4, 8), torch.rand(3, 4, 4) > 0.5
        assert torch.equal(_run(module, {"x": x, "m": mask})["y"], _run(module, {"x": x, "m": mask.float()})["y"])

    def test_train_mode_dropout(self) -> None:
        spec = ps.SelfAttentionSeq(in_keys="x", out_keys=["y", "w"], num_heads=2, dropout=0.5)
        module = _materialize(spec, {"x": (2, 6, 8)})
        x = torch.randn(3, 2, 6, 8)
        evaluated = _run(module, {"x": x})
        module.train()
        trained = _run(module, {"x": x})
        assert trained["y"].shape == (3, 2, 6, 8) and trained["w"].shape == (3, 2, 6, 6)
        assert not torch.allclose(trained["w"], evaluated["w"])
        module.eval()
        assert torch.equal(_run(module, {"x": x})["y"], evaluated["y"])

    def test_state_dict_uses_maze_names(self) -> None:
        spec = ps.SelfAttentionSeq(in_keys="x", out_keys="y", num_heads=2)
        keys = set(ps.materialize(spec, {"x": (5, 8)}).block_module("y").state_dict())
        assert keys == {"gamma", "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                        "self_attn.out_proj.bias"}

    def test_mask_is_a_mask_input_in_a_graph(self) -> None:
        graph = ps.Graph([ps.SelfAttentionSeq(in_keys=["x", "m"], out_keys="h", num_heads=2),
                          ps.Dense(in_keys="h", out_keys="z", hidden_units=[3])], out_keys="z")
        module = ps.materialize(graph, {"x": (5, 8), "m": (5, 5)}, seed=0, check="always")
        out = module({"x": torch.randn(2, 5, 8), "m": torch.ones(2, 5, 5, dtype=torch.bool)})
        assert out["z"].shape == (2, 5, 3)

    @pytest.mark.parametrize("fields, message", [
        (dict(num_heads=0), "field 'num_heads': expected a positive int, got 0"),
        (dict(num_heads=2, dropout=1.0), "field 'dropout': expected None or a probability in [0, 1), got 1.0"),
        (dict(num_heads=2, dropout=-0.1), "field 'dropout': expected None or a probability in [0, 1), got -0.1"),
        (dict(num_heads="2"), "field 'num_heads': expected int"),
        (dict(num_heads=2, bias=1), "field 'bias': expected bool"),
        (dict(num_heads=2, in_keys=["x", "m", "n"]),
         "field 'in_keys': SelfAttentionSeq takes 1 key (input) or 2 (input, mask), got ['x', 'm', 'n']"),
        (dict(num_heads=2, out_keys=["y", "w", "v"]),
         "field 'out_keys': SelfAttentionSeq takes 1 key (output) or 2 (output, attention weights)"),
    ])
    def test_invalid_field(self, fields: dict[str, object], message: str) -> None:
        kwargs = {"in_keys": "x", "out_keys": "y", **fields}
        with pytest.raises(ps.SpecError, match=r"SelfAttentionSeq\(out_keys=.*" + re.escape(message)):
            ps.SelfAttentionSeq(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("in_shapes, key, message", [
        ({"x": ()}, "x", "expected a shape (..., N, E) with at least 1 dim(s), got ()"),
        ({"x": (5, 9)}, "x", "divisible by num_heads=2, got (5, 9)"),
        ({"x": (5, 8), "m": (5, 4)}, "m",
         "expected an attention mask (..., N, N) for the input (5, 8) of shape (5, 5), got (5, 4)"),
        ({"x": (3, 5, 8), "m": (5, 5)}, "m", "of shape (3, 5, 5), got (5, 5)"),
    ])
    def test_shape_mismatch(self, in_shapes: Shapes, key: str, message: str) -> None:
        spec = ps.SelfAttentionSeq(in_keys=list(in_shapes), out_keys="y", num_heads=2)
        with pytest.raises(ps.ShapeError, match=_shape_error("SelfAttentionSeq", key, message)):
            ps.infer_shapes(spec, in_shapes)


MHA_CASES: list[tuple[dict[str, object], dict[str, tuple[int, ...]]]] = [
    ({}, {"q": (6, 8), "k": (5, 8), "v": (5, 8)}),
    ({}, {"q": (8,), "k": (8,), "v": (8,)}),
    ({}, {"q": (8,), "k": (5, 8), "v": (5, 8)}),  # one query vector attending to a sequence
    ({"kdim": 3, "vdim": 4}, {"q": (2, 6, 8), "k": (2, 5, 3), "v": (2, 5, 4)}),
    ({"add_bias_kv": True, "add_zero_attn": True}, {"q": (6, 8), "k": (5, 8), "v": (5, 8)}),
    ({"bias": False, "add_input_to_output": False}, {"q": (2, 3, 6, 8), "k": (2, 3, 5, 8), "v": (2, 3, 5, 8)}),
    ({"dropout": 0.2}, {"q": (6, 8), "k": (5, 8), "v": (5, 8), "a": (6, 5)}),
    ({"use_key_padding_mask": True}, {"q": (6, 8), "k": (5, 8), "v": (5, 8), "p": (5,)}),
    ({"use_key_padding_mask": True, "kdim": 3, "add_zero_attn": True},
     {"q": (2, 6, 8), "k": (2, 5, 3), "v": (2, 5, 8), "a": (2, 6, 5), "p": (2, 5)}),
    ({"use_key_padding_mask": True}, {"q": (8,), "k": (8,), "v": (8,), "p": (1,)}),
]


class TestMultiHeadAttention:
    @pytest.mark.parametrize("fields, in_shapes", MHA_CASES)
    @pytest.mark.parametrize("with_weights", [False, True])
    def test_fold_matches_forward(self, fields: dict[str, object], in_shapes: Shapes, with_weights: bool) -> None:
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"] if with_weights else "y",
                                     **{"num_heads": 2, **fields})  # type: ignore[arg-type]
        check_block(spec, in_shapes)
        assert ps.infer_shapes(spec, in_shapes)["y"] == in_shapes["q"]

    @pytest.mark.parametrize("fields, in_shapes", MHA_CASES)
    def test_parameter_count_is_nn_multihead_attention_plus_gamma(self, fields: dict[str, object],
                                                                  in_shapes: Shapes) -> None:
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys="y",
                                     **{"num_heads": 2, **fields})  # type: ignore[arg-type]
        torch_fields: dict[str, Any] = {k: v for k, v in fields.items()
                                        if k in ("bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim")}
        plain = nn.MultiheadAttention(8, 2, **torch_fields)
        assert ps.count_parameters(spec, in_shapes) == sum(p.numel() for p in plain.parameters()) + 1

    def test_weights_count_the_extra_keys(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 8), "v": (5, 8)}
        for extra, fields in enumerate([{}, {"add_zero_attn": True}, {"add_zero_attn": True, "add_bias_kv": True}]):
            spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2,
                                         **fields)  # type: ignore[arg-type]
            assert ps.infer_shapes(spec, in_shapes)["w"] == (6, 5 + extra)

    def test_against_nn_multihead_attention(self) -> None:
        in_shapes = {"q": (3, 6, 8), "k": (3, 5, 3), "v": (3, 5, 4), "a": (3, 6, 5), "p": (3, 5)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2, kdim=3, vdim=4,
                                     add_bias_kv=True, use_key_padding_mask=True)
        module = _materialize(spec, in_shapes)
        g = torch.Generator().manual_seed(2)
        inputs = {k: torch.randn(4, *s, generator=g) for k, s in list(in_shapes.items())[:3]}
        inputs |= {k: torch.rand(4, *in_shapes[k], generator=g) > 0.4 for k in ("a", "p")}
        inputs["p"][0, 1] = False  # sample 0, leading index 1: every key is padding (bias_k is still there)
        out = _run(module, inputs)
        ref = _mha_like(module, add_bias_kv=True, kdim=3, vdim=4)
        q, k, v = (inputs[n].reshape(12, *in_shapes[n][1:]).transpose(0, 1) for n in "qkv")
        allowed = inputs["a"].reshape(12, 6, 5).clone()
        allowed[..., 0] = True  # Maze: key 0 is always attendable under an attention mask
        with torch.no_grad():
            attended, weights = ref(q, k, v, attn_mask=~allowed.repeat_interleave(2, dim=0),
                                    key_padding_mask=~inputs["p"].reshape(12, 5))
        expected = 0.7 * attended.transpose(0, 1).reshape(4, 3, 6, 8) + inputs["q"]
        torch.testing.assert_close(out["y"], expected)
        torch.testing.assert_close(out["w"], weights.reshape(4, 3, 6, 6))
        assert not out["y"].isnan().any()

    def test_key_padding_mask_alone_keeps_maze_semantics(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 8), "v": (5, 8), "p": (5,)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2,
                                     use_key_padding_mask=True)
        module = _materialize(spec, in_shapes)
        inputs = {k: torch.randn(3, *s) for k, s in in_shapes.items()}
        inputs["p"] = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
        out = _run(module, inputs)
        ref = _mha_like(module)
        q, k, v = (inputs[n].transpose(0, 1) for n in "qkv")
        with torch.no_grad():
            attended, weights = ref(q, k, v, key_padding_mask=~inputs["p"])
        torch.testing.assert_close(out["y"], 0.7 * attended.transpose(0, 1) + inputs["q"])
        torch.testing.assert_close(out["w"], weights)
        assert (out["w"][0, :, 0] == 0).all()  # unlike an attention mask, padding at key 0 stays padding

    def test_all_padding_attends_to_the_first_key(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 8), "v": (5, 8), "a": (6, 5), "p": (5,)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2,
                                     use_key_padding_mask=True)
        module = _materialize(spec, in_shapes)
        inputs = {k: torch.randn(2, *s) for k, s in list(in_shapes.items())[:3]}
        inputs["a"] = torch.ones(2, 6, 5, dtype=torch.bool)
        inputs["a"][1, :, 4] = False
        inputs["p"] = torch.tensor([[False] * 5, [True, False, False, False, True]])  # sample 1: attn & padding
        out = _run(module, inputs)
        assert not out["y"].isnan().any()
        torch.testing.assert_close(out["w"], torch.eye(5)[0].expand(2, 6, 5))

    def test_all_padding_with_a_zero_key_attends_to_it(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 8), "v": (5, 8), "p": (5,)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2,
                                     use_key_padding_mask=True, add_zero_attn=True)
        module = _materialize(spec, in_shapes)
        inputs = {k: torch.randn(2, *s) for k, s in list(in_shapes.items())[:3]}
        inputs["p"] = torch.zeros(2, 5, dtype=torch.bool)
        out = _run(module, inputs)
        torch.testing.assert_close(out["w"], torch.eye(6)[5].expand(2, 6, 6))
        bias = _self_attn(module).out_proj.bias  # a zero key and value: attention gives 0 + bias
        torch.testing.assert_close(out["y"], 0.7 * bias.expand(2, 6, 8) + inputs["q"])

    def test_train_mode_dropout(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 8), "v": (5, 8), "p": (5,)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys=["y", "w"], num_heads=2, dropout=0.5,
                                     use_key_padding_mask=True)
        module = _materialize(spec, in_shapes).train()
        inputs = {k: torch.randn(2, 3, *s) for k, s in list(in_shapes.items())[:3]}
        inputs["p"] = torch.ones(2, 3, 5, dtype=torch.bool)
        out = _run(module, inputs)
        assert out["y"].shape == (2, 3, 6, 8) and out["w"].shape == (2, 3, 6, 5)
        assert (out["w"] == 0).any()

    def test_state_dict_uses_maze_names(self) -> None:
        in_shapes = {"q": (6, 8), "k": (5, 3), "v": (5, 8)}
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys="y", num_heads=2, kdim=3, add_bias_kv=True)
        keys = set(ps.materialize(spec, in_shapes).block_module("y").state_dict())
        assert keys == {"gamma", "self_attn.q_proj_weight", "self_attn.k_proj_weight", "self_attn.v_proj_weight",
                        "self_attn.in_proj_bias", "self_attn.bias_k", "self_attn.bias_v", "self_attn.out_proj.weight",
                        "self_attn.out_proj.bias"}

    def test_input_roles(self) -> None:
        keys = ["q", "k", "v", "a", "p"]
        assert ps.MultiHeadAttention(in_keys=keys, out_keys="y", num_heads=1, use_key_padding_mask=True
                                     ).input_roles() == ("features",) * 3 + ("mask",) * 2
        assert ps.MultiHeadAttention(in_keys=keys[:4], out_keys="y", num_heads=1).mask_kinds == ("attn",)
        assert ps.MultiHeadAttention(in_keys=keys[:4], out_keys="y", num_heads=1,
                                     use_key_padding_mask=True).mask_kinds == ("padding",)

    @pytest.mark.parametrize("fields, message", [
        (dict(num_heads=-1), "field 'num_heads': expected a positive int, got -1"),
        (dict(kdim=0), "field 'kdim': expected a positive int, got 0"),
        (dict(vdim=-2), "field 'vdim': expected a positive int, got -2"),
        (dict(dropout=1.5), "field 'dropout': expected None or a probability in [0, 1), got 1.5"),
        (dict(add_zero_attn="yes"), "field 'add_zero_attn': expected bool"),
        (dict(in_keys=["q", "k"]), "field 'in_keys': MultiHeadAttention takes 3 keys (query, key, value)"),
        (dict(in_keys=list("qkvabc")), "field 'in_keys': MultiHeadAttention takes 3 keys (query, key, value)"),
        (dict(in_keys=list("qkvap")), "field 'use_key_padding_mask': 5 in_keys name an attention mask and a key "
                                      "padding mask, so use_key_padding_mask must be True"),
        (dict(out_keys=["y", "w", "z"]), "field 'out_keys': MultiHeadAttention takes 1 key (output) or 2"),
    ])
    def test_invalid_field(self, fields: dict[str, object], message: str) -> None:
        kwargs = {"in_keys": ["q", "k", "v"], "out_keys": "y", "num_heads": 2, **fields}
        with pytest.raises(ps.SpecError, match=r"MultiHeadAttention\(out_keys=.*" + re.escape(message)):
            ps.MultiHeadAttention(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("fields, in_shapes, key, message", [
        ({}, {"q": (6, 9), "k": (5, 9), "v": (5, 9)}, "q",
         "expected a shape (..., L, E) whose embedding dim E (the last dim) is divisible by num_heads=2, got (6, 9)"),
        ({}, {"q": (6, 8), "k": (5, 4), "v": (5, 8)}, "k",
         "expected a key (..., S, 8) (kdim=None: the query's E) with the query's leading dims (), got (5, 4)"),
        ({"kdim": 3}, {"q": (6, 8), "k": (5, 4), "v": (5, 8)}, "k",
         "expected a key (..., S, 3) (kdim) with the query's leading dims (), got (5, 4)"),
        ({}, {"q": (2, 6, 8), "k": (3, 5, 8), "v": (3, 5, 8)}, "k",
         "expected a key (..., S, 8) (kdim=None: the query's E) with the query's leading dims (2,), got (3, 5, 8)"),
        ({}, {"q": (6, 8), "k": (5, 8), "v": (4, 8)}, "v",
         "expected a value (..., S, 8) (vdim=None: the query's E) with the query's leading dims () and the key's "
         "S=5, got (4, 8)"),
        ({"vdim": 4}, {"q": (6, 8), "k": (5, 8), "v": (5, 8)}, "v", "expected a value (..., S, 4) (vdim)"),
        ({}, {"q": (6, 8), "k": (5, 8), "v": (5, 8), "a": (5, 6)}, "a",
         "expected an attention mask (..., L, S) of shape (6, 5), got (5, 6)"),
        ({"use_key_padding_mask": True}, {"q": (6, 8), "k": (5, 8), "v": (5, 8), "p": (6,)}, "p",
         "expected a key padding mask (..., S) of shape (5,), got (6,)"),
        ({"use_key_padding_mask": True}, {"q": (6, 8), "k": (5, 8), "v": (5, 8), "a": (6, 5), "p": (6, 5)}, "p",
         "expected a key padding mask (..., S) of shape (5,), got (6, 5)"),
        ({}, {"q": (), "k": (5, 8), "v": (5, 8)}, "q", "expected a shape (..., L, E) with at least 1 dim(s), got ()"),
    ])
    def test_shape_mismatch(self, fields: dict[str, object], in_shapes: Shapes, key: str, message: str) -> None:
        spec = ps.MultiHeadAttention(in_keys=list(in_shapes), out_keys="y",
                                     **{"num_heads": 2, **fields})  # type: ignore[arg-type]
        with pytest.raises(ps.ShapeError, match=_shape_error("MultiHeadAttention", key, message)):
            ps.infer_shapes(spec, in_shapes)


def _sagan(module: SpecModule, x: torch.Tensor, allowed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """SAGAN self-attention on (B, C, H, W) written out with block 'y''s 1x1 weights: (output, attention map)."""
    flat = x.flatten(2)  # (B, C, P)

    def project(conv: nn.Conv2d) -> torch.Tensor:
        bias = 0.0 if conv.bias is None else conv.bias[:, None]
        return torch.einsum("oc,bcp->bop", conv.weight[:, :, 0, 0], flat) + bias

    query_conv, key_conv, value_conv = (_part(module, f"{n}_conv", nn.Conv2d) for n in ("query", "key", "value"))
    energy = torch.einsum("bei,bej->bij", project(query_conv), project(key_conv))
    if allowed is not None:
        energy = energy.masked_fill(~allowed, float("-inf"))
    attention = energy.softmax(dim=-1)
    out = torch.einsum("bcj,bij->bci", project(value_conv), attention)
    return _gamma(module) * out.reshape(x.shape) + x, attention


class TestSelfAttentionConv:
    @pytest.mark.parametrize("x_shape", [(4, 3, 5), (2, 4, 3, 5), (1, 2, 6, 1, 1)])
    @pytest.mark.parametrize("with_mask", [False, True])
    @pytest.mark.parametrize("with_map", [False, True])
    def test_fold_matches_forward(self, x_shape: tuple[int, ...], with_mask: bool, with_map: bool) -> None:
        p = x_shape[-1] * x_shape[-2]
        in_shapes = {"x": x_shape} | ({"m": (*x_shape[:-3], p, p)} if with_mask else {})
        spec = ps.SelfAttentionConv(in_keys=list(in_shapes), out_keys=["y", "w"] if with_map else "y", embed_dim=2)
        check_block(spec, in_shapes)
        shapes = ps.infer_shapes(spec, in_shapes)
        assert shapes["y"] == x_shape
        if with_map:
            assert shapes["w"] == (*x_shape[:-3], p, p)

    @pytest.mark.parametrize("options", [dict(bias=False), dict(add_input_to_output=False), dict(dropout=0.5),
                                         dict(embed_dim=7)])
    def test_options(self, options: dict[str, object]) -> None:
        spec = ps.SelfAttentionConv(in_keys="x", out_keys="y", **{"embed_dim": 2, **options})  # type: ignore[arg-type]
        check_block(spec, {"x": (4, 3, 5)})

    @pytest.mark.parametrize("bias", [True, False])
    def test_parameter_count(self, bias: bool) -> None:
        spec = ps.SelfAttentionConv(in_keys="x", out_keys="y", embed_dim=2, bias=bias)
        convs = [nn.Conv2d(16, 2, 1, bias=bias), nn.Conv2d(16, 2, 1, bias=bias), nn.Conv2d(16, 16, 1, bias=bias)]
        assert ps.count_parameters(spec, {"x": (16, 5, 5)}) == sum(p.numel() for c in convs for p in c.parameters()) + 1

    def test_against_the_sagan_formula(self) -> None:
        spec = ps.SelfAttentionConv(in_keys=["x", "m"], out_keys=["y", "w"], embed_dim=3)
        module = _materialize(spec, {"x": (2, 6, 4, 3), "m": (2, 12, 12)})
        x = torch.randn(5, 2, 6, 4, 3)
        mask = torch.rand(5, 2, 12, 12) > 0.3
        mask[..., 0] = True
        out = _run(module, {"x": x, "m": mask})
        with torch.no_grad():
            expected, attention = _sagan(module, x.reshape(10, 6, 4, 3), mask.reshape(10, 12, 12))
        torch.testing.assert_close(out["y"], expected.reshape(x.shape))
        torch.testing.assert_close(out["w"], attention.reshape(5, 2, 12, 12))

    def test_fully_masked_row_attends_to_the_first_position(self) -> None:
        spec = ps.SelfAttentionConv(in_keys=["x", "m"], out_keys=["y", "w"], embed_dim=2)
        module = _materialize(spec, {"x": (4, 2, 2), "m": (4, 4)})
        mask = torch.ones(3, 4, 4, dtype=torch.bool)
        mask[1, 2] = False
        mask[2, :, 0] = False  # key 0 masked in every row: no row is empty, so it stays masked
        out = _run(module, {"x": torch.randn(3, 4, 2, 2), "m": mask})
        assert not out["y"].isnan().any()
        torch.testing.assert_close(out["w"][1, 2], torch.tensor([1.0, 0.0, 0.0, 0.0]))
        assert (out["w"][2, :, 0] == 0).all()

    def test_train_mode_dropout(self) -> None:
        spec = ps.SelfAttentionConv(in_keys="x", out_keys=["y", "w"], embed_dim=2, dropout=0.5)
        module = _materialize(spec, {"x": (4, 3, 3)}).train()
        out = _run(module, {"x": torch.randn(2, 3, 4, 3, 3)})
        assert out["y"].shape == (2, 3, 4, 3, 3) and out["w"].shape == (2, 3, 9, 9)
        assert (out["w"] == 0).any()

    def test_state_dict_uses_maze_names(self) -> None:
        spec = ps.SelfAttentionConv(in_keys="x", out_keys="y", embed_dim=2)
        keys = set(ps.materialize(spec, {"x": (4, 3, 3)}).block_module("y").state_dict())
        assert keys == {"gamma", *(f"{n}_conv.{p}" for n in ("query", "key", "value") for p in ("weight", "bias"))}

    @pytest.mark.parametrize("fields, message", [
        (dict(embed_dim=0), "field 'embed_dim': expected a positive int, got 0"),
        (dict(embed_dim=2, dropout=1.0), "field 'dropout': expected None or a probability in [0, 1), got 1.0"),
        (dict(embed_dim=2.5), "field 'embed_dim': expected int"),
        (dict(embed_dim=2, in_keys=["x", "m", "n"]), "field 'in_keys': SelfAttentionConv takes 1 key (input) or 2"),
        (dict(embed_dim=2, out_keys=["y", "w", "v"]), "field 'out_keys': SelfAttentionConv takes 1 key (output) or 2"),
    ])
    def test_invalid_field(self, fields: dict[str, object], message: str) -> None:
        kwargs = {"in_keys": "x", "out_keys": "y", **fields}
        with pytest.raises(ps.SpecError, match=r"SelfAttentionConv\(out_keys=.*" + re.escape(message)):
            ps.SelfAttentionConv(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("in_shapes, key, message", [
        ({"x": (4, 5)}, "x", "expected a shape (..., C, H, W) with at least 3 dim(s), got (4, 5)"),
        ({"x": (4, 3, 2), "m": (6, 5)}, "m", "expected a mask (..., H*W, H*W) for the input (4, 3, 2) of shape (6, 6), "
                                             "got (6, 5)"),
        ({"x": (2, 4, 3, 2), "m": (6, 6)}, "m", "of shape (2, 6, 6), got (6, 6)"),
    ])
    def test_shape_mismatch(self, in_shapes: Shapes, key: str, message: str) -> None:
        spec = ps.SelfAttentionConv(in_keys=list(in_shapes), out_keys="y", embed_dim=2)
        with pytest.raises(ps.ShapeError, match=_shape_error("SelfAttentionConv", key, message)):
            ps.infer_shapes(spec, in_shapes)


ALL_KINDS = [
    (ps.SelfAttentionSeq(in_keys=["x", "m"], out_keys="y", num_heads=2), {"x": (5, 8), "m": (5, 5)}),
    (ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="y", num_heads=2, kdim=3, add_bias_kv=True),
     {"q": (6, 8), "k": (5, 3), "v": (5, 8)}),
    (ps.SelfAttentionConv(in_keys="x", out_keys="y", embed_dim=2), {"x": (4, 3, 3)}),
]


@pytest.mark.parametrize("spec, in_shapes", ALL_KINDS)
def test_serialization_round_trip(spec: ps.Block, in_shapes: Shapes) -> None:
    again = ps.from_yaml(ps.to_yaml(spec))
    assert again == spec and hash(again) == hash(spec)
    assert ps.from_dict(ps.to_dict(spec)) == spec


@pytest.mark.parametrize("spec, in_shapes", ALL_KINDS)
def test_same_seed_same_weights(spec: ps.Block, in_shapes: Shapes) -> None:
    a, b = (ps.materialize(spec, in_shapes, seed=3).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = ps.materialize(spec, in_shapes, seed=4).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


class TestInit:
    def test_torch_default_is_multihead_attentions_own_recipe(self) -> None:
        spec = ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="y", num_heads=2, add_bias_kv=True)
        attn = _self_attn(ps.materialize(spec, {"q": (6, 64), "k": (5, 64), "v": (5, 64)}, seed=0))
        assert not attn.in_proj_bias.any() and not attn.out_proj.bias.any()
        bound = (6 / (64 + 3 * 64)) ** 0.5  # xavier uniform over the stacked (3E, E) in-projection
        assert attn.in_proj_weight.abs().max() <= bound and attn.in_proj_weight.abs().max() > 0.9 * bound
        assert attn.bias_k is not None and attn.bias_k.any() and attn.bias_v is not None and attn.bias_v.any()

    def test_other_initialisers_fill_each_projection(self) -> None:
        spec = ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="y", num_heads=2, add_bias_kv=True,
                                     init=ps.Orthogonal(gain=1.0))
        attn = _self_attn(ps.materialize(spec, {"q": (6, 8), "k": (5, 8), "v": (5, 8)}, seed=0))
        for w in (*attn.in_proj_weight.detach().chunk(3), attn.out_proj.weight.detach()):
            torch.testing.assert_close(w @ w.T, torch.eye(8))
        assert attn.bias_k is not None and attn.bias_v is not None
        assert not attn.in_proj_bias.any() and not attn.bias_k.any() and not attn.bias_v.any()

    def test_separate_projections_with_norm_c(self) -> None:
        spec = ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="y", num_heads=2, kdim=3, vdim=5,
                                     init=ps.NormC(std=0.5))
        attn = _self_attn(ps.materialize(spec, {"q": (6, 8), "k": (5, 3), "v": (5, 5)}, seed=0))
        for w in (attn.q_proj_weight, attn.k_proj_weight, attn.v_proj_weight, attn.out_proj.weight):
            torch.testing.assert_close(w.detach().norm(dim=1), torch.full((8,), 0.5))

    def test_gamma_is_mazes_draw_whatever_the_initialiser(self) -> None:
        """The initialiser fills the convolutions; gamma is always Maze's clamped N(0, 1) draw."""
        for init in (ps.XavierUniform(), ps.TorchDefault()):
            spec = ps.SelfAttentionConv(in_keys="x", out_keys="y", embed_dim=2, init=init)
            gamma = _gamma(ps.materialize(spec, {"x": (4, 3, 3)}, seed=0)).item()
            assert -1.0 <= gamma <= 1.0 and gamma != 0.0
