"""Weight initialisers and output-bias initialisers: part of the spec, applied when it is materialized."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

from perceptspec._spec._descriptor import Descriptor, descriptor

__all__ = ["BernoulliBias", "Bias", "CategoricalBias", "ConstantBias", "Initializer", "KaimingUniform", "NormC", "Orthogonal",
           "TorchDefault", "XavierUniform"]


def _positive_finite(field: str, value: float) -> Iterator[str]:
    if not (value > 0 and math.isfinite(value)):
        yield f"field '{field}': expected a positive finite float, got {value!r}"


@descriptor(kw_only=False)
class Initializer(Descriptor):
    """How a block's weights (and biases, unless a head bias says otherwise) are initialised.

    Examples:
        >>> isinstance(ps.NormC(0.01), ps.Initializer)
        True
    """

    _abstract: ClassVar[bool] = True


@descriptor(kw_only=False)
class TorchDefault(Initializer):
    """PyTorch's own default for the layer (e.g. `nn.Linear.reset_parameters`).

    Examples:
        >>> ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8], init=ps.TorchDefault()).init
        TorchDefault()
    """


@descriptor(kw_only=False)
class NormC(Initializer):
    """Maze's normc: weights drawn N(0, 1), then scaled to norm `std` over their input dim (dim 1: each output unit's
    row of a Linear; each output channel's input channels at every kernel position of a conv, as Maze); biases 0.

    Examples:
        >>> ps.LinearOutput(in_keys="h", out_keys="action", output_units=2, init=ps.NormC(0.01)).init
        NormC(std=0.01)
    """

    std: float = 1.0
    """Norm of each output unit's weight row (Maze's `std`: 1.0 for bodies, 0.01 for policy heads)."""

    def _value_problems(self) -> Iterator[str]:
        return _positive_finite("std", self.std)


@descriptor(kw_only=False)
class Orthogonal(Initializer):
    """Orthogonal weights scaled by `gain` (e.g. sqrt(2) for ReLU bodies, 0.01 for policy heads); biases 0.

    Examples:
        >>> ps.Orthogonal(2 ** 0.5)
        Orthogonal(gain=1.4142135623730951)
    """

    gain: float = 1.0
    """Scale of the orthogonal matrix."""

    def _value_problems(self) -> Iterator[str]:
        return _positive_finite("gain", self.gain)


@descriptor(kw_only=False)
class XavierUniform(Initializer):
    """Glorot uniform weights scaled by `gain`; biases 0.

    Examples:
        >>> ps.XavierUniform()
        XavierUniform()
    """

    gain: float = 1.0
    """Scale of the Glorot bound."""

    def _value_problems(self) -> Iterator[str]:
        return _positive_finite("gain", self.gain)


#: the non-linearities torch.nn.init.calculate_gain knows without a parameter
KAIMING_NON_LINS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu")


@descriptor(kw_only=False)
class KaimingUniform(Initializer):
    """He uniform weights for a following `non_lin` ('relu', 'leaky_relu', 'tanh', ...); biases 0.

    Examples:
        >>> ps.KaimingUniform("leaky_relu")
        KaimingUniform(non_lin='leaky_relu')
    """

    _choices: ClassVar[Mapping[str, Sequence[str]]] = {"non_lin": KAIMING_NON_LINS}

    non_lin: str = "relu"
    """The activation that follows, for torch's `calculate_gain`."""

    def _value_problems(self) -> Iterator[str]:
        if self.non_lin not in KAIMING_NON_LINS:
            yield f"field 'non_lin': expected relu, leaky_relu, tanh, sigmoid, linear or selu, got {self.non_lin!r}"


@descriptor(kw_only=False)
class Bias(Descriptor):
    """Initial bias of an output head, which sets the untrained policy's action distribution.

    Examples:
        >>> isinstance(ps.ConstantBias(0.0), ps.Bias)
        True
    """

    _abstract: ClassVar[bool] = True

    def size_problem(self, units: int) -> str | None:
        """Why this bias cannot initialise a head of `units` outputs, or None when it can."""
        return None


@descriptor(kw_only=False)
class ConstantBias(Bias):
    """Every bias entry set to `value`.

    Examples:
        >>> ps.LinearOutput(in_keys="h", out_keys="value", output_units=1, bias=ps.ConstantBias(0.5)).bias
        ConstantBias(value=0.5)
    """

    value: float = 0.0
    """The value of every bias entry."""

    def _value_problems(self) -> Iterator[str]:
        if not math.isfinite(self.value):
            yield f"field 'value': expected a finite float, got {self.value!r}"


@descriptor(kw_only=False)
class CategoricalBias(Bias):
    """Bias = log(probs), so the untrained categorical head picks action i with probability probs[i].

    Examples:
        >>> ps.CategoricalBias([0.25, 0.75])
        CategoricalBias(probs=[0.25, 0.75])
    """

    probs: Sequence[float]
    """Initial probability of each action, one per output unit, summing to 1."""

    def _value_problems(self) -> Iterator[str]:
        if not self.probs:
            yield "field 'probs': expected at least one probability, got ()"
        elif any(not 0.0 < p <= 1.0 for p in self.probs):
            yield f"field 'probs': expected probabilities in (0, 1], got {list(self.probs)}"
        elif not math.isclose(sum(self.probs), 1.0, rel_tol=1e-6, abs_tol=1e-6):
            yield f"field 'probs': expected probabilities summing to 1, got sum {sum(self.probs):g}"

    def size_problem(self, units: int) -> str | None:
        if len(self.probs) != units:
            return f"CategoricalBias has {len(self.probs)} probabilities for {units} output units"
        return None


@descriptor(kw_only=False)
class BernoulliBias(Bias):
    """Bias = log(p) - log(1 - p), so each untrained binary head fires with probability p.

    `p` is one probability for every unit, or one per unit.

    Examples:
        >>> ps.BernoulliBias(0.1)
        BernoulliBias(p=0.1)
    """

    p: float | Sequence[float]
    """Initial probability that a binary action fires: one for all units or one per unit."""

    def _value_problems(self) -> Iterator[str]:
        ps = self.p if isinstance(self.p, tuple) else (self.p,)
        if not ps or any(not 0.0 < p < 1.0 for p in ps):
            yield f"field 'p': expected probabilities in (0, 1), got {self.p!r}"

    def size_problem(self, units: int) -> str | None:
        if isinstance(self.p, tuple) and len(self.p) != units:
            return f"BernoulliBias has {len(self.p)} probabilities for {units} output units"
        return None
