"""``versanet plot``: the index's joint space in 2-D, as an SVG map coloured by a label column.

Moments (up to ``max_points``, a seeded sample) are placed by t-SNE (scikit-learn) or PCA of their
vectors; video and audio vectors of the same moments are drawn as circles and triangles, so one
sees whether the modalities meet; text queries, when given, are embedded and placed with them as
labelled stars. Colour comes from a label CSV: one row per video (a key column matched against the
file's stem, name or relative path, and the label column), or per time span when the CSV also has
``start`` and ``end`` columns (a moment takes the label of the row covering its middle).
Hovering a point names its file and time; clicking it plays the moment.
"""

from __future__ import annotations

import csv
import html
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from versanet.app.search import Searcher, format_time
from versanet.app.store import Moment

#: categorical colours (Tableau 10 and its light half), then grey for "other" / "no label"
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
           "#a0cbe8", "#ffbe7d", "#ff9d9a", "#8cd17d", "#f1ce63", "#d4a6c8"]
OTHER = "#6b7280"
#: labels that name a colour are drawn in it (a map coloured by "colour" should not show red as orange)
NAMED = {"red": "#e8453c", "green": "#3cb44b", "blue": "#4f7df0", "yellow": "#f2d23c", "white": "#f0f0f0", "black": "#3a3a3a",
         "orange": "#f28e2b", "purple": "#9b59d0", "pink": "#ff9da7", "brown": "#9c755f", "grey": "#a0a0a0", "gray": "#a0a0a0",
         "cyan": "#40d0e0", "magenta": "#e040c0"}
MARKERS = {"video": "circle", "audio": "triangle"}


@dataclass
class Point:
    x: float
    y: float
    kind: str  # a modality, or "query"
    label: str | None
    moment: Moment | None = None
    text: str = ""


def project(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``[N, d]`` -> ``[N, 2]``: t-SNE (scikit-learn, perplexity up to 30) or PCA (the top two principal axes)."""
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 3 or method == "pca":
        centred = x - x.mean(0)
        if len(x) < 2:
            return np.zeros((len(x), 2))
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if method != "tsne":
        raise ValueError(f"method must be tsne or pca, not {method!r}")
    from versanet.app.extra import require

    manifold = require("sklearn.manifold")
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    # 500 iterations: the map has settled by then, and each costs ~40 ms per thousand points on a CPU core
    return manifold.TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=500, random_state=seed).fit_transform(x)


def read_labels(path: str | Path, column: str, key: str | None = None) -> dict[str, list[tuple[float, float, str]]]:
    """A label CSV -> key -> ``[(start, end, label)]`` (``(-inf, inf, label)`` when the CSV has no start/end columns)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if column not in fields:
            raise ValueError(f"{path} has no column {column!r} (columns: {', '.join(fields)})")
        key = key or fields[0]
        if key not in fields:
            raise ValueError(f"{path} has no key column {key!r} (columns: {', '.join(fields)})")
        timed = "start" in fields and "end" in fields
        out: dict[str, list[tuple[float, float, str]]] = {}
        for row in reader:
            span = (float(row["start"]), float(row["end"])) if timed else (float("-inf"), float("inf"))
            out.setdefault(row[key], []).append((*span, row[column]))
    return out


def label_of(moment: Moment, labels: dict[str, list[tuple[float, float, str]]]) -> str | None:
    """The label of a moment: its file's rows (by relative path, name or stem), the one covering its middle."""
    rows = labels.get(moment.file) or labels.get(Path(moment.file).name) or labels.get(Path(moment.file).stem)
    if not rows:
        return None
    centre = (moment.start + moment.end) / 2
    covering = [label for start, end, label in rows if start <= centre < end]
    return covering[0] if covering else None


def gather(searcher: Searcher, max_points: int, seed: int = 0) -> tuple[list[tuple[str, Moment]], np.ndarray]:
    """A seeded sample of up to ``max_points`` moments, with the vector of each modality: ``([(modality, moment)], [n, dim])``."""
    store = searcher.store
    moments = list(store.all_moments())
    if len(moments) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(moments), max_points, replace=False))
        moments = [moments[i] for i in pick]
    by_id = {m.clip_id: m for m in moments}
    ids = np.array(sorted(by_id), dtype=np.int64)
    items: list[tuple[str, Moment]] = []
    vectors = []
    for modality in searcher.modalities:
        for part_ids, part in store.vectors(modality, ids):
            items += [(modality, by_id[int(i)]) for i in part_ids]
            vectors.append(part)
    return items, (np.concatenate(vectors) if vectors else np.zeros((0, int(store.meta("dim")))))


