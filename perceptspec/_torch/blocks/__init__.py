"""Importing this package registers every block kind's build rules.

Each module here holds the rules of one block family; all of them are imported, so a new family is one new file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
