"""``versanet plot``: the index's joint space in 2-D, as an SVG map coloured by a label column.

Moments (a seeded sample, up to ``max_points`` points in all) are placed by t-SNE or PCA of their
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
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch
from torch import Tensor

from versanet.app.search import Searcher, format_time
from versanet.app.store import Moment
from versanet.app.threads import one_thread

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
    """``[N, d]`` -> ``[N, 2]``: t-SNE (:func:`tsne`) or PCA (the top two principal axes)."""
    x = np.asarray(vectors, dtype=np.float64)
    if method not in ("tsne", "pca"):
        raise ValueError(f"method must be tsne or pca, not {method!r}")
    if len(x) < 2:
        return np.zeros((len(x), 2))
    if method == "tsne" and len(x) > 4:
        with one_thread():
            return tsne(torch.from_numpy(x).float(), seed=seed).numpy().astype(np.float64)
    return pca(x)


def pca(x: np.ndarray) -> np.ndarray:
    """``[N, d]`` -> the coordinates on the top two principal axes ``[N, 2]``."""
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def tsne(x: Tensor, perplexity: float = 30.0, iterations: int = 500, seed: int = 0) -> Tensor:
    """Exact t-SNE (van der Maaten and Hinton, 2008) of ``[N, d]`` -> ``[N, 2]``, with scikit-learn's schedule.

    Written here rather than taken from scikit-learn because that package and SciPy would add about two
    minutes to every fresh install of the app extra (measured on the CI machine) for this one function,
    and because the exact O(N^2) algorithm in torch is faster than scikit-learn's Barnes-Hut at the few
    thousand points a readable map has (1200 points: 14 s on one core of a busy 2-core machine).
    As scikit-learn: per-point Gaussian bandwidths found by bisection to the given perplexity over the
    ``3 * perplexity`` nearest neighbours, symmetric joint P; early exaggeration 12 for 250 iterations with
    momentum 0.5, then 0.8 (500 iterations in all, scikit-learn's smallest setting); learning rate
    ``max(N / 12 / 4, 50)``; per-coordinate gains (+0.2 / x0.8, floor 0.01); PCA initialisation scaled
    to standard deviation 1e-4.
    """
    n = x.shape[0]
    perplexity = min(perplexity, (n - 1) / 3)
    x = x.double()
    d2 = torch.cdist(x, x).square_()
    p = _conditional_p(d2, perplexity)
    p = (p + p.T) / (2 * n)
    p = p.clamp_min(1e-12)
    centred = (x - x.mean(0)).float()
    _, _, v = torch.pca_lowrank(centred, q=2, center=False, niter=4) if n > 2 else (None, None, torch.eye(x.shape[1], 2))
    y = centred @ v[:, :2]
    y = (y / y[:, 0].std() * 1e-4).double()
    generator = torch.Generator().manual_seed(seed)
    y += torch.randn(y.shape, generator=generator, dtype=y.dtype) * 1e-8  # break ties of identical points
    y, p = y.float(), p.float()
    velocity, gains = torch.zeros_like(y), torch.ones_like(y)
    rate = max(n / 12.0 / 4.0, 50.0)
    for step in range(iterations):
        early = step < 250
        sq = y.square().sum(1)
        kernel = (sq[:, None] + sq[None, :] - 2 * (y @ y.T)).clamp_min_(0).add_(1).reciprocal_()  # (1 + |y_i - y_j|^2)^-1
        kernel.fill_diagonal_(0.0)
        q = (kernel / kernel.sum()).clamp_min_(1e-12)
        weight = ((12.0 if early else 1.0) * p - q).mul_(kernel)  # [N, N]
        grad = 4.0 * (weight.sum(1, keepdim=True) * y - weight @ y)  # sum_j w_ij (y_i - y_j)
        same_sign = (grad > 0) == (velocity > 0)
        gains = torch.where(same_sign, gains * 0.8, gains + 0.2).clamp_min(0.01)
        velocity = (0.5 if early else 0.8) * velocity - rate * gains * grad
        y = y + velocity
    return (y - y.mean(0)).float()


def _conditional_p(d2: Tensor, perplexity: float, steps: int = 50) -> Tensor:
    """Row-stochastic ``P_{j|i}`` ``[N, N]`` whose rows have the given perplexity, on each point's ``3 * perplexity``
    nearest neighbours (as scikit-learn's Barnes-Hut t-SNE; the rest of a row is ~0): bisection on each row's precision."""
    n = d2.shape[0]
    k = min(n - 1, int(3 * perplexity) + 1)
    near, cols = d2.fill_diagonal_(float("inf")).topk(k, dim=1, largest=False)  # [N, k]
    near = near - near[:, :1]  # shift: the softmax is unchanged, exp() stays finite
    target = math.log(perplexity)
    beta = torch.ones(n, 1, dtype=d2.dtype)
    lo = torch.zeros(n, 1, dtype=d2.dtype)
    hi = torch.full((n, 1), float("inf"), dtype=d2.dtype)
    for _ in range(steps):
        p = torch.softmax(-near * beta, dim=1)
        entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(1, keepdim=True)
        too_flat = entropy > target  # perplexity too high: sharpen (raise beta)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(torch.isinf(hi), beta * 2, (lo + hi) / 2)
    return torch.zeros(n, n, dtype=d2.dtype).scatter_(1, cols, torch.softmax(-near * beta, dim=1))


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
    """A seeded sample of moments with the vector of each modality, up to ``max_points`` vectors: ``([(modality, moment)], [n, dim])``."""
    store = searcher.store
    moments = list(store.all_moments())
    most = max(1, max_points // max(1, len(searcher.modalities)))
    if len(moments) > most:
        pick = np.sort(np.random.default_rng(seed).choice(len(moments), most, replace=False))
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
    queries: list[str] | None = None, method: str = "tsne", max_points: int = 1200, seed: int = 0,
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
    queries: list[str] | None = None, method: str = "tsne", max_points: int = 1200, interactive: bool = False,
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
