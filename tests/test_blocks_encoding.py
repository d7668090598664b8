"""Tests of OneHot, Embedding and ToFloat (issue #17): folds against real forward passes, against torch, the
run-time check of index and number inputs (dtype, bounds), and the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import perceptspec as ps
from tests.blockcheck import check_block


def one_hot(counts: int | list[int]) -> ps.OneHot:
    return ps.OneHot(in_keys="x", out_keys="y", num_classes=counts)


class TestOneHot:
    @pytest.mark.parametrize(("shape", "counts"), [((), 4), ((3,), 2), ((2, 3), 5), ((3,), [2, 3, 4]),
                                                   ((2, 2), [3, 1])])
    def test_check_block(self, shape: tuple[int, ...], counts: int | list[int]) -> None:
        check_block(one_hot(counts), {"x": shape})

    def test_discrete_and_multi_discrete_as_sb3_encodes_them(self) -> None:
        discrete = ps.materialize(one_hot(4), {"x": ()})
        x = torch.tensor([0, 3, 2])
        assert torch.equal(discrete({"x": x})["y"], F.one_hot(x, 4).float())
        multi = ps.materialize(one_hot([2, 3]), {"x": (2,)})
        y = multi({"x": torch.tensor([[1, 2], [0, 0]], dtype=torch.int32)})["y"]
        assert torch.equal(y, torch.tensor([[0., 1., 0., 0., 1.], [1., 0., 1., 0., 0.]]))
        assert multi.double()({"x": torch.tensor([[1, 2]])})["y"].dtype == torch.float64  # the module's dtype
        assert ps.infer_shapes(one_hot([2, 3]), {"x": (2,)})["y"] == (5,)
        assert "OneHot 2+3→5" in ps.summary(one_hot([2, 3]), {"x": (2,)})

    def test_inputs_are_checked_indices(self) -> None:
        module = ps.materialize(one_hot([2, 3]), {"x": (2,)})
        with pytest.raises(ps.SignatureError, match=r"input 'x': expected indices in \[0, n\) with n = \[2, 3\] for "
                                                    r"the entries of the last dim, got indices from 0 to 2"):
            module({"x": torch.tensor([[2, 0]])})
        with pytest.raises(ps.SignatureError, match=r"input 'x': expected an integer dtype \(indices\), got dtype "
                                                    r"torch.float32"):
            module({"x": torch.tensor([[1., 0.]])})
        single = ps.materialize(one_hot(3), {"x": ()})
        with pytest.raises(ps.SignatureError, match=r"expected indices in \[0, 3\), got indices from -1 to 1"):
            single({"x": torch.tensor([-1, 1])})
        single.check = "off"
        assert single({"x": torch.tensor([2, 1])})["y"].shape == (2, 3)

    def test_errors(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'num_classes': expected a positive int or one or more "
                                               r"positive ints, got \[2, 0\]"):
            one_hot([2, 0])
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(OneHot\), key 'x': expected a last dim of 2, one "
                                                r"index per entry of num_classes=\[2, 3\], got \(3,\)"):
            ps.infer_shapes(one_hot([2, 3]), {"x": (3,)})

    def test_a_key_read_as_indices_and_as_features_is_refused(self) -> None:
        spec = ps.Graph({"hot": one_hot(3), "dense": ps.Dense(in_keys="x", out_keys="h", hidden_units=[2])},
                        out_keys=["y", "h"])
        with pytest.raises(ps.SpecError, match=r"input 'x': block 'dense' \(Dense\) reads it as float features and "
                                               r"block 'hot' \(OneHot\) as integer indices: no tensor is both"):
            ps.materialize(spec, {"x": (1,)})


def table_of(module: ps.SpecModule) -> nn.Embedding:
    table = module.block_module("y").table
    assert isinstance(table, nn.Embedding)
    return table


class TestEmbedding:
    @pytest.mark.parametrize(("shape", "counts", "init"), [
        ((), 5, None), ((3,), 4, ps.NormC(1.0)), ((2,), [3, 4], ps.Orthogonal(1.0)), ((2, 3), [2, 2, 5], None)])
    def test_check_block(self, shape: tuple[int, ...], counts: int | list[int], init: ps.Initializer | None) -> None:
        check_block(ps.Embedding(in_keys="x", out_keys="y", num_embeddings=counts, embedding_dim=3, init=init),
                    {"x": shape})

    def test_against_torch(self) -> None:
        spec = ps.Embedding(in_keys="x", out_keys="y", num_embeddings=[3, 4], embedding_dim=2)
        module = ps.materialize(spec, {"x": (2,)}, seed=0)
        table = table_of(module)
        assert table.weight.shape == (7, 2)
        x = torch.tensor([[2, 3], [0, 0]], dtype=torch.uint8)
        expected = table.weight[torch.tensor([[2, 6], [0, 3]])]  # the second entry's rows start at 3
        torch.testing.assert_close(module({"x": x})["y"], expected)
        assert ps.count_parameters(spec, {"x": (2,)}) == 14
        assert ps.infer_shapes(spec, {"x": (2,)})["y"] == (2, 2)

    def test_torch_default_init_is_nn_embeddings(self) -> None:
        """N(0, 1), as nn.Embedding draws its table; other initialisers fill it as a Linear layer's weight."""
        spec = ps.Embedding(in_keys="x", out_keys="y", num_embeddings=400, embedding_dim=50)
        weight = table_of(ps.materialize(spec, {"x": ()}, seed=0)).weight.detach()
        assert abs(float(weight.std()) - 1.0) < 0.02 and abs(float(weight.mean())) < 0.02
        normc = table_of(ps.materialize(ps.Embedding(in_keys="x", out_keys="y", num_embeddings=4, embedding_dim=3,
                                                     init=ps.NormC(0.5)), {"x": ()}, seed=0)).weight.detach()
        torch.testing.assert_close(normc.T.norm(dim=1), torch.full((3,), 0.5))  # rows of the Linear view

    def test_errors(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'embedding_dim': expected a positive int, got 0"):
            ps.Embedding(in_keys="x", out_keys="y", num_embeddings=3, embedding_dim=0)
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(Embedding\), key 'x': expected a shape \(\.\.\., 2\) "
                                                r"with at least 1 dim\(s\), got \(\)"):
            ps.infer_shapes(ps.Embedding(in_keys="x", out_keys="y", num_embeddings=[3, 4], embedding_dim=2), {"x": ()})


