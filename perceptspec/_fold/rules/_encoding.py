"""Pure rules of the encoding blocks: OneHot, Embedding and ToFloat."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, require_rank, shape_rules
from perceptspec._spec import Embedding, OneHot, ToFloat


def _per_entry(counts: tuple[int, ...], x: Shape, field: str) -> None:
    """An input whose last dim holds one index per entry of `counts`."""
    require_rank(x, 0, 1, f"(..., {len(counts)})")
    if x[-1] != len(counts):
        raise Mismatch(0, f"a last dim of {len(counts)}, one index per entry of {field}={list(counts)}", x)


@shape_rules.register(OneHot)
def _one_hot_shape_rule(block: OneHot, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    counts = block.index_limits()
    if isinstance(counts, int):
        return (x + (counts,),)
    _per_entry(counts, x, "num_classes")
    return (x[:-1] + (sum(counts),),)


@label_rules.register(OneHot)
def _one_hot_label_rule(block: OneHot, ins: tuple[Shape, ...]) -> str:
    counts = block.index_limits()
    return f"OneHot {counts}" if isinstance(counts, int) else f"OneHot {'+'.join(map(str, counts))}→{sum(counts)}"


@shape_rules.register(Embedding)
def _embedding_shape_rule(block: Embedding, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    counts = block.index_limits()
    if not isinstance(counts, int):
        _per_entry(counts, x, "num_embeddings")
    return (x + (block.embedding_dim,),)


@param_rules.register(Embedding)
def _embedding_param_rule(block: Embedding, ins: tuple[Shape, ...]) -> int:
    counts = block.index_limits()
    return (counts if isinstance(counts, int) else sum(counts)) * block.embedding_dim


@label_rules.register(Embedding)
def _embedding_label_rule(block: Embedding, ins: tuple[Shape, ...]) -> str:
    counts = block.index_limits()
    rows = counts if isinstance(counts, int) else "+".join(map(str, counts))
    return f"Embedding {rows}→{block.embedding_dim}"


@shape_rules.register(ToFloat)
def _to_float_shape_rule(block: ToFloat, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    return ins


@param_rules.register(OneHot, ToFloat)
def _encoding_param_rule(block: object, ins: tuple[Shape, ...]) -> int:
    return 0


@label_rules.register(ToFloat)
def _to_float_label_rule(block: ToFloat, ins: tuple[Shape, ...]) -> str:
    if block.scale == 1:
        return "ToFloat"
    inverse = 1 / block.scale
    return f"ToFloat ÷{round(inverse)}" if abs(inverse - round(inverse)) < 1e-9 * abs(inverse) else \
        f"ToFloat ×{block.scale:g}"
