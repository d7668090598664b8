"""Graph neural network blocks on dense adjacency matrices: Maze's GraphConvBlock and GraphAttentionBlock.

Both read node features (..., N, F) and an adjacency (..., N, N) with the same leading dims, and stack layers that
mix each node's features with its neighbours'. Per-layer settings take one value for every layer or a list with
one value per layer, as in Maze. The adjacency is expected symmetric (Maze asserts it; it is not checked at run
time). No node ever ends up with NaN features, isolated nodes included: see each block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, ClassVar, TypeVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._field_doc import document_choices
from perceptspec._spec._non_lin import NON_LINEARITIES, canonical_non_lin

__all__ = ["GraphAttention", "GraphConv"]

T = TypeVar("T")


def _canonical_non_lins(value: object) -> object:
    """Maze's 'torch.nn.ReLU' style names, one per layer or one for all, to the short names."""
    return tuple(canonical_non_lin(v) for v in value) if isinstance(value, tuple) else value


document_choices(_canonical_non_lins, NON_LINEARITIES)


def per_layer(value: T | Sequence[T], n_layers: int) -> tuple[T, ...]:
    """A per-layer setting as one value per layer: a single value (or a 1-list) applies to every layer."""
    if isinstance(value, tuple):
        return value * n_layers if len(value) == 1 else value
    return (value,) * n_layers  # type: ignore[return-value]  # not a tuple here, so a single T


def _per_layer_problems(field: str, value: object, n_layers: int) -> Iterator[str]:
    if isinstance(value, tuple) and len(value) not in (1, n_layers):
        yield (f"field '{field}': expected one value for all layers or one per layer ({n_layers}, as "
               f"hidden_features), got {list(value)}")


def _hidden_features_problems(hidden_features: tuple[int, ...]) -> Iterator[str]:
    if not hidden_features or any(h <= 0 for h in hidden_features):
        yield f"field 'hidden_features': expected one or more positive ints, got {list(hidden_features)}"


