"""Importing this package registers every block kind's pure rules (shape, parameter count, label)."""

from perceptspec._fold.rules import _dense

__all__ = ["_dense"]