def plot_points(
    searcher: Searcher, labels: str | Path | None = None, column: str | None = None, key: str | None = None,
    queries: list[str] | None = None, method: str = "tsne", max_points: int = 1500, seed: int = 0,
) -> list[Point]:
    """The map's points: every sampled moment per modality, and the text queries, projected together."""
    items, vectors = gather(searcher, max_points, seed)
    queries = list(queries or [])
    if queries:
        vectors = np.concatenate([vectors, searcher.encoder.embed_text(queries)])
    xy = project(vectors, method, seed) if len(vectors) else np.zeros((0, 2))
    table = read_labels(labels, column, key) if labels and column else None
    points = [Point(float(x), float(y), m, label_of(moment, table) if table else None, moment) for (m, moment), (x, y) in zip(items, xy)]
    points += [Point(float(x), float(y), "query", None, text=q) for q, (x, y) in zip(queries, xy[len(items) :])]
    return points


def _colours(points: list[Point]) -> dict[str | None, str]:
    counts = Counter(p.label for p in points if p.kind != "query" and p.label is not None)
    ranked = [label for label, _ in counts.most_common()]
    keep = ranked if len(ranked) <= len(PALETTE) else ranked[: len(PALETTE) - 1]
    if keep and all(str(label).lower() in NAMED for label in keep):
        return {label: NAMED[str(label).lower()] for label in sorted(keep)}
    return {label: PALETTE[i] for i, label in enumerate(sorted(keep))}


def _marker(kind: str, x: float, y: float, fill: str) -> str:
    if MARKERS.get(kind) == "triangle":
        return f'<path d="M{x:.1f},{y - 4.5:.1f} L{x + 4:.1f},{y + 3:.1f} L{x - 4:.1f},{y + 3:.1f} Z" fill="{fill}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.6" fill="{fill}"/>'


def _star(x: float, y: float, r: float = 9.0) -> str:
    corners = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = np.pi / 2 + i * np.pi / 5
        corners.append(f"{x + radius * np.cos(angle):.1f},{y - radius * np.sin(angle):.1f}")
    return f'<polygon points="{" ".join(corners)}" fill="#ffffff" stroke="#111418" stroke-width="1.5"/>'


