"""Reading and writing versanet checkpoints: one loader for every command, never running code from a file.

A pretraining checkpoint is a Lightning checkpoint of :class:`~versanet.models.PretrainModule`:

- ``state_dict``: encoders, shared trunks (once), heads, objective terms (with their state);
- ``hyper_parameters``: the module's config in ``class_path`` / ``init_args`` form, so
  ``PretrainModule.load_from_checkpoint`` rebuilds the network without the YAML it came from;
- ``versanet``: ``{"format_version": 1, "transforms": {modality: {"class_path", "init_args", "state"}}}``,
  the data transforms the model was trained with and what they learned (a vocabulary). With them a
  checkpoint alone turns a text query or a new video into model input.

Every load uses ``torch.load(..., weights_only=True)``: a file is read as tensors and plain data
and never unpickled into arbitrary objects, so a crafted file cannot run code (it is refused with
an error naming it). Transforms are rebuilt only from classes registered under the ``transform``
kind, never from an import path found in the file.
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
            f"could run code from the file ({str(err).splitlines()[0]}). versanet writes and reads only weights-only files."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{what} {path} could not be read: {type(err).__name__}: {err}") from None


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
    """The :class:`~versanet.models.PretrainModule` of a checkpoint, on CPU, in eval mode, with ``.transforms``.

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
    model = PretrainModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
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
