"""A text query -> the best matching moments of an index (``versanet search``; the web page uses the same :class:`Searcher`).

Scores are cosine similarities in the checkpoint's text-video space. ``modality`` chooses which
clip vectors answer: ``video`` (default), ``audio`` (through the video's fine-to-coarse head in FAC),
or ``both`` (the mean of the two cosines, over the union of both top lists, deepened until it is exact).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from versanet.app.embedder import ClipEncoder
from versanet.app.store import ClipStore, Moment, VideoIndexError
from versanet.app.threads import one_thread
from versanet.app.vectors import VectorIndex, sync


@dataclass(frozen=True)
class Hit:
    """One result: the moment, its rank (1 = best) and its score (cosine)."""

    rank: int
    score: float
    file: str
    start: float
    end: float
    clip_id: int


class Searcher:
    """Text queries against one index folder; the query encoder is loaded from the checkpoint the index records.

    Args:
        index_dir: a folder written by ``versanet embed``.
        ckpt: the checkpoint (default: the one the index records; it must have the same weights).
        device: where the text encoder runs (``auto``: a GPU when there is one).
    """

    def __init__(self, index_dir: str | Path, ckpt: str | Path | None = None, device: str = "auto", nprobe: int | None = None) -> None:
        self.store = ClipStore(index_dir)
        if self.store.meta("checkpoint_sha256_16") is None and ckpt is None:
            raise VideoIndexError(f"the index in {index_dir} holds nothing yet: no `versanet embed` has finished setting it up")
        self.nprobe = nprobe
        self.ckpt = Path(ckpt or self.store.meta("checkpoint") or "")
        self._encoder: ClipEncoder | None = None
        self._device = device
        self._indexes: dict[str, VectorIndex] = {}
        self._version = -1
        self.video_dir = Path(self.store.meta("video_dir") or ".")
        self.modalities = list(self.store.meta("modalities") or [])

    @property
    def encoder(self) -> ClipEncoder:
        """The checkpoint's text encoder, loaded on first use (and checked to be the weights the index was built with)."""
        if self._encoder is None:
            from versanet.checkpoint import load_pretrained

            self._check_checkpoint()
            self._encoder = ClipEncoder(load_pretrained(self.ckpt), space=self.store.meta("space"), modalities=self.modalities, device=self._device)
        return self._encoder

    def _check_checkpoint(self) -> None:
        from versanet.downstream.common import checkpoint_fingerprint

        if not self.ckpt.is_file():
            raise VideoIndexError(f"the index's checkpoint {self.ckpt} is not there any more: pass --ckpt with its new place")
        stat = self.ckpt.stat()
        same_file = (stat.st_size, stat.st_mtime_ns) == (self.store.meta("checkpoint_size"), self.store.meta("checkpoint_mtime_ns"))
        if not same_file and checkpoint_fingerprint(self.ckpt) != self.store.meta("checkpoint_sha256_16"):
            raise VideoIndexError(
                f"{self.ckpt} is not the checkpoint this index was built with (sha256 {self.store.meta('checkpoint_sha256_16')}...): "
                "its text vectors would not match the clips'. Re-embed with `versanet embed ... --rebuild`"
            )

    def index(self, modality: str) -> VectorIndex:
        """The FAISS index of one modality, refreshed when the database changed since it was loaded."""
        version = self.store.version
        if version != self._version:
            self._indexes.clear()
            self._version = version
        if modality not in self._indexes:
            if modality not in self.modalities:
                raise VideoIndexError(f"the index holds {', '.join(self.modalities)} vectors, not {modality!r}")
            self._indexes[modality] = sync(self.store, modality)
        index = self._indexes[modality]
        if self.nprobe:
            index.nprobe = self.nprobe
        return index

    def search(self, query: str, k: int = 10, modality: str = "video") -> list[Hit]:
        """The ``k`` best moments for a text query."""
        encoder = self.encoder
        with one_thread():  # one short query: see versanet.app.threads
            vector = encoder.embed_text([query])[0]
        return self.search_vector(vector, k, modality)

    def search_vector(self, vector: np.ndarray, k: int = 10, modality: str = "video") -> list[Hit]:
        """The ``k`` best moments for a unit query vector ``[dim]`` already in the index's space."""
        query = np.asarray(vector, dtype=np.float32)[None]
        if modality == "both":
            scores = self._fused(query, k)
        else:
            s, ids = self.index(modality).search(query, k)
            scores = {int(i): float(v) for i, v in zip(ids[0], s[0]) if i >= 0}
        best = sorted(scores.items(), key=lambda item: -item[1])[:k]
        moments = self.store.moments([i for i, _ in best])
        return [_hit(r + 1, score, moments[i]) for r, (i, score) in enumerate(best) if i in moments]

    def _fused(self, query: np.ndarray, k: int) -> dict[int, float]:
        """Mean of the video and audio cosines (a moment without audio counts its video cosine alone).

        Each index's ``depth``-th score bounds what it has not returned, so the fused top k is exact
        once its k-th score reaches that bound; ``depth`` doubles until it does.
        """
        names = [m for m in ("video", "audio") if m in self.modalities]
        video_only = len(names) == 2 and self.index("video").count > self.index("audio").count
        depth = 4 * k
        while True:
            per: dict[str, dict[int, float]] = {}
            floors = []
            exhausted = False
            for m in names:
                s, ids = self.index(m).search(query, depth)
                per[m] = {int(i): float(v) for i, v in zip(ids[0], s[0]) if i >= 0}
                exhausted |= len(per[m]) < depth
                floors.append(float(s[0][-1]))
            seen = set().union(*per.values())
            for m in names:  # exact scores for moments only the other modality returned
                missing = np.array(sorted(seen - per[m].keys()), dtype=np.int64)
                for ids, vectors in self.store.vectors(m, missing):
                    per[m].update(zip(ids.tolist(), (vectors @ query[0]).tolist()))
            scores = {c: float(np.mean([per[m][c] for m in names if c in per[m]])) for c in seen}
            bound = max(float(np.mean(floors)), floors[0] if video_only else -1.0)
            top = sorted(scores.values(), reverse=True)[:k]
            if exhausted or (len(top) == k and top[-1] >= bound):
                return scores
            depth *= 2

    def close(self) -> None:
        self.store.close()


def _hit(rank: int, score: float, moment: Moment) -> Hit:
    return Hit(rank, round(score, 4), moment.file, moment.start, moment.end, moment.clip_id)


def format_time(seconds: float) -> str:
    """``75.5`` -> ``1:15.5``; ``3725`` -> ``1:02:05.0``."""
    minutes, secs = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def format_hits(hits: list[Hit]) -> str:
    """The results as a fixed-width table: rank, score, start, end, file."""
    rows = [("rank", "score", "start", "end", "file")]
    rows += [(str(h.rank), f"{h.score:.3f}", format_time(h.start), format_time(h.end), h.file) for h in hits]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join([*(c.rjust(w) for c, w in zip(r[:4], widths)), r[4]]) for r in rows)


def hits_json(query: str, hits: list[Hit], seconds: float) -> str:
    return json.dumps({"query": query, "seconds": round(seconds, 4), "results": [asdict(h) for h in hits]}, indent=1)


def timed_search(searcher: Searcher, query: str, k: int, modality: str) -> tuple[list[Hit], float]:
    """(hits, seconds) of one query, text encoding included."""
    started = time.perf_counter()
    hits = searcher.search(query, k, modality)
    return hits, time.perf_counter() - started
