"""Fail at import with a readable message when the torch family does not match the tested set.

torch, torchvision and torchaudio ship compiled extensions built against one exact torch ABI. A
mismatched set (e.g. torchaudio 2.11.1, built against a newer torch, beside torch 2.11.0) fails
deep inside ``import torchaudio`` with a linker error (``undefined symbol: ...``). This module
reads the pins from versanet's own installed metadata (pyproject.toml is the single source of
truth), compares them with what is installed, and turns a mismatch into one line naming the
versions and the command that fixes it.
"""

from __future__ import annotations

import re
from importlib import metadata

FAMILY = ("torch", "torchvision", "torchaudio")


class TorchFamilyError(ImportError):
    """The installed torch / torchvision / torchaudio are not the set versanet was tested with."""


def pinned_versions() -> dict[str, str]:
    """``{package: version}`` for the exact ``==`` pins of the torch family in versanet's metadata."""
    try:
        requires = metadata.requires("versanet") or []
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return {}
    pins: dict[str, str] = {}
    for req in requires:
        match = re.match(r"^\s*(torch|torchvision|torchaudio)\s*==\s*([\w.]+)\s*(;.*)?$", req)
        if match and not (match.group(3) and "extra" in match.group(3)):
            pins[match.group(1)] = match.group(2)
    return pins


def installed_versions() -> dict[str, str | None]:
    """``{package: installed version or None}`` (local tags such as ``+cu130`` dropped)."""
    out: dict[str, str | None] = {}
    for name in FAMILY:
        try:
            out[name] = metadata.version(name).split("+", 1)[0]
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fix_command(pins: dict[str, str]) -> str:
    """The pip command that installs the tested set."""
    return "pip install " + " ".join(f"{name}=={version}" for name, version in pins.items())


def mismatch_message(pins: dict[str, str], installed: dict[str, str | None]) -> str | None:
    """A one-paragraph error when ``installed`` differs from ``pins``; None when they agree."""
    wrong = {name: installed.get(name) for name, version in pins.items() if installed.get(name) != version}
    if not wrong:
        return None
    have = ", ".join(f"{name} {installed.get(name) or '(not installed)'}" for name in pins)
    want = ", ".join(f"{name} {version}" for name, version in pins.items())
    return (
        f"versanet needs the torch family it was tested with ({want}) but finds {have}. "
        f"The three ship compiled code built against one torch ABI, so a mixed set fails to load. "
        f"Fix: {fix_command(pins)}"
    )


def check_torch_family() -> None:
    """Raise :class:`TorchFamilyError` when the installed torch family is not the pinned one, or fails to load."""
    pins = pinned_versions()
    installed = installed_versions()
    message = mismatch_message(pins, installed)
    if message:
        raise TorchFamilyError(message)
    try:
        import torchaudio  # noqa: F401 - the library whose compiled part breaks first on an ABI mismatch
        import torchvision  # noqa: F401
    except OSError as err:  # a linker error: undefined symbol, wrong libtorch
        have = ", ".join(f"{name} {v or '(not installed)'}" for name, v in installed.items())
        fix = fix_command(pins) if pins else "pip install -e . (reinstall versanet to get its tested torch family)"
        raise TorchFamilyError(f"the torch family fails to load ({have}): {err}. Fix: {fix}") from err
