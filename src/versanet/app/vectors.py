"""The FAISS index of one modality's vectors, kept in step with the database (:mod:`versanet.app.store`).

Inner product on unit vectors (cosine). Below :data:`EXACT_LIMIT` vectors the index is exact
(``IndexFlatIP`` under an id map); from there on it is an inverted file (``IndexIVFFlat``, ``nlist``
about ``sqrt(n)`` k-means cells, ``nprobe`` of them searched), which scans a few percent of the
vectors per query; ``benchmarks/search.py`` measures its recall@10 against exact search.

Files: ``vectors/<modality>.faiss`` and ``vectors/<modality>.json`` (the database version it
reflects, its kind, how many vectors the IVF cells were trained on). :func:`sync` loads the file
when it is current, else brings it up to date by the difference of ids (adds new clips, removes
deleted ones), and rebuilds it when it should change kind or the IVF cells were trained on less
than a quarter (or more than four times) of today's vectors. Writes hold ``vectors/lock``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from versanet.app.extra import require
from versanet.app.store import ClipStore
from versanet.app.threads import one_thread

faiss = require("faiss")

#: exact search below this many vectors, IVF from here on
EXACT_LIMIT = 200_000
#: k-means training points per IVF cell (FAISS warns below 39)
TRAIN_PER_CELL = 64


def ivf_cells(n: int) -> int:
    """``nlist`` for ``n`` vectors: the power of two nearest ``sqrt(n)`` (1024 at a million)."""
    return 2 ** max(4, round(math.log2(math.sqrt(max(n, 1)))))


def default_nprobe(nlist: int) -> int:
    """IVF cells searched per query: an eighth of them, at least 64 (benchmarks/search.py, recall@10 against exact
    search: 0.988 at 1M vectors with 128 of 1024 cells, 0.982 at 100k with 64 of 256)."""
    return min(nlist, max(64, nlist // 8))


@dataclass
class VectorIndex:
    """A FAISS index whose ids are clip ids; ``kind`` ``flat`` (exact) or ``ivf`` (approximate)."""

    index: "faiss.Index"
    kind: str
    trained_on: int = 0
    nprobe: int | None = None  # IVF: cells searched per query (None: default_nprobe)

    @classmethod
    def empty(cls, dim: int, n: int, sample: np.ndarray | None = None, exact_limit: int = EXACT_LIMIT) -> "VectorIndex":
        """An empty index for about ``n`` vectors: flat below ``exact_limit``, else IVF trained on ``sample`` ``[m, dim]``."""
        if n < exact_limit:
            return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")
        nlist = ivf_cells(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # a small sample is our choice (speed), not a mistake worth a warning
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, "ivf", trained_on=n)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every clip id in the index, ascending, int64."""
        if self.kind == "flat":
            ids = faiss.vector_to_array(self.index.id_map)
        else:
            lists = self.index.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(lists.nlist) if lists.list_size(i)]
            ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return np.sort(ids.astype(np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``[Q, dim]`` unit queries -> (scores ``[Q, k]`` cosine, clip ids ``[Q, k]``; -1 where fewer than k exist).

        One query runs on one thread (:func:`~versanet.app.threads.one_thread`).
        """
        if self.kind == "ivf":
            self.index.nprobe = min(self.nprobe or default_nprobe(self.index.nlist), self.index.nlist)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) > 1:
            return self.index.search(queries, k)
        with one_thread():
            return self.index.search(queries, k)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, kind: str, trained_on: int) -> "VectorIndex":
        return cls(faiss.read_index(str(path)), kind, trained_on)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wants_rebuild(index: VectorIndex, n: int, exact_limit: int) -> bool:
    if (index.kind == "flat") != (n < exact_limit):
        return True
    return index.kind == "ivf" and not (index.trained_on / 4 <= n <= index.trained_on * 4)


def build(store: ClipStore, modality: str, exact_limit: int = EXACT_LIMIT, seed: int = 0) -> VectorIndex:
    """A fresh index of every ``modality`` vector in the database."""
    dim = int(store.meta("dim"))
    ids = store.vector_ids(modality)
    sample = None
    if len(ids) >= exact_limit:
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(ids, size=min(len(ids), TRAIN_PER_CELL * ivf_cells(len(ids))), replace=False))
        sample = np.concatenate([v for _, v in store.vectors(modality, take)])
    index = VectorIndex.empty(dim, len(ids), sample, exact_limit)
    for part_ids, vectors in store.vectors(modality):
        index.add(part_ids, vectors)
    return index


def sync(store: ClipStore, modality: str, save: bool = True, exact_limit: int = EXACT_LIMIT) -> VectorIndex:
    """The ``modality`` index reflecting the database now: loaded, updated by id difference, or rebuilt (see the module docstring).

    ``save``: write it back (needs a writable index folder); a read-only folder is synced in memory only.
    """
    folder = store.folder / "vectors"
    path, info_path = folder / f"{modality}.faiss", folder / f"{modality}.json"
    save = save and os.access(store.folder, os.W_OK)
    with _locked(folder) if save else _nolock():
        version = store.version
        info = json.loads(info_path.read_text()) if info_path.is_file() and path.is_file() else None
        index = VectorIndex.load(path, info["kind"], info["trained_on"]) if info else None
        if index is not None and info["version"] == version and index.count == info["count"] and not _wants_rebuild(index, index.count, exact_limit):
            return index
        wanted = store.vector_ids(modality)
        if index is None or _wants_rebuild(index, len(wanted), exact_limit):
            index = build(store, modality, exact_limit)
        else:
            have = index.ids()
            index.remove(np.setdiff1d(have, wanted, assume_unique=True))
            new = np.setdiff1d(wanted, have, assume_unique=True)
            for part_ids, vectors in store.vectors(modality, new):
                index.add(part_ids, vectors)
        if save:
            index.save(path)
            tmp = info_path.with_name(f"{info_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": version, "kind": index.kind, "trained_on": index.trained_on, "count": index.count}))
            tmp.replace(info_path)
        return index


@contextmanager
def _nolock() -> Iterator[None]:
    yield
