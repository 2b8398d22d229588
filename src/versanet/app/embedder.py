"""A checkpoint as a clip and query encoder, and the stream of decoded clips that feeds it.

Everything is compared in one joint space: the space where video meets text (FAC: ``vat``). Video
clips are embedded there through their own heads; audio clips reach it through the video's
fine-to-coarse head when the graph gives audio no edge of its own (MMV's audio-text retrieval);
text queries through the text head. Vectors are L2-normalised float32, so a dot product is the
cosine similarity the models were trained with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from versanet.app.clips import ClipGrid
from versanet.data.transforms import ModalityTransform, RawClip
from versanet.data.video_io import MediaDecodeError, probe, read_clips
from versanet.downstream.common import edge_path, embed, shared_space
from versanet.graph import GraphError

log = logging.getLogger("versanet.app")

#: clips decoded per read (one file open, one pass): bounds the memory a long video takes
CHUNK_CLIPS = 32


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ClipEncoder:
    """Video/audio clips and text queries -> L2-normalised vectors in one joint space of a pretrained model.

    Args:
        model: a :class:`~versanet.models.PretrainModule` with ``.transforms`` (``load_pretrained``).
        space: the joint space (default: where video meets text, else where video meets audio).
        modalities: the clip modalities to embed (default: every modality with a frame or audio
            transform that reaches ``space``).
        text: the query modality (its transform must turn strings into ids: ``encode(texts)``).
    """

    def __init__(
        self, model: torch.nn.Module, space: str | None = None, modalities: list[str] | None = None,
        text: str = "text", device: str | torch.device = "auto",
    ) -> None:
        self.model = model.eval()
        self.device = pick_device(device) if isinstance(device, str) else device
        self.model.to(self.device)
        self.transforms: dict[str, ModalityTransform] = dict(getattr(model, "transforms", {}) or {})
        graph = model.graph
        self.text = text if text in model.encoders and text in self.transforms else None
        self.space = space or self._default_space(graph)
        if self.space not in graph.spaces:
            raise GraphError(f"space {self.space!r} is not in the checkpoint's graph (spaces: {', '.join(graph.spaces)})")
        candidates = modalities or [m for m in model.encoders if m in self.transforms and self.transforms[m].needs & {"frames", "audio"}]
        self.modalities = [m for m in candidates if self._reaches(m)]
        missing = [m for m in (modalities or []) if m not in self.modalities]
        if missing or not self.modalities:
            raise GraphError(
                f"cannot embed {', '.join(missing) or 'any clip modality'} in space {self.space!r}: a modality needs an encoder, "
                f"a data transform in the checkpoint and a path into the space (encoders: {', '.join(model.encoders)}; "
                f"transforms: {', '.join(self.transforms) or 'none stored'})"
            )
        self.dim = graph.spaces[self.space]

    def _default_space(self, graph: Any) -> str:
        for pair in (("video", self.text), ("video", "audio")):
            if pair[1] is None:
                continue
            try:
                return shared_space(graph, *pair)
            except GraphError:
                continue
        return next(iter(graph.spaces))

    def _reaches(self, modality: str) -> bool:
        try:
            edge_path(self.model.graph, modality, self.space)
        except GraphError:
            return False
        return True

    @property
    def needs(self) -> frozenset[str]:
        """What to decode for the clip modalities (``frames``, ``audio``)."""
        return frozenset().union(*(self.transforms[m].needs for m in self.modalities))

    def describe(self) -> dict[str, Any]:
        """What the index records about how its vectors were made."""
        return {"space": self.space, "dim": self.dim, "modalities": list(self.modalities), "text": self.text}

    @torch.no_grad()
    def embed_clips(self, inputs: dict[str, Tensor]) -> dict[str, np.ndarray]:
        """``{modality: [N, *input]}`` (one transform output per clip) -> ``{modality: [N, dim]}`` float32, unit length."""
        out = {}
        for modality, x in inputs.items():
            features = self.model.encode(modality, x.to(self.device, non_blocking=True))
            out[modality] = F.normalize(embed(self.model, modality, features, self.space), dim=-1).float().cpu().numpy()
        return out

    @torch.no_grad()
    def embed_text(self, queries: list[str]) -> np.ndarray:
        """Text queries -> ``[Q, dim]`` float32, unit length."""
        if self.text is None:
            raise GraphError("this checkpoint has no text encoder with a stored tokenizer: it cannot turn a text query into a vector")
        ids = self.transforms[self.text].encode(list(queries)).to(self.device)
        features = self.model.encode(self.text, ids)
        return F.normalize(embed(self.model, self.text, features, self.space), dim=-1).float().cpu().numpy()


@dataclass
class FileChunk:
    """Up to :data:`CHUNK_CLIPS` decoded and transformed clips of one file (``last``: the file's final chunk).

    ``inputs``: ``{modality: [n, *input]}``; ``present``: ``{modality: [n]}`` bool (False: no audio
    stream); ``moments``: ``[(start, end)]`` of the n clips. ``error`` set (and nothing else) when the
    file could not be read.
    """

    path: str
    index: int
    last: bool
    duration: float = 0.0
    moments: list[tuple[float, float]] = field(default_factory=list)
    inputs: dict[str, Tensor] = field(default_factory=dict)
    present: dict[str, Tensor] = field(default_factory=dict)
    error: str | None = None


class DecodedClips(IterableDataset):
    """Files -> :class:`FileChunk` s, decoded with PyAV and transformed as at evaluation (``train=False``).

    Each DataLoader worker takes every ``num_workers``-th file; a file's chunks come in order from one
    worker. A file that cannot be read yields one chunk with ``error`` (the reason) instead of failing.
    """

    def __init__(self, root: str | Path, files: list[str], grid: ClipGrid, transforms: dict[str, ModalityTransform], modalities: list[str]) -> None:
        self.root, self.files, self.grid = Path(root), list(files), grid
        self.transforms = {m: transforms[m] for m in modalities}
        self.needs = frozenset().union(*(t.needs for t in self.transforms.values()))
        resize = getattr(self.transforms.get("video"), "resize", None)
        self.short_side = int(resize) if isinstance(resize, (int, float)) else None

    def __iter__(self) -> Iterator[FileChunk]:
        info = get_worker_info()
        mine = self.files if info is None else self.files[info.id :: info.num_workers]
        for path in mine:
            try:
                yield from self.decode(path)
            except MediaDecodeError as err:
                yield FileChunk(path, 0, True, error=err.reason)
            except (av.FFmpegError, OSError) as err:  # e.g. a file deleted or unreadable since the scan
                yield FileChunk(path, 0, True, error=f"{type(err).__name__}: {err}")

    def decode(self, path: str) -> Iterator[FileChunk]:
        source = self.root / path
        info = probe(source, name=path)
        duration = info.duration
        # decode straight to the video transform's resize when the video is larger (libswscale beats resizing later)
        short_side = self.short_side if self.short_side is not None and min(info.width, info.height) > self.short_side else None
        moments = self.grid.moments(duration)
        audio_rate = self.grid.audio_rate if "audio" in self.needs else None
        chunks = [moments[i : i + CHUNK_CLIPS] for i in range(0, len(moments), CHUNK_CLIPS)]
        for c, part in enumerate(chunks):
            starts = [self.grid.clip_start(a, b, duration) for a, b in part]
            clips = read_clips(source, starts, self.grid.num_frames, self.grid.fps, audio_rate, "frames" in self.needs,
                               short_side, train=False, name=path)
            raws = [RawClip(path, c.start, c.duration, False, c.frames, c.audio, audio_rate) for c in clips]
            inputs, present = {}, {}
            for modality, transform in self.transforms.items():
                outs = [transform(raw) for raw in raws]
                inputs[modality] = torch.stack([o[0] for o in outs])
                present[modality] = torch.stack([o[1].reshape(-1)[0] for o in outs])
            yield FileChunk(path, c, c == len(chunks) - 1, duration, part, inputs, present)


def first_item(items: list[Any]) -> Any:
    """DataLoader collate for ``batch_size=1`` over items that are already batches."""
    return items[0]