@descriptor
class GraphConv(Block):
    """Maze's GraphConvBlock: graph convolution layers (Kipf & Welling), H' = non_lin(Â H W + b) per layer.

    in_keys: node features (..., N, F), then the adjacency (..., N, N) (bool, 0/1 or weighted floats).
    out_keys: (..., N, hidden_features[-1]). With `preprocess_adj` the block normalises the adjacency once per call:
    Â = D^-1/2 (A + s I) D^-1/2 with s = `node_self_importance` (a learned scalar, starting at that value, if
    `trainable_node_self_importance`) and D the row sums of A + s I; a node whose row sum is not positive (an
    isolated node with s = 0) gets Â rows and columns of 0, so its output is non_lin(b), not NaN. Without
    `preprocess_adj` the adjacency is taken as already normalised and used as it is (the self-importance then
    has no effect; a trainable one is still a parameter, as in Maze). `bias` and `non_lins` are per layer.

    Examples:
        >>> block = ps.GraphConv(in_keys=["nodes", "adjacency"], out_keys="h", hidden_features=[16])
        >>> ps.infer_shapes(block, {"nodes": (6, 3), "adjacency": (6, 6)})["h"]
        (6, 16)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lins": _canonical_non_lins}
    n_inputs: ClassVar[int | None] = 2

    hidden_features: Sequence[int]
    """Output features of each layer."""
    bias: bool | Sequence[bool] = True
    """A bias per layer, or one flag for all."""
    non_lins: Sequence[str] = ("relu",)
    """Activation of each layer, or one for all."""
    node_self_importance: float = 1.0
    """Weight s of the self-loops added to the adjacency."""
    trainable_node_self_importance: bool = False
    """Learn s (a parameter starting at `node_self_importance`)."""
    preprocess_adj: bool = True
    """Normalise A + sI as D^-1/2 (A + sI) D^-1/2 on every call."""

    def input_roles(self) -> tuple[str, ...]:
        # a raw adjacency may be bool (Maze adds the float identity to it); a normalised one is weights
        return ("features", "mask" if self.preprocess_adj else "features")

    @property
    def layer_biases(self) -> tuple[bool, ...]:
        return per_layer(self.bias, len(self.hidden_features))

    @property
    def layer_non_lins(self) -> tuple[str, ...]:
        return per_layer(tuple(self.non_lins), len(self.hidden_features))

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        n_layers = len(self.hidden_features)
        yield from _hidden_features_problems(tuple(self.hidden_features))
        yield from _per_layer_problems("bias", self.bias, n_layers)
        yield from _per_layer_problems("non_lins", self.non_lins, n_layers)
        if not math.isfinite(self.node_self_importance):
            yield f"field 'node_self_importance': expected a finite float, got {self.node_self_importance}"


@descriptor
class GraphAttention(Block):
    """Maze's GraphAttentionBlock: multi-head graph attention layers (Velickovic et al., GAT), no bias.

    in_keys: node features (..., N, F), then the adjacency (..., N, N) (bool, 0/1 or weighted floats): node i
    attends to node j where A[i, j] > 0, and always to itself (Maze adds self-loops), so no node is left with
    nothing to attend to. Per layer and head: h = H W, e_ij = LeakyReLU(a1.h_i + a2.h_j; `attention_alpha`),
    softmax over j, dropout (`attention_dropout`, training mode only), H'_i = sum_j att_ij h_j; the heads are
    concatenated, except in the last layer if `avg_last_head_attentions` (then averaged), then `non_lins`.
    out_keys: (..., N, hidden_features[-1]), times n_heads[-1] unless the last heads are averaged. `non_lins`,
    `n_heads`, `attention_alpha` and `attention_dropout` are per layer.

    Examples:
        >>> block = ps.GraphAttention(in_keys=["nodes", "adjacency"], out_keys="h", hidden_features=[8],
        ...                           n_heads=2)
        >>> ps.infer_shapes(block, {"nodes": (6, 3), "adjacency": (6, 6)})["h"]
        (6, 8)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lins": _canonical_non_lins}
    n_inputs: ClassVar[int | None] = 2

    hidden_features: Sequence[int]
    """Features per head of each layer."""
    non_lins: Sequence[str] = ("relu",)
    """Activation of each layer, or one for all."""
    n_heads: int | Sequence[int] = 8
    """Heads of each layer, or one count for all."""
    attention_alpha: float | Sequence[float] = 0.2
    """Negative slope of the LeakyReLU in the scores, per layer or one for all."""
    avg_last_head_attentions: bool = True
    """Average the last layer's heads instead of concatenating them."""
    attention_dropout: float | Sequence[float] = 0.0
    """Dropout on the attention weights (training mode), per layer or one."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features", "mask")

    @property
    def layer_non_lins(self) -> tuple[str, ...]:
        return per_layer(tuple(self.non_lins), len(self.hidden_features))

    @property
    def layer_heads(self) -> tuple[int, ...]:
        return per_layer(self.n_heads, len(self.hidden_features))

    @property
    def layer_alphas(self) -> tuple[float, ...]:
        return per_layer(self.attention_alpha, len(self.hidden_features))

    @property
    def layer_dropouts(self) -> tuple[float, ...]:
        return per_layer(self.attention_dropout, len(self.hidden_features))

    def layer_sizes(self, in_features: int) -> tuple[tuple[int, int, int, bool], ...]:
        """(in features, features per head, heads, averaged) of every layer, for node features of `in_features`."""
        sizes = []
        last = len(self.hidden_features) - 1
        for i, (features, heads) in enumerate(zip(self.hidden_features, self.layer_heads)):
            averaged = self.avg_last_head_attentions and i == last
            sizes.append((in_features, features, heads, averaged))
            in_features = features if averaged else features * heads
        return tuple(sizes)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        n_layers = len(self.hidden_features)
        yield from _hidden_features_problems(tuple(self.hidden_features))
        for field in ("non_lins", "n_heads", "attention_alpha", "attention_dropout"):
            yield from _per_layer_problems(field, getattr(self, field), n_layers)
        heads = self.n_heads if isinstance(self.n_heads, tuple) else (self.n_heads,)
        if any(h <= 0 for h in heads):
            yield f"field 'n_heads': expected positive ints, got {self.n_heads}"
        alphas = self.attention_alpha if isinstance(self.attention_alpha, tuple) else (self.attention_alpha,)
        if not all(math.isfinite(a) for a in alphas):
            yield f"field 'attention_alpha': expected finite floats, got {self.attention_alpha}"
        dropouts = self.attention_dropout if isinstance(self.attention_dropout, tuple) else (self.attention_dropout,)
        if not all(0.0 <= p < 1.0 for p in dropouts):
            yield f"field 'attention_dropout': expected probabilities in [0, 1), got {self.attention_dropout}"
