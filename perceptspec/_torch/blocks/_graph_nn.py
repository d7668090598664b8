"""Build rules of the graph blocks: GraphConv and GraphAttention, on dense adjacency matrices in plain torch.

Every op (matmul, softmax over the last dim) broadcasts over leading dims, so any number of batch and extra
feature dims pass through without reshaping. Weights are stored as nn.Linear's (out, in) and each layer (and each
attention head) is initialised on its own, as a separate Linear layer would be.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptspec._core import Shape
from perceptspec._spec import GraphAttention, GraphConv, Initializer
from perceptspec._torch._init import initialise
from perceptspec._torch._non_lin import NON_LIN_MODULES
from perceptspec._torch._tables import torch_builders


def _empty(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape))  # the build rule fills it


class GraphConvLayer(nn.Module):
    """One graph convolution: `weight` W (out, in) and `bias` b (out,) or None, as nn.Linear holds them."""

    bias: nn.Parameter | None

    def __init__(self, n_in: int, n_out: int, bias: bool) -> None:
        super().__init__()
        self.weight = _empty(n_out, n_in)
        self.register_parameter("bias", _empty(n_out) if bias else None)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, scale: torch.Tensor | None,
                s: torch.Tensor | float) -> torch.Tensor:
        """Â x W^T + b for x (..., N, in): Â = adj itself if `scale` is None, else scale (adj + s I) scale^T."""
        h = F.linear(x, self.weight)
        if scale is None:
            h = adj @ h
        else:
            h = scale * h
            h = scale * (adj @ h + s * h)
        return h if self.bias is None else h + self.bias


class GraphConvModule(nn.Module):
    """forward(x (..., N, F), adj (..., N, N)) -> (..., N, hidden_features[-1]); see `ps.GraphConv`.

    `layers.i` hold W (out, in) and b (out,), `node_self_importance` the learned s (trainable only). Â H is
    computed as d * (A (d * H) + s d * H) with d = D^-1/2, never building Â or the identity.
    """

    def __init__(self, block: GraphConv, n_in: int) -> None:
        super().__init__()
        self.preprocess_adj = block.preprocess_adj
        sizes = (n_in, *block.hidden_features)
        self.layers = nn.ModuleList(GraphConvLayer(a, b, bias)
                                    for a, b, bias in zip(sizes, sizes[1:], block.layer_biases))
        self.non_lins = nn.ModuleList(NON_LIN_MODULES[name]() for name in block.layer_non_lins)
        self.node_self_importance: torch.Tensor | float = block.node_self_importance
        if block.trainable_node_self_importance:
            self.node_self_importance = nn.Parameter(torch.tensor(block.node_self_importance))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        adj = adj.to(x.dtype)  # a bool adjacency counts 1 per edge
        s = self.node_self_importance
        scale = None
        if self.preprocess_adj:
            degree = adj.sum(-1, keepdim=True) + s  # (..., N, 1): row sums of A + s I
            positive = degree > 0
            # D^-1/2, 0 where the degree is not positive; rsqrt only sees positive values, so no NaN gradient either
            scale = torch.where(positive, torch.where(positive, degree, 1.0).rsqrt(), 0.0)
        for layer, non_lin in zip(self.layers, self.non_lins):
            x = non_lin(layer(x, adj, scale, s))
        return x

    def extra_repr(self) -> str:
        trainable = isinstance(self.node_self_importance, nn.Parameter)
        return f"preprocess_adj={self.preprocess_adj}, trainable_node_self_importance={trainable}"


@torch_builders.register(GraphConv)
def _graph_conv_build_rule(block: GraphConv, ins: tuple[Shape, ...], init: Initializer,
                           generator: torch.Generator | None) -> nn.Module:
    module = GraphConvModule(block, ins[0][-1])
    for layer in module.layers:
        assert isinstance(layer, GraphConvLayer)
        initialise(init, layer.weight, layer.bias, generator)
    return module


class GraphAttentionLayer(nn.Module):
    """One multi-head GAT layer: `weight` (heads * features, in) stacks the heads' W (each (features, in)),
    `attention` (heads, 2, features) their a1 (scoring the attending node i) and a2 (the attended node j)."""

    def __init__(self, n_in: int, features: int, heads: int, alpha: float, dropout: float, averaged: bool) -> None:
        super().__init__()
        self.features, self.heads, self.alpha, self.dropout, self.averaged = features, heads, alpha, dropout, averaged
        self.weight = _empty(heads * features, n_in)
        self.attention = _empty(heads, 2, features)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (..., N, in), allowed (..., N, N) bool with a True diagonal -> (..., N, heads * features or features)."""
        h = F.linear(x, self.weight)
        h = h.reshape(*h.shape[:-1], self.heads, self.features).transpose(-3, -2)  # (..., H, N, f)
        scores = h @ self.attention.transpose(-2, -1)  # (..., H, N, 2): a1.h_i and a2.h_i
        e = F.leaky_relu(scores[..., :1] + scores[..., 1].unsqueeze(-2), self.alpha)  # (..., H, N, N)
        att = e.masked_fill(~allowed.unsqueeze(-3), float("-inf")).softmax(-1)
        if self.dropout:
            att = F.dropout(att, self.dropout, self.training)
        out = att @ h  # (..., H, N, f)
        return out.mean(-3) if self.averaged else out.transpose(-3, -2).flatten(-2)

    def extra_repr(self) -> str:
        return (f"heads={self.heads}, features={self.features}, alpha={self.alpha}, dropout={self.dropout}, "
                f"averaged={self.averaged}")


class GraphAttentionModule(nn.Module):
    """forward(x (..., N, F), adj (..., N, N)) -> (..., N, out); see `ps.GraphAttention`."""

    def __init__(self, block: GraphAttention, n_in: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GraphAttentionLayer(a, f, h, alpha, p, avg)
            for (a, f, h, avg), alpha, p in zip(block.layer_sizes(n_in), block.layer_alphas, block.layer_dropouts))
        self.non_lins = nn.ModuleList(NON_LIN_MODULES[name]() for name in block.layer_non_lins)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        n = adj.shape[-1]
        allowed = (adj > 0) | torch.eye(n, dtype=torch.bool, device=adj.device)  # every node attends to itself
        for layer, non_lin in zip(self.layers, self.non_lins):
            x = non_lin(layer(x, allowed))
        return x


@torch_builders.register(GraphAttention)
def _graph_attention_build_rule(block: GraphAttention, ins: tuple[Shape, ...], init: Initializer,
                                generator: torch.Generator | None) -> nn.Module:
    module = GraphAttentionModule(block, ins[0][-1])
    for layer in module.layers:
        assert isinstance(layer, GraphAttentionLayer)
        for head in range(layer.heads):
            initialise(init, layer.weight[head * layer.features:(head + 1) * layer.features], None, generator)
            initialise(init, layer.attention[head], None, generator)
    return module
