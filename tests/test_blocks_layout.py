"""Tests of Permute and Reshape (issue #17): folds against real forward passes, Maze's dim convention (positive
dims count the batch dim), extra leading dims, and the errors."""

from __future__ import annotations

import pytest
import torch

import perceptspec as ps
from tests.blockcheck import check_block


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


class TestPermute:
    @pytest.mark.parametrize(("shape", "dims"), [((4, 5, 3), [3, 1, 2]), ((4, 5, 3), [-1, -3, -2]),
                                                 ((2, 3), [2, 1]), ((6,), [1]), ((2, 3, 4, 5), [1, 4, 2, -2])])
    def test_check_block(self, shape: tuple[int, ...], dims: list[int]) -> None:
        check_block(ps.Permute(in_keys="x", out_keys="y", dims=dims), {"x": shape})

    def test_channel_last_to_channel_first_as_torch_permute(self) -> None:
        """dims count Maze's batch dim: [3, 1, 2] on (H, W, C) is x.permute(0, 3, 1, 2) on a batch."""
        x = randn(2, 4, 5, 3)
        module = ps.materialize(ps.Permute(in_keys="x", out_keys="y", dims=[3, 1, 2]), {"x": (4, 5, 3)})
        assert torch.equal(module({"x": x})["y"], x.permute(0, 3, 1, 2))
        assert torch.equal(module({"x": x[None]})["y"], x.permute(0, 3, 1, 2)[None])  # a time axis in front

    def test_errors(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'dims': dim 0 is the batch dim"):
            ps.Permute(in_keys="x", out_keys="y", dims=[0, 1])
        with pytest.raises(ps.SpecError, match=r"field 'dims': dims repeat in \[1, 1\]"):
            ps.Permute(in_keys="x", out_keys="y", dims=[1, 1])
        with pytest.raises(ps.SpecError, match=r"field 'dims': expected one dim per feature dim, got \[\]"):
            ps.Permute(in_keys="x", out_keys="y", dims=[])
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(Permute\), key 'x': expected a shape with 2 dim\(s\) "
                                                r"\(dims=\[2, 1\] names every feature dim once\), got \(4, 5, 3\)"):
            ps.infer_shapes(ps.Permute(in_keys="x", out_keys="y", dims=[2, 1]), {"x": (4, 5, 3)})
        with pytest.raises(ps.ShapeError, match=r"expected dims=\[2, -1\] to name distinct dims, got \(4, 5\)"):
            ps.infer_shapes(ps.Permute(in_keys="x", out_keys="y", dims=[2, -1]), {"x": (4, 5)})


class TestReshape:
    @pytest.mark.parametrize(("shape", "target"), [((6,), [2, 3]), ((6,), [-1, 2]), ((2, 3, 4), [-1]),
                                                   ((2, 3, 4), [4, 6]), ((), [1, 1]), ((4, 1), [4])])
    def test_check_block(self, shape: tuple[int, ...], target: list[int]) -> None:
        check_block(ps.Reshape(in_keys="x", out_keys="y", shape=target), {"x": shape})

    def test_against_torch(self) -> None:
        x = randn(3, 2, 6)
        module = ps.materialize(ps.Reshape(in_keys="x", out_keys="y", shape=[3, -1]), {"x": (2, 6)})
        assert torch.equal(module({"x": x})["y"], x.reshape(3, 3, 4))
        assert ps.infer_shapes(ps.Reshape(in_keys="x", out_keys="y", shape=[3, -1]), {"x": (2, 6)})["y"] == (3, 4)

    def test_errors(self) -> None:
        for bad in ([], [2, 0], [-1, -1], [-2]):
            with pytest.raises(ps.SpecError, match=r"field 'shape': expected one or more positive sizes, one of "
                                                   r"them may be -1"):
                ps.Reshape(in_keys="x", out_keys="y", shape=bad)
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(Reshape\), key 'x': expected 6 elements to reshape to "
                                                r"\(2, 3\), got \(7,\) \(7 elements\)"):
            ps.infer_shapes(ps.Reshape(in_keys="x", out_keys="y", shape=[2, 3]), {"x": (7,)})
        with pytest.raises(ps.ShapeError, match=r"expected a number of elements divisible by 4 to reshape to "
                                                r"\(4, -1\), got \(2, 3\) \(6 elements\)"):
            ps.infer_shapes(ps.Reshape(in_keys="x", out_keys="y", shape=[4, -1]), {"x": (2, 3)})
