"""Importing this package registers every block kind's torch rules (build, emit)."""

from perceptspec._torch.blocks import _dense

__all__ = ["_dense"]
