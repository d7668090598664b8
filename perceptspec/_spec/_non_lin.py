"""Names of non-linearities. Specs hold names, not classes, so they stay hashable and serializable."""

from __future__ import annotations

__all__ = ["NON_LINEARITIES"]

NON_LINEARITIES = ("relu", "tanh", "elu", "leaky_relu", "sigmoid", "gelu", "identity")

# Maze writes non-linearities as torch class paths; accept those (and the bare class names) too.
_ALIASES = {
    "relu": "relu", "tanh": "tanh", "elu": "elu", "leakyrelu": "leaky_relu", "leaky_relu": "leaky_relu",
    "sigmoid": "sigmoid", "gelu": "gelu", "identity": "identity",
}


def canonical_non_lin(name: object) -> object:
    """'torch.nn.ReLU', 'nn.ReLU', 'ReLU' and 'relu' all become 'relu'; an unknown name is a ValueError."""
    if not isinstance(name, str):
        return name  # the type check reports it
    short = name.rsplit(".", 1)[-1].lower()
    if short not in _ALIASES:
        raise ValueError(f"expected one of {', '.join(NON_LINEARITIES)} (or Maze's 'torch.nn.ReLU' style)")
    return _ALIASES[short]
