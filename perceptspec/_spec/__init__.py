"""The spec layer: frozen, hashable descriptors. Imports nothing from torch.

Every public name of the modules below is public API (re-exported by `perceptspec`); each module lists its names
in `__all__`. A new block family adds its module here with one line.
"""

from perceptspec._spec._attention import *
from perceptspec._spec._block import *
from perceptspec._spec._conv import *
from perceptspec._spec._dense import *
from perceptspec._spec._encoding import *
from perceptspec._spec._ensemble import *
from perceptspec._spec._graph import *
from perceptspec._spec._graph_nn import *
from perceptspec._spec._heads import *
from perceptspec._spec._init import *
from perceptspec._spec._layout import *
from perceptspec._spec._non_lin import *
from perceptspec._spec._normalization import *
from perceptspec._spec._recurrent import *
from perceptspec._spec._shape_ops import *
from perceptspec._spec._stateful import *
from perceptspec._spec._torch_model import *


def _public_names() -> list[str]:
    """The names the star-imports above bring in (every family module's `__all__`): what `perceptspec` exports."""
    import sys

    return sorted({name for module_name, module in list(sys.modules.items())
                   if module_name.startswith(f"{__name__}._") for name in getattr(module, "__all__", ())})
