"""The spec layer: frozen, hashable descriptors. Imports nothing from torch."""

from perceptspec._spec._block import Block
from perceptspec._spec._dense import Dense, LinearOutput
from perceptspec._spec._descriptor import Descriptor, descriptor, descriptor_kind
from perceptspec._spec._graph import Graph
from perceptspec._spec._init import (Bias, BernoulliBias, CategoricalBias, ConstantBias, Initializer, NormC,
                                     Orthogonal, TorchDefault, XavierUniform)
from perceptspec._spec._non_lin import NON_LINEARITIES

__all__ = [
    "Bias", "BernoulliBias", "Block", "CategoricalBias", "ConstantBias", "Dense", "Descriptor", "Graph",
    "Initializer", "LinearOutput", "NON_LINEARITIES", "NormC", "Orthogonal", "TorchDefault", "XavierUniform",
    "descriptor", "descriptor_kind",
]
