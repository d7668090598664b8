"""Rules of `Ensemble`: the member spec's own fold, its outputs given a member dim, its parameters `size` times."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._program import lower
from perceptspec._fold._rules import label_rules, param_rules, shape_rules
from perceptspec._spec import Ensemble, Graph

# The shape and parameter folds import this package (it registers the rules they run), so the rules here, which
# run those folds on the member spec, import them when first called.


def member_shapes(block: Ensemble, ins: tuple[Shape, ...]) -> dict[str, Shape]:
    """The member spec's input shapes: the ensemble's, as every member reads the same inputs."""
    return dict(zip(block.in_keys, ins))


@shape_rules.register(Ensemble)
def _ensemble_shape_rule(block: Ensemble, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    from perceptspec._fold._shapes import trace

    shapes = trace(block.spec, member_shapes(block, ins)).shapes
    return tuple((block.size, *shapes[k]) for k in lower(block.spec).outputs)


@param_rules.register(Ensemble)
def _ensemble_param_rule(block: Ensemble, ins: tuple[Shape, ...]) -> int:
    from perceptspec._fold._params import count_parameters

    return block.size * count_parameters(block.spec, member_shapes(block, ins))


@label_rules.register(Ensemble)
def _ensemble_label_rule(block: Ensemble, ins: tuple[Shape, ...]) -> str:
    inner = block.spec
    if isinstance(inner, Graph):
        member = f"Graph ({len(lower(inner).eqns)} blocks)"
    else:
        member = label_rules.lookup(type(inner))(inner, ins)
    return f"Ensemble ×{block.size} {member}"
