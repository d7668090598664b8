"""Pure rules of the attention blocks: SelfAttentionSeq, MultiHeadAttention and SelfAttentionConv."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, require_rank, shape_rules
from perceptspec._spec import MultiHeadAttention, SelfAttentionConv, SelfAttentionSeq

#: the learned output scale every attention block has (Maze's `gamma`)
GAMMA_PARAMS = 1


def sequence_parts(shape: Shape) -> tuple[Shape, int, int]:
    """(leading dims, sequence length, features) of a (..., N, F) shape; a rank-1 (F,) is one step long."""
    if len(shape) == 1:
        return (), 1, shape[0]
    return shape[:-2], shape[-2], shape[-1]


def mha_params(embed_dim: int, kdim: int, vdim: int, bias: bool, add_bias_kv: bool) -> int:
    """Parameters of nn.MultiheadAttention: q/k/v in-projections, out-projection, their biases, bias_k / bias_v."""
    e = embed_dim
    return 2 * e * e + e * kdim + e * vdim + (4 * e if bias else 0) + (2 * e if add_bias_kv else 0)


def _require_heads(embed_dim: int, num_heads: int, index: int, shape: Shape, layout: str) -> None:
    if embed_dim % num_heads:
        raise Mismatch(index, f"a shape {layout} whose embedding dim E (the last dim) is divisible by "
                              f"num_heads={num_heads}", shape)


def _require_mask(shape: Shape, index: int, expected: Shape, what: str) -> None:
    if shape != expected:
        raise Mismatch(index, f"{what} of shape {expected}", shape)


def _residual(add_input_to_output: bool) -> str:
    return " +input" if add_input_to_output else ""


@shape_rules.register(SelfAttentionSeq)
def _self_attention_seq_shape_rule(block: SelfAttentionSeq, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    x = ins[0]
    require_rank(x, 0, 1, "(..., N, E)")
    lead, n, e = sequence_parts(x)
    _require_heads(e, block.num_heads, 0, x, "(..., N, E)")
    weights = lead + (n, n)
    if len(ins) == 2:
        _require_mask(ins[1], 1, weights, f"an attention mask (..., N, N) for the input {x}")
    return (x, weights)[:len(block.out_keys)]


@param_rules.register(SelfAttentionSeq)
def _self_attention_seq_param_rule(block: SelfAttentionSeq, ins: tuple[Shape, ...]) -> int:
    e = ins[0][-1]
    return mha_params(e, e, e, block.bias, False) + GAMMA_PARAMS


@label_rules.register(SelfAttentionSeq)
def _self_attention_seq_label_rule(block: SelfAttentionSeq, ins: tuple[Shape, ...]) -> str:
    _, n, e = sequence_parts(ins[0])
    return f"SelfAttentionSeq {n}×{e} {block.num_heads} heads{_residual(block.add_input_to_output)}"


@shape_rules.register(MultiHeadAttention)
def _multi_head_attention_shape_rule(block: MultiHeadAttention, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    query, key, value = ins[:3]
    for index, shape, layout in ((0, query, "(..., L, E)"), (1, key, "(..., S, kdim)"), (2, value, "(..., S, vdim)")):
        require_rank(shape, index, 1, layout)
    lead, length, e = sequence_parts(query)
    _require_heads(e, block.num_heads, 0, query, "(..., L, E)")
    kdim = e if block.kdim is None else block.kdim
    vdim = e if block.vdim is None else block.vdim
    key_lead, source, key_dim = sequence_parts(key)
    if (key_lead, key_dim) != (lead, kdim):
        dim = "kdim" if block.kdim is not None else "kdim=None: the query's E"
        raise Mismatch(1, f"a key (..., S, {kdim}) ({dim}) with the query's leading dims {lead}", key)
    if sequence_parts(value) != (lead, source, vdim):
        dim = "vdim" if block.vdim is not None else "vdim=None: the query's E"
        raise Mismatch(2, f"a value (..., S, {vdim}) ({dim}) with the query's leading dims {lead} and the key's "
                          f"S={source}", value)
    for index, kind in enumerate(block.mask_kinds, start=3):
        if kind == "attn":
            _require_mask(ins[index], index, lead + (length, source), "an attention mask (..., L, S)")
        else:
            _require_mask(ins[index], index, lead + (source,), "a key padding mask (..., S)")
    extra = int(block.add_bias_kv) + int(block.add_zero_attn)  # torch appends these keys after the S real ones
    return (query, lead + (length, source + extra))[:len(block.out_keys)]


@param_rules.register(MultiHeadAttention)
def _multi_head_attention_param_rule(block: MultiHeadAttention, ins: tuple[Shape, ...]) -> int:
    e = ins[0][-1]
    kdim = e if block.kdim is None else block.kdim
    vdim = e if block.vdim is None else block.vdim
    return mha_params(e, kdim, vdim, block.bias, block.add_bias_kv) + GAMMA_PARAMS


@label_rules.register(MultiHeadAttention)
def _multi_head_attention_label_rule(block: MultiHeadAttention, ins: tuple[Shape, ...]) -> str:
    _, length, e = sequence_parts(ins[0])
    _, source, kdim = sequence_parts(ins[1])
    vdim = ins[2][-1]
    return (f"MultiHeadAttention {length}×{e} over {source}×{kdim}/{vdim} {block.num_heads} heads"
            f"{_residual(block.add_input_to_output)}")


@shape_rules.register(SelfAttentionConv)
def _self_attention_conv_shape_rule(block: SelfAttentionConv, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    x = ins[0]
    require_rank(x, 0, 3, "(..., C, H, W)")
    positions = x[-2] * x[-1]
    attention = x[:-3] + (positions, positions)
    if len(ins) == 2:
        _require_mask(ins[1], 1, attention, f"a mask (..., H*W, H*W) for the input {x}")
    return (x, attention)[:len(block.out_keys)]


@param_rules.register(SelfAttentionConv)
def _self_attention_conv_param_rule(block: SelfAttentionConv, ins: tuple[Shape, ...]) -> int:
    c, e, b = ins[0][-3], block.embed_dim, int(block.bias)
    return 2 * (c * e + e * b) + (c * c + c * b) + GAMMA_PARAMS  # query and key 1x1 convs to e, value to c


@label_rules.register(SelfAttentionConv)
def _self_attention_conv_label_rule(block: SelfAttentionConv, ins: tuple[Shape, ...]) -> str:
    c, h, w = ins[0][-3:]
    return f"SelfAttentionConv {c}×{h}×{w} embed {block.embed_dim}{_residual(block.add_input_to_output)}"
