"""Heavy optional libraries imported on first use, not at ``import helixsim``.

``helixsim point`` prices one configuration in well under a second only if it does not
pay for pandas (about 0.4 CPU-s to import) and scipy, which it never calls. Modules on
that path write ``from .._lazy import pandas as pd`` instead of ``import pandas as pd``;
the first attribute looked up on ``pd`` imports pandas, later ones go straight to it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands in for module ``name`` until an attribute is first looked up on it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


pandas = LazyModule("pandas")
