"""Name -> class registries for every pluggable part of versanet.

A registered name is the class's own ``__name__``. That is deliberate: jsonargparse (and so
LightningCLI) resolves a short ``class_path: ToyVideoEncoder`` to any imported subclass of the
annotated base type by that name, so the registry name *is* the YAML name and there is one
source of truth for configs.

Kinds: ``encoder``, ``trunk`` (a module several encoders share), ``head``, ``loss``, ``term`` (objective
terms beyond the pairwise ``LossTerm``), ``graph``, ``transform``, ``dataset``.

Third-party packages register by exposing a module in the ``versanet.plugins`` entry-point
group; importing that module runs its ``@register(...)`` decorators. :func:`load_plugins`
imports every such module and reports a failing one by name.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Callable, TypeVar

KINDS = ("encoder", "trunk", "head", "loss", "term", "graph", "transform", "dataset")
ENTRY_POINT_GROUP = "versanet.plugins"

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
_LOADED_PLUGINS: dict[str, str] = {}


class RegistryError(LookupError):
    """An unknown name, a name registered twice, or an unknown kind."""


class PluginLoadError(ImportError):
    """A ``versanet.plugins`` entry point failed to import."""


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown registry kind {kind!r}; kinds are {', '.join(KINDS)}")


def register(kind: str) -> Callable[[T], T]:
    """Class decorator: register ``cls`` under ``cls.__name__`` in registry ``kind``.

    Registering a second, different class under a name already taken raises
    :class:`RegistryError` naming both classes (re-registering the same class, e.g. on a
    module reload, is allowed).
    """
    _check_kind(kind)

    def decorator(cls: T) -> T:
        name = cls.__name__
        existing = _REGISTRY[kind].get(name)
        if existing is not None and _qualname(existing) != _qualname(cls):
            raise RegistryError(
                f"{kind} {name!r} is registered twice: by {_qualname(existing)} and by "
                f"{_qualname(cls)}; rename one of the classes"
            )
        _REGISTRY[kind][name] = cls
        return cls

    return decorator


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def get(kind: str, name: str) -> type:
    """The class registered as ``name`` in ``kind``; unknown names list the close matches."""
    _check_kind(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise RegistryError(unknown_name_message(kind, name, list(_REGISTRY[kind]))) from None


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """'unknown encoder 'X'; did you mean: A, B?' with the known names as a fallback."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    close += [k for k in known if name.lower() in k.lower() and k not in close][:3]
    hint = f"did you mean: {', '.join(close)}?" if close else f"known: {', '.join(sorted(known)) or 'none'}"
    return f"unknown {kind} {name!r}; {hint} (`versanet list` shows every registered name)"


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, sorted."""
    _check_kind(kind)
    return sorted(_REGISTRY[kind])


def all_names() -> dict[str, list[str]]:
    """Every kind mapped to its registered names."""
    return {kind: names(kind) for kind in KINDS}


def describe(cls: type) -> str:
    """First line of the class docstring, the one-line description `versanet list` prints."""
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


def load_builtin() -> None:
    """Import versanet's own registered modules."""
    importlib.import_module("versanet.builtin")


def load_plugins(strict: bool = True) -> dict[str, str]:
    """Import every ``versanet.plugins`` entry point; return {entry point name: module}.

    A plugin that fails to import raises :class:`PluginLoadError` naming the entry point and the
    distribution that declared it (``strict=False`` collects the failures into the message of
    one warning instead, for `versanet list`).
    """
    failures = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _LOADED_PLUGINS:
            continue
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 - any error in third-party code is reported
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            failures.append(f"plugin {ep.name!r} ({ep.value}, from {dist}) failed to import: {type(err).__name__}: {err}")
            continue
        _LOADED_PLUGINS[ep.name] = ep.value
    if failures:
        message = "\n".join(failures)
        if strict:
            raise PluginLoadError(message)
        import warnings

        warnings.warn(message, stacklevel=2)
    return dict(_LOADED_PLUGINS)


def loaded_plugins() -> dict[str, str]:
    """Entry points imported so far: {name: module}."""
    return dict(_LOADED_PLUGINS)
