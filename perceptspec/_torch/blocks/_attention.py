"""Build rules of the attention blocks: SelfAttentionSeq, MultiHeadAttention and SelfAttentionConv.

Modules and parameters are named as in Maze (`self_attn`, `query_conv`, `key_conv`, `value_conv`, `gamma`), so
state dicts line up with Maze's blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._fold._rules import shape_rules
from perceptspec._fold.rules._attention import sequence_parts
from perceptspec._spec import Initializer, MultiHeadAttention, SelfAttentionConv, SelfAttentionSeq, TorchDefault
from perceptspec._torch._init import initialise
from perceptspec._torch._tables import torch_builders


def _first_key_or(allowed: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`allowed` (..., L, S) with key 0 also allowed in the rows where `rows` (..., L, 1) is True."""
    return torch.cat((allowed[..., :1] | rows, allowed[..., 1:]), dim=-1)


def _no_empty_rows(allowed: torch.Tensor) -> torch.Tensor:
    """Let a row that may attend to no key attend to key 0: a softmax over no key would give NaN."""
    return _first_key_or(allowed, ~allowed.any(dim=-1, keepdim=True))


def _init_self_attn(m: nn.MultiheadAttention, init: Initializer, generator: torch.Generator | None) -> None:
    """Fill `m` as `init` says: TorchDefault is nn.MultiheadAttention's own recipe (drawn from `generator`); any
    other initialiser treats the q, k, v and out projections as four Linear layers (bias_k / bias_v start at 0)."""
    e = m.embed_dim
    params: dict[str, torch.Tensor | None] = dict(m._parameters)
    with torch.no_grad():
        stacked: list[torch.Tensor]
        if m._qkv_same_embed_dim:  # one (3E, E) weight: q, k and v are its thirds
            stacked = [m.in_proj_weight]
            weights = [m.in_proj_weight[i * e:(i + 1) * e] for i in range(3)]
        else:
            stacked = weights = [m.q_proj_weight, m.k_proj_weight, m.v_proj_weight]
        in_bias = params.get("in_proj_bias")
        biases = [None if in_bias is None else in_bias[i * e:(i + 1) * e] for i in range(3)]
        kv_biases = [b for b in (params.get("bias_k"), params.get("bias_v")) if b is not None]
        if isinstance(init, TorchDefault):  # what MultiheadAttention._reset_parameters does
            for w in stacked:
                nn.init.xavier_uniform_(w, generator=generator)
            initialise(init, m.out_proj.weight, None, generator)  # the out projection keeps nn.Linear's default
            for b in (in_bias, m.out_proj._parameters["bias"]):
                if b is not None:
                    b.zero_()
            for b in kv_biases:
                nn.init.xavier_normal_(b, generator=generator)
            return
        for w, b in zip(weights, biases):
            initialise(init, w, b, generator)
        initialise(init, m.out_proj.weight, m.out_proj._parameters["bias"], generator)
        for b in kv_biases:
            b.zero_()


def maze_gamma(generator: torch.Generator | None) -> nn.Parameter:
    """The learned scale of an attention block's output as Maze starts it (every release since 0.1.0; its first
    commit started at 0): one draw of N(0, 1), clamped to [-1, 1]."""
    return nn.Parameter(torch.randn(1, generator=generator).clamp_(-1.0, 1.0))


