"""Pure rules of the head blocks: StateIndependentLogStd."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import label_rules, param_rules, require_rank, shape_rules
from perceptspec._spec import StateIndependentLogStd


@shape_rules.register(StateIndependentLogStd)
def _state_independent_log_std_shape_rule(block: StateIndependentLogStd, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (means,) = ins
    require_rank(means, 0, 1, "(..., action dims)")
    return (means[:-1] + (2 * means[-1],),)


@param_rules.register(StateIndependentLogStd)
def _state_independent_log_std_param_rule(block: StateIndependentLogStd, ins: tuple[Shape, ...]) -> int:
    return ins[0][-1]


@label_rules.register(StateIndependentLogStd)
def _state_independent_log_std_label_rule(block: StateIndependentLogStd, ins: tuple[Shape, ...]) -> str:
    return f"StateIndependentLogStd {ins[0][-1]} means + {ins[0][-1]} log stds"
