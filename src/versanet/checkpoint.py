"""Reading and writing versanet checkpoints: one loader for every command, never running code from a file.

A pretraining checkpoint is a Lightning checkpoint of :class:`~versanet.models.PretrainModule`:

- ``state_dict``: encoders, shared trunks (once), heads, objective terms (with their state);
- ``hyper_parameters``: the module's config in ``class_path`` / ``init_args`` form, so
  ``PretrainModule.load_from_checkpoint`` rebuilds the network without the YAML it came from;
- ``versanet``: ``{"format_version": 1, "transforms": {modality: {"class_path", "init_args", "state"}},
  "clip": {"num_frames", "fps", "audio_rate"}}``: the data transforms the model was trained with and
  what they learned (a vocabulary), and the clip geometry of its training data. With them a
  checkpoint alone turns a text query or a new video into model input (``model.transforms``,
  ``model.clip``). Converters pass ``clip`` through :func:`save_pretrained`'s ``extra``.

Every load uses ``torch.load(..., weights_only=True)``: a file is read as tensors and plain data
and never unpickled into arbitrary objects, so a crafted file cannot run code (it is refused with
an error naming it). Transforms are rebuilt only from classes registered under the ``transform``
kind, never from an import path found in the file; the network's config may name only registered
classes or classes of modules already imported (:func:`check_class_paths`), so reading a file never
imports new code either. docs/overview.md ("Files and trust") lists every file versanet reads.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

import torch
from torch import nn

if TYPE_CHECKING:
    from versanet.data.transforms import ModalityTransform
    from versanet.models import PretrainModule

FORMAT_VERSION = 1
INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"

Init = Literal["pretrained", "random"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe or not of the expected kind; the message names the file."""


def safe_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{what} {path} was refused: it holds Python objects other than tensors and plain data, and loading them "
            f"could run code from the file ({unpickling_reason(err)}). versanet writes and reads only weights-only files."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{what} {path} could not be read: {type(err).__name__}: {err}") from None


def check_class_paths(node: Any, path: str | Path, where: str = "") -> None:
    """Refuse a config read from ``path`` that names a class versanet would have to import to build.

    Every ``class_path`` (and Lightning's ``_class_path``) must be a registered short name or a
    dotted path into a module that is already imported (versanet's, a loaded plugin's, torch's), as
    Lightning checks the module class itself: building the network from a file then never imports
    (runs) a module the file chose.
    """
    import sys

    from versanet import registry

    if isinstance(node, Mapping):
        for key in ("class_path", "_class_path"):
            name = node.get(key)
            if name is None:
                continue
            known = isinstance(name, str) and (
                any(name in registry.names(kind) for kind in registry.KINDS)
                or ("." in name and isinstance(getattr(sys.modules.get(name.rpartition(".")[0]), name.rpartition(".")[2], None), type))
            )
            if not known:
                raise CheckpointError(
                    f"{path}: {where or '<root>'}.{key} names {name!r}, which is neither a registered versanet class nor a class of an "
                    "imported module; versanet does not import code named by a file (install and import the plugin that defines it)"
                )
        for key, value in node.items():
            check_class_paths(value, path, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_class_paths(value, path, f"{where}[{i}]")


def instantiate_config(base: type, config: Mapping[str, Any], path: str | Path, what: str) -> Any:
    """Build ``{"class_path", "init_args"}`` read from ``path`` as jsonargparse would, after :func:`check_class_paths`."""
    from jsonargparse import ArgumentParser

    check_class_paths(config, path, what)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "obj", fail_untyped=False)
    try:
        return parser.instantiate_classes(parser.parse_object({"obj": dict(config)})).obj
    except Exception as err:  # noqa: BLE001 - any failure to build is reported with the file and the key
        raise CheckpointError(f"{path}: cannot build its {what} ({config.get('class_path')!r}): {type(err).__name__}: {err}") from None


