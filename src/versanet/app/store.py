"""The index folder's SQLite database: indexed files, their moments, and the moments' vectors.

The database is the source of truth; the FAISS index (:mod:`versanet.app.vectors`) is rebuilt or
brought up to date from it. Each file is written in one transaction (its moments and vectors, or
its failure), so an interrupted ``embed`` keeps every file it finished and a crash never leaves a
half-written file. Clip ids are never reused (``AUTOINCREMENT``), so a FAISS id always names the
same moment. Every write bumps ``meta.version``; readers compare it to know when to refresh.

Tables::

    meta(key, value)                     JSON values: format, checkpoint, clip grid, space, version
    files(id, path, size, mtime_ns, duration, status 'ok'|'bad', reason, indexed_at)
    clips(id, file_id, start, end)       one row per moment (seconds)
    vectors(modality, clip_id, vector)   float32 [dim] bytes, L2-normalised
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from versanet.app.clips import FileStat

FORMAT = "versanet-video-index"
FORMAT_VERSION = 1
DB_NAME = "index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    duration REAL, status TEXT NOT NULL CHECK (status IN ('ok', 'bad')), reason TEXT, indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start REAL NOT NULL, "end" REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS clips_by_file ON clips(file_id);
CREATE TABLE IF NOT EXISTS vectors (
    modality TEXT NOT NULL, clip_id INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE, vector BLOB NOT NULL,
    PRIMARY KEY (modality, clip_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_by_clip ON vectors(clip_id);
"""


class VideoIndexError(RuntimeError):
    """An index folder that is missing, of another format, or built with other settings; the message says which."""


@dataclass(frozen=True)
class Moment:
    """One search result's place: ``file`` (relative to the video folder), ``start``/``end`` seconds, its clip id."""

    clip_id: int
    file: str
    start: float
    end: float


