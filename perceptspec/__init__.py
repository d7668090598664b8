"""perceptspec: RL policy and critic networks as frozen specs, pure folds over them, and a torch interpreter.

`import perceptspec` imports neither torch nor gymnasium; `materialize` imports torch when first called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from perceptspec._composer import Models as Models
from perceptspec._composer import compose as compose
from perceptspec._errors import NonFiniteError as NonFiniteError
from perceptspec._errors import NotAllowedError as NotAllowedError
from perceptspec._errors import PerceptSpecError as PerceptSpecError
from perceptspec._errors import ShapeError as ShapeError
from perceptspec._errors import SignatureError as SignatureError
from perceptspec._errors import SpecError as SpecError
from perceptspec._fold import Change as Change
from perceptspec._fold import SpecDiff as SpecDiff
from perceptspec._fold import count_parameters as count_parameters
from perceptspec._fold import diff as diff
from perceptspec._fold import fingerprint as fingerprint
from perceptspec._fold import from_dict as from_dict
from perceptspec._fold import from_yaml as from_yaml
from perceptspec._fold import infer_shapes as infer_shapes
from perceptspec._fold import render as render
from perceptspec._fold import summary as summary
from perceptspec._fold import to_dict as to_dict
from perceptspec._fold import to_yaml as to_yaml
from perceptspec._fold._state import StateKey as StateKey
from perceptspec._fold._state import StateLayout as StateLayout
from perceptspec._fold._state import state_layout as state_layout
from perceptspec._materialize import carry_state as carry_state
from perceptspec._materialize import initial_state as initial_state
from perceptspec._materialize import materialize as materialize
from perceptspec._materialize import recurrent_mode as recurrent_mode
from perceptspec._materialize import transfer as transfer
from perceptspec._render_models import render_models as render_models
from perceptspec._saved import load as load
from perceptspec._saved import save as save
from perceptspec._spec import *  # every block, combinator and initialiser
from perceptspec._trust import allow as allow
from perceptspec._trust import allowed_modules as allowed_modules

from perceptspec._spec import _public_names

#: every public name that `import perceptspec` defines: the spec layer's (blocks, Graph, initialisers,
#: register_function), the folds, the interpreter, the composer, trust and the errors. Public too, but loaded on
#: first use (so not here, or `from perceptspec import *` would import torch): SpecModule, spaces, distributions
__all__ = [*_public_names(), "Models", "NonFiniteError", "NotAllowedError", "PerceptSpecError", "ShapeError",
           "SignatureError", "SpecError", "allow", "allowed_modules", "compose", "count_parameters", "from_dict",
           "from_yaml", "infer_shapes", "load", "materialize", "render", "render_models", "save", "summary",
           "to_dict", "to_yaml"]
LAZY_NAMES = ("SpecModule", "distributions", "spaces")

# help(ps.materialize) and tracebacks name the package that exports them, not the private module they live in
# (classes keep theirs: their annotations resolve in it, and pickles name it)
for _function in (allow, allowed_modules, compose, count_parameters, from_dict, from_yaml, infer_shapes, load,
                  materialize, register_function, render, render_models, save, summary, to_dict, to_yaml):
    _function.__module__ = __name__
del _function

if TYPE_CHECKING:
    from perceptspec import distributions as distributions
    from perceptspec import spaces as spaces
    from perceptspec._torch import SpecModule as SpecModule
    from perceptspec._torch._transfer import TransferReport as TransferReport

_LAZY_MODULES = ("spaces", "distributions")  # they import gymnasium (and torch): loaded on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"perceptspec.{name}")
    if name == "SpecModule":  # the module class lives with torch; import it only when asked for
        from perceptspec._torch import SpecModule

        return SpecModule
    if name == "TransferReport":
        from perceptspec._torch._transfer import TransferReport

        return TransferReport
    raise AttributeError(f"module 'perceptspec' has no attribute {name!r}")
