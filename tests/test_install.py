"""The front door: the torch family is pinned to one tested set, checked at import, and every module imports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import versanet
from versanet._torch_family import TorchFamilyError, check_torch_family, installed_versions, mismatch_message, pinned_versions


def test_the_torch_family_is_pinned_exactly_and_installed_as_pinned() -> None:
    pins = pinned_versions()
    assert set(pins) == {"torch", "torchvision", "torchaudio"}, "torch, torchvision and torchaudio must each be pinned with =="
    assert installed_versions() == pins
    check_torch_family()  # no error on the tested set


def test_a_mismatched_set_is_named_with_the_fix() -> None:
    pins = {"torch": "2.14.1", "torchvision": "0.29.1", "torchaudio": "2.11.1"}
    message = mismatch_message(pins, {"torch": "2.11.0", "torchvision": "0.29.1", "torchaudio": "2.11.1"})
    assert message is not None
    assert "torch 2.11.0" in message and "torchaudio 2.11.1" in message
    assert "pip install torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.1" in message
    assert mismatch_message(pins, dict(pins)) is None
    assert "torchaudio (not installed)" in mismatch_message(pins, {**pins, "torchaudio": None})


def test_a_mismatch_fails_import_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import versanet._torch_family as family

    monkeypatch.setattr(family, "installed_versions", lambda: {"torch": "2.11.0", "torchvision": "0.29.1", "torchaudio": "2.11.1"})
    with pytest.raises(TorchFamilyError, match="Fix: pip install torch=="):
        family.check_torch_family()


def test_every_module_of_the_package_imports() -> None:
    failures = []
    for info in pkgutil.walk_packages(versanet.__path__, prefix="versanet."):
        try:
            importlib.import_module(info.name)
        except ImportError as err:
            if getattr(err, "name", None) in OPTIONAL_DEPENDENCIES:
                continue  # an optional extra that is not installed: its module says so by name
            failures.append(f"{info.name}: {type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - any import-time failure is a defect
            failures.append(f"{info.name}: {type(err).__name__}: {err}")
    assert not failures, "\n".join(failures)


# Top-level packages of optional extras (pip install versanet[...]): modules that need them may fail to import without them.
OPTIONAL_DEPENDENCIES = {"tensorflow", "faiss", "fastapi", "uvicorn", "selenium"}