class TestToFloat:
    @pytest.mark.parametrize("shape", [(), (3,), (4, 5, 3)])
    def test_check_block(self, shape: tuple[int, ...]) -> None:
        check_block(ps.ToFloat(in_keys="x", out_keys="y", scale=1 / 255), {"x": shape})

    def test_any_real_dtype_becomes_the_modules_floats(self) -> None:
        module = ps.materialize(ps.ToFloat(in_keys="x", out_keys="y", scale=1 / 255), {"x": (2,)})
        for x in (torch.tensor([[0, 255]], dtype=torch.uint8), torch.tensor([[0, 255]]), torch.tensor([[0., 255.]],
                                                                                                     dtype=torch.float64)):
            y = module({"x": x})["y"]
            assert y.dtype == torch.float32 and torch.equal(y, torch.tensor([[0., 1.]]))
        assert module({"x": torch.tensor([[True, False]])})["y"].dtype == torch.float32
        with pytest.raises(ps.SignatureError, match=r"input 'x': expected a real dtype \(bool, integer or floating\), "
                                                    r"got dtype torch.complex64"):
            module({"x": torch.zeros(1, 2, dtype=torch.complex64)})
        assert ps.summary(ps.ToFloat(in_keys="x", out_keys="y", scale=1 / 255), {"x": (2,)}).count("ToFloat ÷255") == 1

    def test_errors(self) -> None:
        for bad in (0.0, float("inf"), float("nan")):
            with pytest.raises(ps.SpecError, match=r"field 'scale': expected a finite, non-zero float"):
                ps.ToFloat(in_keys="x", out_keys="y", scale=bad)