class ClipStore:
    """The SQLite database of one index folder (``INDEX_DIR/index.sqlite``); ``create``: make it when missing."""

    def __init__(self, folder: str | Path, create: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if not self.path.is_file():
            if not create:
                raise VideoIndexError(f"no video index in {self.folder} (no {DB_NAME}): build one with `versanet embed VIDEO_DIR --ckpt CKPT --index {self.folder}`")
            self.folder.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the web server answers requests from a thread pool; sqlite3 serialises access itself.
        # timeout: a writer (embed) holds the lock for one file's transaction at a time; readers wait that long at most.
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")  # readers (search, serve) never block the writer (embed)
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a committed file survives a crash of the process
        self.db.executescript(SCHEMA)
        if self.meta("format") is None:
            self.set_meta({"format": FORMAT, "format_version": FORMAT_VERSION, "version": 0})
        if self.meta("format") != FORMAT:
            raise VideoIndexError(f"{self.path} is not a versanet video index")
        if self.meta("format_version") != FORMAT_VERSION:
            raise VideoIndexError(f"{self.path} has index format {self.meta('format_version')}; this versanet reads {FORMAT_VERSION}: rebuild it with `versanet embed --rebuild`")

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, values: dict[str, Any]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    @property
    def version(self) -> int:
        """Bumped by every write of files, moments or vectors."""
        return int(self.meta("version", 0))

    def _bump(self) -> None:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    def transaction(self) -> "_Transaction":
        return _Transaction(self.db)

    # ------------------------------------------------------------------ files
    def files(self) -> dict[str, tuple[FileStat, str]]:
        """Every recorded file: relative path -> (its :class:`FileStat` when recorded, status ``ok``/``bad``)."""
        rows = self.db.execute("SELECT path, size, mtime_ns, status FROM files")
        return {path: (FileStat(size, mtime), status) for path, size, mtime, status in rows}

    def bad_files(self) -> dict[str, str]:
        """Unreadable files: relative path -> reason."""
        return dict(self.db.execute("SELECT path, reason FROM files WHERE status = 'bad' ORDER BY path"))

    def put_file(
        self, path: str, stat: FileStat, duration: float, moments: list[tuple[float, float]], vectors: dict[str, np.ndarray],
        present: dict[str, np.ndarray] | None = None,
    ) -> int:
        """Record a file's moments and their vectors (``{modality: [n, dim]}``), replacing any earlier version, in one transaction.

        ``present``: ``{modality: [n]}`` bool; a moment whose modality is absent (no audio stream) gets no vector for it.
        Returns the number of moments written.
        """
        with self.transaction():
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
            file_id = self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, duration, status, indexed_at) VALUES (?, ?, ?, ?, 'ok', ?)",
                (path, stat.size, stat.mtime_ns, duration, time.time()),
            ).lastrowid
            ids = [self.db.execute('INSERT INTO clips (file_id, start, "end") VALUES (?, ?, ?)', (file_id, a, b)).lastrowid for a, b in moments]
            for modality, array in vectors.items():
                keep = np.ones(len(ids), dtype=bool) if present is None or modality not in present else np.asarray(present[modality], dtype=bool)
                rows = [(modality, i, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for i, v, k in zip(ids, array, keep) if k]
                self.db.executemany("INSERT INTO vectors (modality, clip_id, vector) VALUES (?, ?, ?)", rows)
            self._bump()
        return len(ids)

    def put_bad(self, path: str, stat: FileStat, reason: str) -> None:
        """Record an unreadable file (so an unchanged one is not retried), replacing any earlier version."""
        with self.transaction():
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
            self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, status, reason, indexed_at) VALUES (?, ?, ?, 'bad', ?, ?)",
                (path, stat.size, stat.mtime_ns, reason, time.time()),
            )
            self._bump()

    def remove_files(self, paths: Iterable[str]) -> int:
        """Forget files (and their moments and vectors) in one transaction; returns how many were recorded."""
        paths = list(paths)
        if not paths:
            return 0
        with self.transaction():
            removed = sum(self.db.execute("DELETE FROM files WHERE path = ?", (p,)).rowcount for p in paths)
            self._bump()
        return removed

    def clear(self) -> None:
        """Forget every file (``embed --rebuild``); the meta block stays until rewritten."""
        with self.transaction():
            self.db.execute("DELETE FROM files")
            self._bump()

    def file_is_indexed(self, path: str) -> bool:
        """True when ``path`` (relative, exactly as stored) is a readable indexed file."""
        return self.db.execute("SELECT 1 FROM files WHERE path = ? AND status = 'ok'", (path,)).fetchone() is not None

    # ------------------------------------------------------------------ moments and vectors
    def counts(self) -> dict[str, int]:
        """Files (readable, unreadable), moments, and vectors per modality."""
        out = dict(self.db.execute("SELECT 'files_' || status, COUNT(*) FROM files GROUP BY status"))
        out["clips"] = self.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        for modality, count in self.db.execute("SELECT modality, COUNT(*) FROM vectors GROUP BY modality"):
            out[f"vectors_{modality}"] = count
        return {"files_ok": 0, "files_bad": 0, **out}

    def modalities(self) -> list[str]:
        return [m for (m,) in self.db.execute("SELECT DISTINCT modality FROM vectors ORDER BY modality")]

    def vector_ids(self, modality: str) -> np.ndarray:
        """Clip ids that have a ``modality`` vector, ascending, int64."""
        rows = self.db.execute("SELECT clip_id FROM vectors WHERE modality = ? ORDER BY clip_id", (modality,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vectors(self, modality: str, ids: np.ndarray | None = None, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids [n] int64, vectors [n, dim] float32)`` batches of a modality (all of them, or those of ``ids``)."""
        dim = int(self.meta("dim"))
        if ids is None:
            cursor = self.db.execute("SELECT clip_id, vector FROM vectors WHERE modality = ? ORDER BY clip_id", (modality,))
            while rows := cursor.fetchmany(batch):
                yield _unpack(rows, dim)
            return
        for lo in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            part = [int(i) for i in ids[lo : lo + 900]]
            rows = self.db.execute(
                f"SELECT clip_id, vector FROM vectors WHERE modality = ? AND clip_id IN ({','.join('?' * len(part))})", (modality, *part)
            ).fetchall()
            if rows:
                yield _unpack(rows, dim)

    def moments(self, ids: Iterable[int]) -> dict[int, Moment]:
        """Clip id -> :class:`Moment` for the ids that exist."""
        ids = [int(i) for i in ids]
        out: dict[int, Moment] = {}
        for lo in range(0, len(ids), 900):
            part = ids[lo : lo + 900]
            rows = self.db.execute(
                f'SELECT clips.id, files.path, clips.start, clips."end" FROM clips JOIN files ON files.id = clips.file_id '
                f"WHERE clips.id IN ({','.join('?' * len(part))})", part,
            )
            out.update({r[0]: Moment(*r) for r in rows})
        return out

    def all_moments(self) -> Iterator[Moment]:
        rows = self.db.execute('SELECT clips.id, files.path, clips.start, clips."end" FROM clips JOIN files ON files.id = clips.file_id ORDER BY clips.id')
        for r in rows:
            yield Moment(*r)


def _unpack(rows: list[tuple[int, bytes]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return ids, vectors


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception, KeyboardInterrupt included); nests as a no-op."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.db

    def __exit__(self, kind: type | None, *_: Any) -> None:
        if self.outer:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
