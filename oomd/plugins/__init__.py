"""The built-in plugins: one module per plugin, named after its registry name.

Importing this package imports every module in it, and each registers itself.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
