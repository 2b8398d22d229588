"""The ``app`` extra's packages, imported on first use with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

#: import name -> pip requirement, for the packages of ``pip install versanet[app]``
APP_PACKAGES = {"faiss": "faiss-cpu", "fastapi": "fastapi", "uvicorn": "uvicorn"}


def require(module: str) -> ModuleType:
    """``import module``, or an :class:`ImportError` (``.name`` = ``module``) naming the ``versanet[app]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = APP_PACKAGES.get(module.split(".")[0], module)
        raise ImportError(
            f"this versanet command needs {package}, part of the app extra: pip install 'versanet[app]' ({err})",
            name=module.split(".")[0],
        ) from err
