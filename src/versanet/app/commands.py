"""The CLI verbs ``embed``, ``search``, ``serve`` and ``plot`` (``versanet VERB --help``).

This module imports nothing from the ``app`` extra at import time, so ``versanet --help`` and the
other verbs work without it; each verb imports what it needs when it runs and, when the extra is
missing, stops with a message naming it.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, Literal


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Expected failures (missing extra, no index, wrong settings) as one line, not a traceback."""
    from versanet.app.store import VideoIndexError
    from versanet.checkpoint import CheckpointError
    from versanet.graph import GraphError

    try:
        yield
    except ImportError as err:
        if "versanet[app]" not in str(err):
            raise
        sys.exit(f"versanet: error: {err}")
    except (VideoIndexError, CheckpointError, GraphError, FileNotFoundError, ValueError) as err:
        sys.exit(f"versanet: error: {err}")


def embed(
    video_dir: str,
    ckpt: str | None = None,
    index: str | None = None,
    every: float = 4.0,
    num_frames: int | None = None,
    fps: float | None = None,
    modalities: list[str] | None = None,
    space: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    extensions: list[str] | None = None,
    rebuild: bool = False,
) -> None:
    """Embed every video under VIDEO_DIR into a searchable index (incremental: re-run it after adding or changing files).

    Args:
        video_dir: folder of videos (searched recursively; any container PyAV reads).
        ckpt: pretraining checkpoint (a `versanet fit` run, or converted weights); optional when the index exists.
        index: index folder to create or update.
        every: seconds per moment (each moment is embedded from one model clip in its middle).
        num_frames: frames per model clip (default: the checkpoint's training clips).
        fps: frame rate of the model clips (default: the checkpoint's training clips).
        modalities: clip modalities to embed (default: video and audio, whichever the checkpoint has).
        space: joint space to embed in (default: where video meets text).
        batch_size: clips per model batch.
        workers: decoding processes.
        device: auto (a GPU when there is one), cpu, cuda, cuda:1, ...
        extensions: file extensions to index (default: common video containers).
        rebuild: forget what the index holds and embed everything again.
    """
    if index is None:
        sys.exit("versanet: error: embed needs --index INDEX_DIR (the folder the index is written to)")
    from versanet.app.clips import VIDEO_EXTENSIONS

    with _friendly_errors():
        from versanet.app.indexer import embed_folder

        exts = tuple(e if e.startswith(".") else f".{e}" for e in extensions) if extensions else VIDEO_EXTENSIONS
        report = embed_folder(video_dir, index, ckpt, every, num_frames, fps, modalities, space, batch_size, workers, device, exts, rebuild)
    print(report.format())
    if report.interrupted:
        sys.exit(130)


def search(
    index: str,
    query: str,
    k: int = 10,
    modality: Literal["video", "audio", "both"] = "video",
    ckpt: str | None = None,
    nprobe: int | None = None,
    format: Literal["table", "json"] = "table",  # noqa: A002 - the option's name on the command line
) -> None:
    """Print the moments of an index that best match a text query: rank, score (cosine), start, end, file.

    Args:
        index: index folder written by `versanet embed`.
        query: what to look for, in words.
        k: how many moments.
        modality: which clip vectors answer: video, audio, or both (the mean of their scores).
        ckpt: the index's checkpoint, when it has moved since embedding.
        nprobe: IVF cells searched (large indexes only; more is slower and closer to exact).
        format: table, or json (rank, score, file, start, end, clip_id of each result, and the query's time).
    """
    with _friendly_errors():
        from versanet.app.search import Searcher, format_hits, hits_json

        searcher = Searcher(index, ckpt, nprobe=nprobe)
        searcher.encoder  # noqa: B018 - load the model before the clock starts
        started = time.perf_counter()
        hits = searcher.search(query, k, modality)
        seconds = time.perf_counter() - started
    if format == "json":
        print(hits_json(query, hits, seconds))
    else:
        print(format_hits(hits))
        print(f"({len(hits)} of {searcher.store.counts()['clips']} moments, {1000 * seconds:.1f} ms)")


def serve(
    index: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    ckpt: str | None = None,
    labels: str | None = None,
    column: str | None = None,
    device: str = "auto",
) -> None:
    """Serve a local web page to search an index by text, see the moments as thumbnails and play them (Ctrl-C stops).

    Args:
        index: index folder written by `versanet embed`.
        host: address to listen on (default loopback only; another address lets anyone who reaches it watch the videos).
        port: TCP port.
        ckpt: the index's checkpoint, when it has moved since embedding.
        labels: a label CSV for the joint-space map at /plot (see `versanet plot`).
        column: the label column that colours the map.
        device: where the text encoder runs: auto, cpu, cuda.
    """
    with _friendly_errors():
        from versanet.app.serve import run_server

        run_server(index, host=host, port=port, ckpt=ckpt, labels=labels, column=column, device=device)


def plot(
    index: str,
    out: str | None = None,
    labels: str | None = None,
    column: str | None = None,
    key: str | None = None,
    queries: list[str] | None = None,
    method: Literal["tsne", "pca"] = "tsne",
    max_points: int = 1200,
    ckpt: str | None = None,
) -> None:
    """Draw an index's joint space in 2-D (t-SNE or PCA), coloured by a label column; writes an HTML page or an SVG.

    Args:
        index: index folder written by `versanet embed`.
        out: output file, .html or .svg (default INDEX/plot.html).
        labels: CSV with a key column (matched to the file's stem, name or relative path) and label columns; with start and end columns, labels per time span.
        column: the label column that colours the points.
        key: the key column (default: the first column).
        queries: text queries to place on the map as stars.
        method: tsne or pca.
        max_points: points drawn at most (moments x modalities; a seeded sample of the moments).
        ckpt: the index's checkpoint, when it has moved since embedding (needed only for queries).
    """
    from pathlib import Path

    if bool(labels) != bool(column):
        sys.exit("versanet: error: --labels and --column go together")
    with _friendly_errors():
        from versanet.app.plot import plot_page, plot_points, render_svg
        from versanet.app.search import Searcher

        searcher = Searcher(index, ckpt)
        target = Path(out) if out else Path(index) / "plot.html"
        if target.suffix.lower() == ".svg":
            points = plot_points(searcher, labels, column, key, queries, method, max_points)
            text = render_svg(points, f"joint space {searcher.store.meta('space')}", column, "file", searcher.video_dir)
        else:
            text = plot_page(searcher, labels, column, key, queries, method, max_points)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
