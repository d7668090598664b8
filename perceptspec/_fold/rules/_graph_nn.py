"""Pure rules of the graph blocks: GraphConv and GraphAttention."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, arrow, label_rules, param_rules, require_rank, shape_rules
from perceptspec._spec import GraphAttention, GraphConv


def _require_graph(ins: tuple[Shape, ...]) -> None:
    """Node features (..., N, F) and an adjacency (..., N, N) with the same N and leading dims."""
    x, adj = ins
    require_rank(x, 0, 2, "(..., N, F)")
    lead, n = x[:-2], x[-2]
    if adj != lead + (n, n):
        raise Mismatch(1, f"an adjacency (..., N, N) = {lead + (n, n)} for the node features {x} (N={n}, the same "
                          f"leading dims)", adj)


def _non_lins_label(non_lins: tuple[str, ...]) -> str:
    return non_lins[0] if len(set(non_lins)) == 1 else "/".join(non_lins)


@shape_rules.register(GraphConv)
def _graph_conv_shape_rule(block: GraphConv, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    _require_graph(ins)
    return (ins[0][:-1] + (block.hidden_features[-1],),)


@param_rules.register(GraphConv)
def _graph_conv_param_rule(block: GraphConv, ins: tuple[Shape, ...]) -> int:
    sizes = (ins[0][-1], *block.hidden_features)
    weights = sum(a * b + (b if bias else 0) for a, b, bias in zip(sizes, sizes[1:], block.layer_biases))
    return weights + int(block.trainable_node_self_importance)


@label_rules.register(GraphConv)
def _graph_conv_label_rule(block: GraphConv, ins: tuple[Shape, ...]) -> str:
    learned = " learned self-importance" if block.trainable_node_self_importance else ""
    given = "" if block.preprocess_adj else " normalised adj given"
    sizes = arrow((ins[0][-1], *block.hidden_features))
    return f"GraphConv {sizes} {_non_lins_label(block.layer_non_lins)}{learned}{given}"


@shape_rules.register(GraphAttention)
def _graph_attention_shape_rule(block: GraphAttention, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    _require_graph(ins)
    _, features, heads, averaged = block.layer_sizes(ins[0][-1])[-1]
    return (ins[0][:-1] + (features if averaged else features * heads,),)


@param_rules.register(GraphAttention)
def _graph_attention_param_rule(block: GraphAttention, ins: tuple[Shape, ...]) -> int:
    # per head: W (features, in) and the two attention vectors a1, a2 (features each)
    return sum(heads * (n_in * features + 2 * features)
               for n_in, features, heads, _ in block.layer_sizes(ins[0][-1]))


@label_rules.register(GraphAttention)
def _graph_attention_label_rule(block: GraphAttention, ins: tuple[Shape, ...]) -> str:
    layers = "→".join(f"{features}×{heads}" for _, features, heads, _ in block.layer_sizes(ins[0][-1]))
    averaged = " heads averaged" if block.avg_last_head_attentions else ""
    return f"GraphAttention {ins[0][-1]}→{layers} {_non_lins_label(block.layer_non_lins)}{averaged}"
