"""Attention blocks: Maze's SelfAttentionSeqBlock, MultiHeadAttentionBlock and SelfAttentionConvBlock.

All three scale the attention output by a learned scalar `gamma`, then add the input (the query) when
`add_input_to_output`. `gamma` starts as Maze's does: one draw of N(0, 1) clamped to [-1, 1] (SAGAN, and Maze's
first commit, started it at 0).

Masks are bool (or 0/1 floats): True / 1 means "may attend". No row of attention weights is ever fully masked, so
no NaN comes out: as Maze does, the first key is always attendable under an attention mask of SelfAttentionSeq or
MultiHeadAttention; a row that a key padding mask (alone, or combined with an attention mask) or a
SelfAttentionConv mask leaves with no key attends to the first key only, unless `add_bias_kv` / `add_zero_attn`
give it an extra key to attend to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor

__all__ = ["MultiHeadAttention", "SelfAttentionConv", "SelfAttentionSeq"]


def _dropout_problems(dropout: float | None) -> Iterator[str]:
    if dropout is not None and not 0.0 <= dropout < 1.0:
        yield f"field 'dropout': expected None or a probability in [0, 1), got {dropout!r}"


def _positive_problems(field: str, value: int | None) -> Iterator[str]:
    if value is not None and value <= 0:
        yield f"field '{field}': expected a positive int, got {value}"


def _key_count_problems(block: Block, field: str, keys: tuple[str, ...], counts: tuple[int, ...],
                        meaning: str) -> Iterator[str]:
    if len(keys) not in counts:
        yield f"field '{field}': {type(block).__name__} takes {meaning}, got {list(keys)}"


@descriptor
class SelfAttentionSeq(Block):
    """Maze's SelfAttentionSeqBlock: multi-head self-attention over the sequence dim (nn.MultiheadAttention).

    in_keys: the input (..., N, E) (a rank-1 input (E,) is a sequence of length 1), then optionally an attention
    mask (..., N, N) (True: query i may attend to key j). out_keys: the output (..., N, E), then optionally the
    attention weights averaged over heads (..., N, N). E must be divisible by `num_heads`. `dropout` (on the
    attention weights) acts in training mode only.

    Examples:
        >>> block = ps.SelfAttentionSeq(in_keys="seq", out_keys="attended", num_heads=2)
        >>> ps.infer_shapes(block, {"seq": (10, 16)})["attended"]
        (10, 16)
    """

    n_inputs: ClassVar[int | None] = None
    n_outputs: ClassVar[int | None] = None

    num_heads: int
    """Attention heads; the embedding dim E must be divisible by it."""
    dropout: float | None = None
    """Dropout on the attention weights, training mode only; None: none."""
    add_input_to_output: bool = True
    """Add the input to the attention output (a residual)."""
    bias: bool = True
    """Biases in the projections, as nn.MultiheadAttention's `bias`."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features", "mask")[:len(self.in_keys)]

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _key_count_problems(self, "in_keys", tuple(self.in_keys), (1, 2), "1 key (input) or 2 (input, mask)")
        yield from _key_count_problems(self, "out_keys", tuple(self.out_keys), (1, 2),
                                       "1 key (output) or 2 (output, attention weights)")
        yield from _positive_problems("num_heads", self.num_heads)
        yield from _dropout_problems(self.dropout)