def unpickling_reason(err: BaseException) -> str:
    """The line of torch's weights-only refusal that says what the file holds (``Unsupported global: GLOBAL io.open ...``)."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    for line in lines:
        if "Unsupported" in line or "WeightsUnpickler error" in line:
            return line.split(" Please use", 1)[0].replace("WeightsUnpickler error: ", "")
    return next((line for line in lines if line), type(err).__name__)


# ---------------------------------------------------------------------------- transforms
def export_transforms(transforms: Mapping[str, ModalityTransform]) -> dict[str, dict[str, Any]]:
    """``{modality: {"class_path", "init_args", "state"}}`` for a checkpoint (see the module docstring)."""
    return {m: {**t.config(), "state": t.state()} for m, t in transforms.items()}


def build_transforms(exported: Mapping[str, Mapping[str, Any]]) -> dict[str, ModalityTransform]:
    """Rebuild :func:`export_transforms` output; classes are looked up in the registry by name, never imported."""
    from versanet import registry

    registry.load_builtin()
    out = {}
    for modality, entry in exported.items():
        name = str(entry["class_path"]).rsplit(".", 1)[-1]
        try:
            cls = registry.get("transform", name)
        except registry.RegistryError as err:
            raise CheckpointError(f"the checkpoint's {modality} transform {entry['class_path']!r} is not registered here: {err}") from None
        transform = cls(**dict(entry.get("init_args", {})))
        transform.load_state(dict(entry.get("state", {})))
        out[modality] = transform
    return out


# ---------------------------------------------------------------------------- pretraining checkpoints
def load_pretrained(checkpoint: str | Path, init: Init = "pretrained", seed: int = 0) -> PretrainModule:
    """The :class:`~versanet.models.PretrainModule` of a checkpoint, on CPU, in eval mode, with ``.transforms``
    and ``.checkpoint_config`` (its init arguments in ``class_path`` / ``init_args`` form).

    ``init="random"``: the same network (encoders, heads) with freshly initialised weights (every
    submodule's ``reset_parameters`` under ``torch.manual_seed(seed)``) -- the baseline a pretrained
    network must beat. Each encoder's ``prepare_downstream`` has run (no DropToken in fine-tuning or
    evaluation). ``model.transforms`` holds the checkpoint's data transforms (empty for a
    checkpoint written before they were stored).
    """
    from versanet import registry
    from versanet.models import PretrainModule

    path = Path(checkpoint)
    if init not in ("pretrained", "random"):
        raise ValueError(f"init must be 'pretrained' or 'random', not {init!r}")
    data = safe_load(path, "pretraining checkpoint")
    if not isinstance(data, dict) or "state_dict" not in data or "hyper_parameters" not in data:
        raise CheckpointError(f"{path} is not a versanet pretraining checkpoint (no state_dict / hyper_parameters)")
    if data["hyper_parameters"].get("_instantiator") is None:
        raise CheckpointError(
            f"{path} does not record how to build its network (hyper_parameters has no config): write checkpoints with "
            "`versanet fit` or versanet.checkpoint.save_pretrained"
        )
    registry.load_builtin()
    registry.load_plugins(strict=False)
    check_class_paths(data["hyper_parameters"], path, "hyper_parameters")
    model = PretrainModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    # the network's config as the checkpoint records it (``{"encoders": {m: {"class_path", "init_args"}}, "graph": ...}``)
    model.checkpoint_config = {k: v for k, v in data["hyper_parameters"].items() if not k.startswith("_")}
    if init == "random":
        reinitialise(model, seed)
    for encoder in model.encoders.values():
        encoder.prepare_downstream()  # e.g. no DropToken when fine-tuning
    return model.eval()


def reinitialise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Reset every submodule that has ``reset_parameters`` (BN running statistics included), deterministically."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset) and sub is not module:
                reset()
    return module


def save_pretrained(
    path: str | Path,
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    transforms: Mapping[str, ModalityTransform] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-contained pretraining checkpoint that every versanet command loads (converters use this).

    ``model_config``: :class:`~versanet.models.PretrainModule`'s init arguments in ``class_path`` /
    ``init_args`` form (``{"encoders": {"video": {"class_path": "S3DG", "init_args": {...}}}, "graph": ...}``);
    ``state_dict``: the module's state dict (shared trunks once); ``transforms``: the data transforms
    (and vocabulary) a user needs to feed the model; ``extra``: plain data stored under ``versanet``
    (e.g. the source file's hash). The file is checked to load back before this returns.
    """
    import lightning

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hyper = {**dict(model_config), "_instantiator": INSTANTIATOR, "_class_path": "versanet.models.pretrain.PretrainModule"}
    checkpoint = {
        "state_dict": dict(state_dict),
        "hyper_parameters": hyper,
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        "versanet": {"format_version": FORMAT_VERSION, "transforms": export_transforms(transforms or {}), **dict(extra or {})},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)
    load_pretrained(path)  # fails here, naming the problem, rather than in the user's first command
    return path
