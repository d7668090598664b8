"""Names of non-linearities. Specs hold names, not classes, so they stay hashable and serializable.

Every element-wise `torch.nn` activation that takes no arguments and holds no parameters has a name here: the
snake_case of its class ('LeakyReLU' -> 'leaky_relu', 'SiLU' -> 'silu'). Maze's spellings are accepted and
normalised: a class path ('torch.nn.ReLU', 'nn.ReLU'), the bare class name ('ReLU'), or the class object itself
(`torch.nn.SELU`, read by name: the spec layer imports no torch). Activations that would change the network's
shape or hold parameters are refused with what to write instead.
"""

from __future__ import annotations

from perceptspec._spec._field_doc import document_choices

__all__ = ["NON_LINEARITIES"]

#: short name -> torch.nn class name
TORCH_CLASSES = {
    "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "rrelu": "RReLU", "elu": "ELU", "celu": "CELU",
    "selu": "SELU", "gelu": "GELU", "silu": "SiLU", "mish": "Mish", "sigmoid": "Sigmoid", "log_sigmoid": "LogSigmoid",
    "hardsigmoid": "Hardsigmoid", "tanh": "Tanh", "hardtanh": "Hardtanh", "hardswish": "Hardswish",
    "softplus": "Softplus", "softsign": "Softsign", "softshrink": "Softshrink", "hardshrink": "Hardshrink",
    "tanhshrink": "Tanhshrink", "identity": "Identity",
}
NON_LINEARITIES = tuple(TORCH_CLASSES)
"""Every `non_lin` name a block takes (Maze's 'torch.nn.ReLU' spellings are normalised to these)."""

#: any spelling, lower-cased without '_' -> the short name
_ALIASES = {**{n.replace("_", ""): n for n in TORCH_CLASSES}, **{c.lower(): n for n, c in TORCH_CLASSES.items()}}
#: torch.nn activations that are not a drop-in element-wise non-linearity, and what to use instead
_REFUSED = {
    "prelu": "PReLU holds a parameter per layer, so it is no non_lin: use 'leaky_relu', or a TorchModel block",
    "glu": "GLU halves the last dim, so it is no non_lin: use a TorchModel block",
    "threshold": "Threshold needs its threshold and value, so it is no non_lin: use a TorchModel block",
    "softmax": "Softmax normalises over a dim, so it is no non_lin: use Functional(func='softmax_last') after the "
               "layer",
    "logsoftmax": "LogSoftmax normalises over a dim, so it is no non_lin: use Functional(func='log_softmax_last') "
                  "after the layer",
    "softmin": "Softmin normalises over a dim, so it is no non_lin: use a Functional block",
    "softmax2d": "Softmax2d normalises over channels, so it is no non_lin: use a Functional block",
}


def canonical_non_lin(name: object) -> object:
    """'torch.nn.ReLU', 'nn.ReLU', 'ReLU', `torch.nn.ReLU` (the class) and 'relu' all become 'relu'; an unknown name
    is a ValueError listing the names."""
    if isinstance(name, type):
        if not name.__module__.startswith("torch.nn"):
            raise ValueError("expected a torch.nn activation class or its name")
        name = name.__name__
    if not isinstance(name, str):
        return name  # the type check reports it
    key = name.rsplit(".", 1)[-1].lower().replace("_", "")
    if key in _REFUSED:
        raise ValueError(_REFUSED[key])
    if key not in _ALIASES:
        raise ValueError(f"expected one of {', '.join(NON_LINEARITIES)} (or Maze's 'torch.nn.ReLU' style)")
    return _ALIASES[key]


document_choices(canonical_non_lin, NON_LINEARITIES)
