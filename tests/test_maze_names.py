"""Maze's class paths as names (perceptspec._maze): every Maze perception block maps to a perceptspec block with
the same parameter names (issue #16: "every default and parameter name of every block checked against Maze's
source")."""

from __future__ import annotations

import dataclasses

import pytest

import perceptspec as ps
from perceptspec._maze import MAZE_BLOCKS, maze_block_type
from perceptspec._spec._descriptor import descriptor_kind

#: the parameters of each Maze block's __init__ besides in_keys, out_keys and in_shapes, read from Maze's source
#: (maze/perception/blocks, 2026). Maze gives none of them a default: where perceptspec has one, it is the value
#: Maze documents for None (`hidden_strides: None` -> stride 1, `padding_mode: None` -> 'zeros', `dropout: None` -> 0)
#: or a convenience a Maze config always overrides.
MAZE_PARAMETERS = {
    "ActionMaskingBlock": ("num_actors", "num_of_actor_actions"),
    "ConcatenationBlock": ("concat_dim",),
    "CorrelationBlock": ("reduce",),
    "DenseBlock": ("hidden_units", "non_lin"),
    "FlattenBlock": ("num_flatten_dims",),
    "FlattenDenseBlock": ("num_flatten_dims", "hidden_units", "non_lin"),
    "GlobalAveragePoolingBlock": (),
    "GraphAttentionBlock": ("hidden_features", "non_lins", "n_heads", "attention_alpha", "avg_last_head_attentions",
                            "attention_dropout"),
    "GraphConvBlock": ("hidden_features", "bias", "non_lins", "node_self_importance",
                       "trainable_node_self_importance", "preprocess_adj"),
    "LSTMBlock": ("hidden_size", "num_layers", "bidirectional", "non_lin"),
    "LSTMLastStepBlock": ("hidden_size", "num_layers", "bidirectional", "non_lin"),
    "LinearOutputBlock": ("output_units",),
    "MaskedGlobalPoolingBlock": ("pooling_func", "pooling_dim"),
    "MultiHeadAttentionBlock": ("num_heads", "dropout", "add_input_to_output", "bias", "add_bias_kv", "add_zero_attn",
                                "kdim", "vdim", "use_key_padding_mask"),
    "MultiIndexSlicingBlock": ("select_dim", "select_idxs"),
    "RepeatToMatchBlock": ("repeat_at_idx",),
    "SelfAttentionConvBlock": ("embed_dim", "dropout", "add_input_to_output", "bias"),
    "SelfAttentionSeqBlock": ("num_heads", "dropout", "add_input_to_output", "bias"),
    "SliceBlock": ("slice_dim", "slice_idx"),
    "StridedConvolutionBlock": ("hidden_channels", "hidden_kernels", "non_lin", "convolution_dimension",
                                "hidden_strides", "hidden_dilations", "hidden_padding", "padding_mode"),
    "StridedConvolutionDenseBlock": ("hidden_channels", "hidden_kernels", "convolution_dimension", "hidden_strides",
                                     "hidden_dilations", "hidden_padding", "padding_mode", "hidden_units", "non_lin"),
    "VGGConvolutionBlock": ("hidden_channels", "non_lin", "use_batch_norm"),
    "VGGConvolutionDenseBlock": ("hidden_channels", "hidden_units", "non_lin", "use_batch_norm_conv"),
    "VGGConvolutionGAPBlock": ("hidden_channels", "non_lin", "use_batch_norm_conv"),
}
#: fields perceptspec adds to a Maze block (with defaults that keep Maze's network)
EXTENSIONS: dict[str, tuple[str, ...]] = {"LinearOutputBlock": ("bias",), "DenseBlock": ("layer_norm",)}
COMMON = ("in_keys", "out_keys", "init")


@pytest.mark.parametrize("maze_name", sorted(MAZE_PARAMETERS))
def test_every_maze_block_maps_to_a_block_with_mazes_parameter_names(maze_name: str) -> None:
    name, type_name = maze_block_type(f"maze.perception.blocks.{maze_name}", "test")
    assert name == maze_name
    fields = {f.name for f in dataclasses.fields(descriptor_kind(type_name)) if f.init}  # type: ignore[arg-type]
    assert set(MAZE_PARAMETERS[maze_name]) <= fields
    extra = fields - set(MAZE_PARAMETERS[maze_name]) - set(COMMON) - set(EXTENSIONS.get(maze_name, ()))
    assert not extra, f"{type_name} has fields Maze's {maze_name} lacks: {sorted(extra)}"


def test_the_table_covers_every_maze_block_perceptspec_names() -> None:
    assert set(MAZE_PARAMETERS) == set(MAZE_BLOCKS)


def test_maze_paths_through_any_module_of_the_blocks_package() -> None:
    assert maze_block_type("maze.perception.blocks.feed_forward.dense.DenseBlock", "test") == ("DenseBlock", "Dense")
    assert maze_block_type("Dense", "test") == ("Dense", "Dense")
    with pytest.raises(ps.SpecError, match="did you mean 'Dense'"):
        maze_block_type("Dens", "test")
    with pytest.raises(ps.SpecError, match="is not one of Maze's perception blocks"):
        maze_block_type("maze.perception.blocks.DenseBlok", "test")