class _MultiHeadAttentionModule(nn.Module):
    """nn.MultiheadAttention (batch_first) over the leading dims flattened into one batch dim, Maze's masks,
    output scaled by `gamma` (see `maze_gamma`), plus the query if `add_input_to_output`."""

    def __init__(self, self_attn: nn.MultiheadAttention, ins: tuple[Shape, Shape, Shape],
                 mask_kinds: tuple[str, ...], weights_shape: Shape | None, add_input_to_output: bool,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.gamma = maze_gamma(generator)
        (_, length, e), (_, source, kdim), (_, _, vdim) = (sequence_parts(s) for s in ins)
        self.query_shape = ins[0]
        self.views = ((-1, length, e), (-1, source, kdim), (-1, source, vdim))
        self.mask_kinds = mask_kinds
        self.weights_shape = weights_shape
        self.add_input_to_output = add_input_to_output
        # torch's extra key (bias_k, or zeros) is always attendable, so only without one can a row be empty
        self.fill_empty_rows = "padding" in mask_kinds and self_attn.bias_k is None and not self_attn.add_zero_attn

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                *masks: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.attend(query, key, value, masks)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               masks: tuple[torch.Tensor, ...]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch = query.shape[:query.dim() - len(self.query_shape)]
        q = query.reshape(self.views[0])
        k = q if key is query else key.reshape(self.views[1])  # one tensor keeps torch's self-attention fast path
        v = k if value is key else value.reshape(self.views[2])
        # an empty batch has nothing to mask (and torch's MultiheadAttention cannot reshape a mask of no rows)
        attn_mask = self.attn_mask(masks) if q.shape[0] else None
        out: torch.Tensor
        out, weights = self.self_attn(q, k, v, need_weights=self.weights_shape is not None, attn_mask=attn_mask)
        out = self.gamma * out
        if self.add_input_to_output:
            out = out + q
        out = out.reshape(*batch, *self.query_shape)
        if self.weights_shape is None:
            return out
        if weights is None:  # (torch's fast path, in eval without grad, returns none for an empty batch)
            return out, q.new_zeros((*batch, *self.weights_shape))
        return out, weights.reshape(*batch, *self.weights_shape)

    def attn_mask(self, masks: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """The masks (True: may attend) as torch's (batch * heads, L, S) bool mask (True: may not attend)."""
        length, source = self.views[0][1], self.views[1][1]
        allowed: torch.Tensor | None = None
        for kind, mask in zip(self.mask_kinds, masks):
            if kind == "attn":
                part = mask.reshape(-1, length, source) == 1
                part = _first_key_or(part, torch.ones_like(part[..., :1]))  # as Maze: key 0 is always attendable
            else:
                part = (mask.reshape(-1, 1, source) == 1).expand(-1, length, source)
            allowed = part if allowed is None else allowed & part
        if allowed is None:
            return None
        if self.fill_empty_rows:
            allowed = _no_empty_rows(allowed)
        return (~allowed).repeat_interleave(self.self_attn.num_heads, dim=0)


class _SelfAttentionSeqModule(_MultiHeadAttentionModule):
    """Self-attention: the input is query, key and value."""

    def forward(self, x: torch.Tensor, *masks: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.attend(x, x, x, masks)


def _self_attn(block: SelfAttentionSeq | MultiHeadAttention, ins: tuple[Shape, ...], init: Initializer,
               generator: torch.Generator | None) -> nn.MultiheadAttention:
    extra = block if isinstance(block, MultiHeadAttention) else None  # SelfAttentionSeq has torch's defaults
    m = nn.MultiheadAttention(ins[0][-1], block.num_heads, dropout=block.dropout or 0.0, bias=block.bias,
                              add_bias_kv=extra is not None and extra.add_bias_kv,
                              add_zero_attn=extra is not None and extra.add_zero_attn,
                              kdim=ins[1][-1] if extra else None, vdim=ins[2][-1] if extra else None,
                              batch_first=True, device="meta")
    m.to_empty(device="cpu")  # skip torch's own random init: ours fills it (with our generator)
    _init_self_attn(m, init, generator)
    return m


def _weights_shape(block: SelfAttentionSeq | MultiHeadAttention, ins: tuple[Shape, ...]) -> Shape | None:
    outs = shape_rules.lookup(type(block))(block, ins)
    return outs[1] if len(outs) == 2 else None


@torch_builders.register(SelfAttentionSeq)
def _self_attention_seq_build_rule(block: SelfAttentionSeq, ins: tuple[Shape, ...], init: Initializer,
                                   generator: torch.Generator | None) -> nn.Module:
    x = ins[0]
    self_attn = _self_attn(block, ins, init, generator)
    mask_kinds = ("attn",) * (len(ins) - 1)
    return _SelfAttentionSeqModule(self_attn, (x, x, x), mask_kinds, _weights_shape(block, ins),
                                   block.add_input_to_output, generator)


@torch_builders.register(MultiHeadAttention)
def _multi_head_attention_build_rule(block: MultiHeadAttention, ins: tuple[Shape, ...], init: Initializer,
                                     generator: torch.Generator | None) -> nn.Module:
    query, key, value = ins[:3]
    self_attn = _self_attn(block, ins, init, generator)
    return _MultiHeadAttentionModule(self_attn, (query, key, value), block.mask_kinds, _weights_shape(block, ins),
                                     block.add_input_to_output, generator)


def _conv1x1(n_in: int, n_out: int, bias: bool, init: Initializer, generator: torch.Generator | None) -> nn.Conv2d:
    conv = nn.Conv2d(n_in, n_out, kernel_size=1, bias=bias, device="meta")
    conv.to_empty(device="cpu")
    initialise(init, conv.weight, conv.bias, generator)
    return conv


class _SelfAttentionConvModule(nn.Module):
    """SAGAN self-attention over the H*W positions, on the leading dims flattened into one batch dim."""

    def __init__(self, block: SelfAttentionConv, in_shape: Shape, init: Initializer,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        c, h, w = in_shape[-3:]
        self.query_conv = _conv1x1(c, block.embed_dim, block.bias, init, generator)
        self.key_conv = _conv1x1(c, block.embed_dim, block.bias, init, generator)
        self.value_conv = _conv1x1(c, c, block.bias, init, generator)
        self.gamma = maze_gamma(generator)
        self.dropout = nn.Dropout(block.dropout or 0.0)
        self.in_shape = in_shape
        self.map_shape = in_shape[:-3] + (h * w, h * w)
        self.image_shape = (c, h, w)
        self.add_input_to_output = block.add_input_to_output
        self.return_map = len(block.out_keys) == 2

    def forward(self, x: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[:x.dim() - len(self.in_shape)]
        images = x.reshape(-1, *self.image_shape)
        query = self.query_conv(images).flatten(2)  # (B, embed_dim, P) for P = H*W positions
        key = self.key_conv(images).flatten(2)
        energy = query.transpose(1, 2) @ key  # (B, P, P): position i's query . position j's key
        if mask:
            positions = energy.shape[-1]
            allowed = _no_empty_rows(mask[0].reshape(-1, positions, positions) == 1)
            energy = energy.masked_fill(~allowed, float("-inf"))
        attention = self.dropout(torch.softmax(energy, dim=-1))
        value = self.value_conv(images).flatten(2)  # (B, C, P)
        out: torch.Tensor = self.gamma * (value @ attention.transpose(1, 2)).reshape(images.shape)
        if self.add_input_to_output:
            out = out + images
        out = out.reshape(x.shape)
        if not self.return_map:
            return out
        return out, attention.reshape(*batch, *self.map_shape)


@torch_builders.register(SelfAttentionConv)
def _self_attention_conv_build_rule(block: SelfAttentionConv, ins: tuple[Shape, ...], init: Initializer,
                                    generator: torch.Generator | None) -> nn.Module:
    return _SelfAttentionConvModule(block, ins[0], init, generator)
