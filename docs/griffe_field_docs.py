"""A griffe extension for the API reference: descriptor classes keep the docstring Python shows for them.

griffe reads the source, so it would see only the text written in a block's class body; `help(ps.Dense)` shows that
text with the field list generated from the dataclass (`perceptspec/_spec/_field_doc.py`). This extension gives
griffe the same text, read from the class at run time, for every class of the spec layer.
"""

from __future__ import annotations

import importlib
from typing import Any

import griffe


class RuntimeDocstrings(griffe.Extension):
    """Replace a spec-layer class's docstring by its `__doc__` at run time (fields included)."""

    def on_class(self, *, cls: griffe.Class, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if not cls.path.startswith("perceptspec._spec."):
            return
        obj = getattr(importlib.import_module(cls.module.path), cls.name, None)
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str) and doc:
            old = cls.docstring
            cls.docstring = griffe.Docstring(doc, parent=cls, lineno=old.lineno if old else None,
                                             endlineno=old.endlineno if old else None)
