"""Does text search find the right moments? Precision@k on the toy world, whose every moment has known labels.

Each moment of a toy video gets the video's shape and colour (``labels.csv``) and the direction of
the motion segment at its middle (segments are ``seconds / num_segments`` long, ``manifest.json``).
The queries are every ``"a {colour} {shape} moving {direction}"``; a result is correct when all
three match (and, reported beside it, when each one does).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from versanet.app.search import Searcher
from versanet.data.toy import COLOURS, DIRECTIONS, SHAPES

ATTRIBUTES = ("colour", "shape", "direction")


@dataclass(frozen=True)
class ToyLabel:
    colour: str
    shape: str
    direction: str


def toy_moment_labels(searcher: Searcher, toy_root: str | Path) -> dict[int, ToyLabel]:
    """Clip id -> the labels of its moment, for every moment of the index that is a toy video under ``toy_root``."""
    root = Path(toy_root)
    config = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["config"]
    segment = config["seconds"] / config["num_segments"]
    with (root / "labels.csv").open(newline="", encoding="utf-8") as f:
        videos = {row["video_id"]: row for row in csv.DictReader(f)}
    labels = {}
    for moment in searcher.store.all_moments():
        row = videos.get(Path(moment.file).stem)
        if row is None:
            continue
        directions = row["directions"].split("|")
        centre = (moment.start + moment.end) / 2
        labels[moment.clip_id] = ToyLabel(row["colour"], row["shape"], directions[min(int(centre / segment), len(directions) - 1)])
    return labels


def toy_queries() -> list[tuple[str, ToyLabel]]:
    """Every (query text, the labels it asks for): 5 colours x 4 shapes x 4 directions."""
    return [(f"a {c} {s} moving {d}", ToyLabel(c, s, d)) for c, s, d in itertools.product(COLOURS, SHAPES, DIRECTIONS)]


def toy_precision(searcher: Searcher, toy_root: str | Path, k: int = 5, modality: str = "video") -> dict[str, float]:
    """Mean precision@k over :func:`toy_queries`: ``all`` (colour, shape and direction right), ``object`` (colour and
    shape right) and each attribute alone.

    ``chance_all``: the precision of a random ranking (the share of moments matching a query, averaged).
    """
    labels = toy_moment_labels(searcher, toy_root)
    if not labels:
        raise ValueError(f"no moment of the index is a video of the toy world under {toy_root}")
    queries = toy_queries()
    texts = [q for q, _ in queries]
    vectors = searcher.encoder.embed_text(texts)
    totals = dict.fromkeys(("all", "object", *ATTRIBUTES), 0.0)
    chance = 0.0
    values = list(labels.values())
    for (_, want), vector in zip(queries, vectors):
        hits = searcher.search_vector(vector, k, modality)
        got = [labels[h.clip_id] for h in hits if h.clip_id in labels]
        totals["all"] += sum(g == want for g in got) / k
        totals["object"] += sum((g.colour, g.shape) == (want.colour, want.shape) for g in got) / k
        for attribute in ATTRIBUTES:
            totals[attribute] += sum(getattr(g, attribute) == getattr(want, attribute) for g in got) / k
        chance += sum(v == want for v in values) / len(values)
    out = {name: total / len(queries) for name, total in totals.items()}
    out["chance_all"] = chance / len(queries)
    out["queries"] = len(queries)
    out["moments"] = len(labels)
    return out
