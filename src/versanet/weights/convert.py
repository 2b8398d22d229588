"""The conversion driver: ``versanet weights convert --from FORMAT SRC OUT`` and ``versanet weights list``.

A converter is a function ``(src: Path, **options) -> Converted`` registered with ``@converter("format")``
in a module of this package (every module here is imported when a format is looked up, so adding a
file adds its formats). It reads the published file(s), maps the weights with the functions at the
end of each model family's file (``s3dg_state_dict_from_milnce``, ``tsm_state_dict_from_mmv``, ...),
and says what network and data transforms they form. The driver builds that network, loads the
weights with exactly matching keys and shapes (:func:`~versanet.weights.layout.load_exact`), and
writes a self-contained checkpoint with :func:`versanet.checkpoint.save_pretrained`.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from versanet.data.transforms import ModalityTransform

Converter = Callable[..., "Converted"]
CONVERTERS: dict[str, Converter] = {}


@dataclass
class Converted:
    """What a converter returns: the network's config (``PretrainModule`` init args in ``class_path`` form),
    its full state dict, the data transforms (with their state: vocabulary), and plain-data notes."""

    model_config: dict[str, Any]
    state_dict: dict[str, Tensor]
    transforms: dict[str, ModalityTransform]
    extra: dict[str, Any] = field(default_factory=dict)


def converter(fmt: str) -> Callable[[Converter], Converter]:
    """Register a converter for format ``fmt`` (``versanet weights convert --from fmt``)."""

    def wrap(fn: Converter) -> Converter:
        if fmt in CONVERTERS and CONVERTERS[fmt] is not fn:
            raise ValueError(f"two converters for format {fmt!r}: {CONVERTERS[fmt].__module__} and {fn.__module__}")
        CONVERTERS[fmt] = fn
        return fn

    return wrap


def formats() -> dict[str, Converter]:
    """Every registered converter (importing each module of ``versanet.weights`` once)."""
    import versanet.weights as package

    for info in pkgutil.iter_modules(package.__path__, prefix="versanet.weights."):
        importlib.import_module(info.name)
    return dict(CONVERTERS)


def build_and_load(converted: Converted) -> Any:
    """The ``PretrainModule`` that ``converted.model_config`` describes, with ``converted.state_dict`` loaded exactly
    (encoders and heads: every key, every shape; objective terms keep their initial state)."""
    from lightning.pytorch.cli import instantiate_module

    from versanet import registry
    from versanet.models import PretrainModule
    from versanet.weights.layout import load_exact

    registry.load_builtin()
    model = instantiate_module(PretrainModule, copy.deepcopy(converted.model_config))  # it rewrites its argument in place
    # objective terms (a learnable temperature, queues) are not part of a published network: they keep their initial state
    terms = {k: v for k, v in model.state_dict().items() if k.startswith("terms.") and k not in converted.state_dict}
    load_exact(model, {**converted.state_dict, **terms})
    return model.eval()


def convert(fmt: str, src: str | Path, out: str | Path, **options: Any) -> Path:
    """Convert ``src`` (published format ``fmt``) into the versanet checkpoint ``out``; returns ``out``."""
    from versanet.checkpoint import save_pretrained
    from versanet.weights.registry import identify

    known = formats()
    if fmt not in known:
        raise ValueError(f"unknown weights format {fmt!r}; known: {', '.join(sorted(known))}")
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{fmt} source not found: {src}")
    entry, digest = identify(src, fmt)
    converted = known[fmt](src, **options)
    model = build_and_load(converted)  # the exact-key check happens here, before anything is written
    notes = {k: v for k, v in converted.extra.items() if k != "clip"}
    extra = {"converted_from": {"format": fmt, "source": src.name, "source_sha256": digest, "published": entry.name if entry else None, **notes}}
    if "clip" in converted.extra:  # the clip geometry the model expects, where every tool looks for it (versanet.clip)
        extra["clip"] = converted.extra["clip"]
    return save_pretrained(out, converted.model_config, model.state_dict(), converted.transforms, extra)


# ---------------------------------------------------------------------------- CLI verbs
def weights_list() -> None:
    """Print the published checkpoints versanet converts (source, hash, the model they become, the paper's numbers)."""
    from versanet.weights.registry import table

    print(table())
    print(f"formats: {', '.join(sorted(formats()))}")


def weights_convert(src: str, out: str, from_: str | None = None, vocab: str | None = None) -> None:
    """Convert a published checkpoint into a self-contained versanet checkpoint.

    Args:
        src: the published file (MIL-NCE ``s3d_howto100m.pth``; an MMV TF-Hub SavedModel directory or
            TF checkpoint prefix; a flattened MMV Haiku ``.npz``). Network sizes are read off the file.
        out: the versanet checkpoint to write (``.ckpt``).
        from_: the source format (``versanet weights list`` shows them); on the command line ``--from``.
        vocab: the word list: MIL-NCE's ``s3d_dict.npy`` (default: beside SRC); MMV: a text file, one word per line
            (default: the SavedModel's ``assets/*.txt``).
    """
    if from_ is None:
        raise SystemExit(f"versanet weights convert: give the source format with --from (one of {', '.join(sorted(formats()))})")
    path = convert(from_, src, out, **({"vocab": vocab} if vocab else {}))
    print(f"wrote {path} (from {from_} {src})")
