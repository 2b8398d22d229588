"""Import every built-in module that registers components, so `versanet list` and YAML short names see them.

Every module under the packages in :data:`REGISTERING_PACKAGES` is imported: a new encoder, head,
loss, term, trunk, transform or data module registers by being placed there, with no list to edit.
Optional extras (``versanet.app``, TF readers in ``versanet.weights``) live outside these packages
or import their optional dependencies lazily, so this never needs them.
"""

from __future__ import annotations

import importlib
import pkgutil

REGISTERING_PACKAGES = (
    "versanet.graph", "versanet.objective", "versanet.encoders", "versanet.heads", "versanet.losses",
    "versanet.data", "versanet.text", "versanet.models", "versanet.downstream",
)


def import_all() -> list[str]:
    """Import every module of :data:`REGISTERING_PACKAGES` (recursively); returns their names."""
    imported = []
    for name in REGISTERING_PACKAGES:
        package = importlib.import_module(name)
        imported.append(name)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{name}."):
            importlib.import_module(info.name)
            imported.append(info.name)
    return imported


import_all()
