"""``versanet serve``: a local web page to search an index by text, see the moments as thumbnails and play them.

Routes (FastAPI):

- ``/``: the page (``static/index.html``: a query box, result cards, a player that starts at the moment);
- ``/api/search?q=...&k=10&modality=video``: results as JSON; ``/api/info``: what the index holds;
- ``/thumb/<clip_id>.jpg``: a frame from the middle of a moment (decoded on demand, kept in memory);
- ``/media/<path>``: an indexed video, with HTTP range requests so the browser can seek;
- ``/excerpt/<clip_id>.mp4``: the moment as H.264 + AAC, for files a browser does not play as they are
  (``.avi``, MPEG-4 Part 2, ...; :mod:`versanet.app.playable`), encoded on first request and kept in
  the index folder's ``excerpts/``. A search result's ``media`` is the one the page should load and
  ``media_start`` the time in it at which the moment starts;
- ``/plot``: the joint space in 2-D (:mod:`versanet.app.plot`).

Only indexed, readable files inside the indexed folder are served: a media path must be a plain
relative path (no ``..``, ``.``, empty or absolute parts, no backslash or NUL), name a file the index
holds, and resolve (symbolic links followed) to a file inside the folder; anything else is a 404
that says nothing about what exists. The server binds to 127.0.0.1 unless told otherwise, and then
answers only requests addressed to a loopback host name (a guard against DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from versanet.app.extra import require
from versanet.app.playable import browser_playable, write_excerpt
from versanet.app.search import Searcher, timed_search

fastapi = require("fastapi")

from fastapi import FastAPI, HTTPException, Query  # noqa: E402 - after the extra check
from fastapi.responses import FileResponse, HTMLResponse, Response  # noqa: E402
from starlette.middleware.trustedhost import TrustedHostMiddleware  # noqa: E402

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]
THUMB_SHORT_SIDE = 180
MAX_K = 200


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def safe_media_path(root: Path, relative: str, is_indexed: Any) -> Path | None:
    """The file a ``/media/<relative>`` request may serve, or None (see the module docstring for the rules).

    ``is_indexed(relative) -> bool``: whether the index holds that exact relative path as a readable file.
    """
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    if not is_indexed(relative):
        return None
    root = root.resolve()
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symbolic link loop
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def create_app(
    index_dir: str | Path, ckpt: str | Path | None = None, host: str = "127.0.0.1", labels: str | None = None,
    column: str | None = None, device: str = "auto",
) -> FastAPI:
    """The web app for one index folder; ``host`` is the address it will be bound to (loopback: loopback host names only)."""
    searcher = Searcher(index_dir, ckpt, device=device)
    root = searcher.video_dir
    lock = threading.Lock()  # one query at a time through the model and the FAISS index
    plots: dict[tuple, str] = {}  # (index version, column, method) -> page; a t-SNE map takes a while
    plot_lock = threading.Lock()
    app = FastAPI(title="versanet search", docs_url=None, redoc_url=None, openapi_url=None)
    if is_loopback(host):
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)
    page = resources.files("versanet.app").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        store = searcher.store
        return {
            **store.counts(), "video_dir": str(root), "checkpoint": Path(str(store.meta("checkpoint"))).name,
            "space": store.meta("space"), "modalities": searcher.modalities, "grid": store.meta("grid"),
        }

    @app.get("/api/search")
    def search(q: str = Query(..., min_length=1, max_length=500), k: int = Query(12, ge=1, le=MAX_K), modality: str = "video") -> dict[str, Any]:
        if modality not in (*searcher.modalities, "both"):
            raise HTTPException(400, f"modality must be one of {', '.join([*searcher.modalities, 'both'])}")
        with lock:
            hits, seconds = timed_search(searcher, q, k, modality)
        return {"query": q, "seconds": round(seconds, 4), "results": [{**h.__dict__, "thumb": f"/thumb/{h.clip_id}.jpg", **playback(h)} for h in hits]}

    def playback(hit: Any) -> dict[str, Any]:
        """What the page loads for a hit: the file itself when a browser plays it, else the moment's excerpt."""
        path = safe_media_path(root, hit.file, searcher.store.file_is_indexed)
        if path is None or browser_playable(path):
            return {"media": "/media/" + _quote(hit.file), "media_start": hit.start}
        return {"media": f"/excerpt/{hit.clip_id}.mp4", "media_start": 0.0}

    @lru_cache(maxsize=2048)
    def thumbnail(clip_id: int) -> bytes | None:
        from torchvision.io import encode_jpeg
        import torch

        from versanet.data.video_io import MediaDecodeError, read_clip

        moment = searcher.store.moments([clip_id]).get(clip_id)
        path = safe_media_path(root, moment.file, searcher.store.file_is_indexed) if moment else None
        if path is None:
            return None
        try:
            clip = read_clip(path, (moment.start + moment.end) / 2, num_frames=1, fps=1.0, audio_rate=None, short_side=THUMB_SHORT_SIDE)
        except MediaDecodeError:
            return None
        image = torch.from_numpy(clip.frames[0]).permute(2, 0, 1).contiguous()
        return bytes(encode_jpeg(image, quality=85).numpy().tobytes())

    @app.get("/thumb/{clip_id}.jpg")
    def thumb(clip_id: int) -> Response:
        data = thumbnail(clip_id) if searcher.store.moments([clip_id]) else None
        if data is None:
            raise HTTPException(404, "no such moment")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/media/{relative:path}")
    def media(relative: str) -> FileResponse:
        path = safe_media_path(root, relative, searcher.store.file_is_indexed)
        if path is None:
            raise HTTPException(404, "not an indexed video")
        return FileResponse(path)

    excerpts = Path(index_dir) / "excerpts"
    excerpt_lock = threading.Lock()  # one encode at a time; a second request for the same moment waits and reuses it

    @app.get("/excerpt/{clip_id}.mp4")
    def excerpt(clip_id: int) -> FileResponse:
        from versanet.data.video_io import MediaDecodeError

        moment = searcher.store.moments([clip_id]).get(clip_id)
        path = safe_media_path(root, moment.file, searcher.store.file_is_indexed) if moment else None
        if path is None:
            raise HTTPException(404, "no such moment")
        out = excerpts / f"{clip_id}-{path.stat().st_mtime_ns}.mp4"
        with excerpt_lock:
            if not out.exists():
                try:
                    write_excerpt(path, moment.start, moment.end, out)
                except MediaDecodeError as err:
                    raise HTTPException(404, f"cannot decode this moment: {err.reason}") from err
        return FileResponse(out, media_type="video/mp4")

    @app.get("/plot", response_class=HTMLResponse)
    def plot(column: str | None = column, method: str = "tsne") -> str:
        from versanet.app.plot import plot_page

        if method not in ("tsne", "pca"):
            raise HTTPException(400, "method must be tsne or pca")
        key = (searcher.store.version, column, method)
        with plot_lock:
            if key not in plots:
                plots[key] = plot_page(searcher, labels=labels, column=column if labels else None, method=method, interactive=True)
            return plots[key]

    app.state.searcher = searcher
    return app


def _quote(relative: str) -> str:
    from urllib.parse import quote

    return quote(relative, safe="/")


def run_server(index_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve the app with uvicorn until interrupted."""
    uvicorn = require("uvicorn")
    app = create_app(index_dir, host=host, **kwargs)
    print(f"versanet search: http://{'[' + host + ']' if ':' in host else host}:{port}/  ({app.state.searcher.store.counts()['clips']} moments; Ctrl-C stops)")
    if not is_loopback(host):
        print(f"warning: listening on {host}: anyone who can reach this address can search and play the indexed videos")
    uvicorn.run(app, host=host, port=port, log_level="warning")