@descriptor
class MultiHeadAttention(Block):
    """Maze's MultiHeadAttentionBlock: nn.MultiheadAttention of a query over keys and values.

    in_keys: query (..., L, E), key (..., S, kdim), value (..., S, vdim) (a rank-1 input is a sequence of length
    1; the leading dims of all three must agree), then the optional masks: an attention mask (..., L, S) and/or,
    with `use_key_padding_mask`, a key padding mask (..., S) (True: the key is real, False: padding). With 4
    in_keys the 4th is the attention mask, or the key padding mask if `use_key_padding_mask`; with 5 they are
    attention mask, key padding mask. out_keys: the output (..., L, E), then optionally the attention weights
    averaged over heads (..., L, S + add_bias_kv + add_zero_attn). `kdim` / `vdim` None mean E, as in torch.

    Examples:
        >>> block = ps.MultiHeadAttention(in_keys=["q", "k", "v"], out_keys="out", num_heads=2)
        >>> ps.infer_shapes(block, {"q": (4, 16), "k": (10, 16), "v": (10, 16)})["out"]
        (4, 16)
    """

    n_inputs: ClassVar[int | None] = None
    n_outputs: ClassVar[int | None] = None

    num_heads: int
    """Attention heads; the query's E must be divisible by it."""
    dropout: float | None = None
    """Dropout on the attention weights, training mode only; None: none."""
    add_input_to_output: bool = True
    """Add the query to the attention output (a residual)."""
    bias: bool = True
    """Biases in the projections."""
    add_bias_kv: bool = False
    """nn.MultiheadAttention's `add_bias_kv`."""
    add_zero_attn: bool = False
    """nn.MultiheadAttention's `add_zero_attn`."""
    kdim: int | None = None
    """Features of the key; None: E."""
    vdim: int | None = None
    """Features of the value; None: E."""
    use_key_padding_mask: bool = False
    """A 4th in_key is a key padding mask, not an attention mask."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features",) * 3 + ("mask",) * (len(self.in_keys) - 3)

    @property
    def mask_kinds(self) -> tuple[str, ...]:
        """What the in_keys after (query, key, value) are: 'attn' and/or 'padding'."""
        extra = len(self.in_keys) - 3
        if extra == 1:
            return ("padding",) if self.use_key_padding_mask else ("attn",)
        return ("attn", "padding") if extra == 2 else ()

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _key_count_problems(self, "in_keys", tuple(self.in_keys), (3, 4, 5),
                                       "3 keys (query, key, value), then an attention mask and/or key padding mask")
        yield from _key_count_problems(self, "out_keys", tuple(self.out_keys), (1, 2),
                                       "1 key (output) or 2 (output, attention weights)")
        if len(self.in_keys) == 5 and not self.use_key_padding_mask:
            yield ("field 'use_key_padding_mask': 5 in_keys name an attention mask and a key padding mask, "
                   "so use_key_padding_mask must be True")
        yield from _positive_problems("num_heads", self.num_heads)
        yield from _positive_problems("kdim", self.kdim)
        yield from _positive_problems("vdim", self.vdim)
        yield from _dropout_problems(self.dropout)


@descriptor
class SelfAttentionConv(Block):
    """Maze's SelfAttentionConvBlock: SAGAN self-attention over the H*W positions of a feature map.

    Query and key are 1x1 convolutions to `embed_dim` channels (Maze suggests an even fraction of C), the value a
    1x1 convolution to C; attention = softmax(query . key) (not scaled), with `dropout` in training mode.
    in_keys: the input (..., C, H, W), then optionally a mask (..., H*W, H*W) (True: position i may attend to j).
    out_keys: the output (..., C, H, W), then optionally the attention map (..., H*W, H*W).

    Examples:
        >>> block = ps.SelfAttentionConv(in_keys="maps", out_keys="attended", embed_dim=4)
        >>> ps.infer_shapes(block, {"maps": (8, 5, 5)})["attended"]
        (8, 5, 5)
    """

    n_inputs: ClassVar[int | None] = None
    n_outputs: ClassVar[int | None] = None

    embed_dim: int
    """Channels of the query and key 1x1 convolutions."""
    dropout: float | None = None
    """Dropout on the attention map, training mode only; None: none."""
    add_input_to_output: bool = True
    """Add gamma * attention output to the input (SAGAN's residual)."""
    bias: bool = True
    """Biases in the 1x1 convolutions."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features", "mask")[:len(self.in_keys)]

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _key_count_problems(self, "in_keys", tuple(self.in_keys), (1, 2), "1 key (input) or 2 (input, mask)")
        yield from _key_count_problems(self, "out_keys", tuple(self.out_keys), (1, 2),
                                       "1 key (output) or 2 (output, attention map)")
        yield from _positive_problems("embed_dim", self.embed_dim)
        yield from _dropout_problems(self.dropout)
