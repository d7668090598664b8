"""perceptspec: RL policy and critic networks as frozen specs, pure folds over them, and a torch interpreter.

`import perceptspec` imports neither torch nor gymnasium; `materialize` imports torch when first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perceptspec._errors import PerceptSpecError, ShapeError, SignatureError, SpecError
from perceptspec._fold import count_parameters, from_dict, from_yaml, infer_shapes, summary, to_dict, to_yaml
from perceptspec._materialize import materialize
from perceptspec._spec import (NON_LINEARITIES, BernoulliBias, Bias, Block, CategoricalBias, ConstantBias, Dense,
                               Graph, Initializer, LinearOutput, NormC, Orthogonal, TorchDefault, XavierUniform)

if TYPE_CHECKING:
    from perceptspec._torch import SpecModule

__all__ = [
    "NON_LINEARITIES", "BernoulliBias", "Bias", "Block", "CategoricalBias", "ConstantBias", "Dense", "Graph",
    "Initializer", "LinearOutput", "NormC", "Orthogonal", "PerceptSpecError", "ShapeError", "SignatureError",
    "SpecError", "SpecModule", "TorchDefault", "XavierUniform", "count_parameters", "from_dict", "from_yaml",
    "infer_shapes", "materialize", "summary", "to_dict", "to_yaml",
]


def __getattr__(name: str) -> Any:
    if name == "SpecModule":  # the module class lives with torch; import it only when asked for
        from perceptspec._torch import SpecModule

        return SpecModule
    raise AttributeError(f"module 'perceptspec' has no attribute {name!r}")