def render_svg(points: list[Point], title: str, column: str | None, link: str = "served", video_dir: Path | None = None, width: int = 1000, height: int = 700) -> str:
    """The map as SVG: points (hover: file and time; click: play) and a legend.

    ``link``: ``served`` (``/media/...#t=start``, for ``versanet serve``) or ``file`` (``file://`` URLs of ``video_dir``).
    """
    plot_w, pad = width - 240, 30
    xs = np.array([p.x for p in points]) if points else np.zeros(1)
    ys = np.array([p.y for p in points]) if points else np.zeros(1)
    lo_x, hi_x, lo_y, hi_y = xs.min(), xs.max(), ys.min(), ys.max()
    sx = (plot_w - 2 * pad) / max(hi_x - lo_x, 1e-9)
    sy = (height - 2 * pad - 40) / max(hi_y - lo_y, 1e-9)

    def at(p: Point) -> tuple[float, float]:
        return pad + (p.x - lo_x) * sx, 40 + pad + (hi_y - p.y) * sy

    colours = _colours(points)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="system-ui, sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#111418"/>',
           f'<text x="{pad}" y="28" fill="#e8ecf1" font-size="17">{html.escape(title)}</text>']
    for p in sorted((p for p in points if p.kind != "query"), key=lambda p: p.label in colours):
        x, y = at(p)
        fill = colours.get(p.label, OTHER)
        m = p.moment
        tip = f"{m.file}  {format_time(m.start)}–{format_time(m.end)}  [{p.kind}]" + (f"  {column}: {p.label}" if p.label is not None else "")
        if link == "served":
            href = f"/media/{quote(m.file, safe='/')}#t={m.start:g}"
        else:
            href = (Path(video_dir or ".") / m.file).resolve().as_uri() + f"#t={m.start:g}"
        out.append(f'<a href="{html.escape(href)}" target="_blank" class="point" data-label="{html.escape(str(p.label))}" data-kind="{p.kind}">'
                   f"<title>{html.escape(tip)}</title>{_marker(p.kind, x, y, fill)}</a>")
    for p in points:
        if p.kind == "query":
            x, y = at(p)
            out.append(f'<g class="query">{_star(x, y)}<text x="{x + 12:.1f}" y="{y + 4:.1f}" fill="#ffffff" font-size="13" '
                       f'stroke="#111418" stroke-width="3" paint-order="stroke">{html.escape(p.text)}</text></g>')
    # legend
    lx, ly = plot_w + 10, 60
    out.append(f'<text x="{lx}" y="{ly}" fill="#9aa5b1" font-size="13">{html.escape(column or "moments")}</text>')
    entries = [(label, colour) for label, colour in colours.items()]
    if any(p.label not in colours for p in points if p.kind != "query"):
        entries.append(("other / no label" if colours else "moment", OTHER))
    for i, (label, colour) in enumerate(entries):
        y = ly + 22 + 20 * i
        out.append(f'<circle cx="{lx + 6}" cy="{y - 4}" r="5" fill="{colour}"/><text x="{lx + 18}" y="{y}" fill="#e8ecf1" font-size="13">{html.escape(str(label))}</text>')
    y = ly + 22 + 20 * len(entries) + 16
    kinds = sorted({p.kind for p in points if p.kind != "query"})
    for i, kind in enumerate(kinds):
        out.append(f'{_marker(kind, lx + 6, y + 20 * i - 4, "#e8ecf1")}<text x="{lx + 18}" y="{y + 20 * i}" fill="#e8ecf1" font-size="13">{kind}</text>')
    if any(p.kind == "query" for p in points):
        y += 20 * len(kinds)
        out.append(f'{_star(lx + 6, y - 4, 6)}<text x="{lx + 18}" y="{y}" fill="#e8ecf1" font-size="13">text query</text>')
    out.append("</svg>")
    return "\n".join(out)


def plot_page(
    searcher: Searcher, labels: str | Path | None = None, column: str | None = None, key: str | None = None,
    queries: list[str] | None = None, method: str = "tsne", max_points: int = 1500, interactive: bool = False,
) -> str:
    """A self-contained HTML page with the map (``interactive``: links for ``versanet serve``, else ``file://`` links)."""
    points = plot_points(searcher, labels, column, key, queries, method, max_points)
    moments = len({p.moment.clip_id for p in points if p.moment is not None})
    space = searcher.store.meta("space")
    title = f"joint space {space}: {moments} moments, {method.upper() if method == 'pca' else 't-SNE'}" + (f", coloured by {column}" if column else "")
    svg = render_svg(points, title, column, "served" if interactive else "file", searcher.video_dir)
    back = '<p><a href="/" style="color:#4da3ff">back to search</a></p>' if interactive else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>versanet: {html.escape(title)}</title></head>'
            f'<body style="margin:0;background:#111418;color:#e8ecf1;font-family:system-ui,sans-serif;padding:12px">{back}{svg}</body></html>')
