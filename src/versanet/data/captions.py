"""Time-stamped captions (HowTo100M style) and the choice of MIL-NCE candidates for a clip.

Readers accept the released layouts: a CSV with one row per caption (``video_id,start,end,text``)
or HowTo100M's ``caption.json`` (``{video_id: {"start": [...], "end": [...], "text": [...]}}``).

Captions that cannot be a positive are dropped when the file is read, before any sampling, and
counted by kind (:data:`DROPPED`): ``end < start``, and empty text (only whitespace). Each kind is
reported once per file with its count and the first offender.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("versanet.data")


@dataclass(frozen=True)
class Caption:
    start: float
    end: float
    text: str

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)


class CaptionFileError(ValueError):
    """A caption file that cannot be parsed; the message names the file, the line and the problem."""


#: captions dropped at read time, by kind: what is wrong with them
DROPPED = {"captions_reversed": "end before start", "captions_empty": "empty text"}


def caption_problem(caption: Caption) -> str | None:
    """The :data:`DROPPED` kind of a caption that cannot be a positive, else None."""
    if caption.end < caption.start:
        return "captions_reversed"
    if not caption.text.strip():
        return "captions_empty"
    return None


def read_captions(path: str | Path, errors: str = "strict") -> dict[str, list[Caption]]:
    """``{video_id: captions sorted by start}`` from a ``.csv`` or ``.json`` caption file.

    ``errors="strict"`` raises :class:`CaptionFileError` on the first problem; ``"replace"`` decodes
    invalid UTF-8 bytes as U+FFFD and skips unparsable rows, logging each problem
    (:func:`read_captions_report` returns them).
    """
    return read_captions_report(path, errors)[0]


def read_captions_report(path: str | Path, errors: str = "replace", report_dropped: bool = True) -> tuple[dict[str, list[Caption]], list[str]]:
    """Captions and the problems met reading them (one line each, naming the file and the line).

    Dropped captions (:data:`DROPPED`) are one problem line per kind: ``"<file>: N caption(s) with
    <what> dropped (first: video 'x', 1.00-0.50s 'text')"``; :func:`dropped_captions` lists them one by one.
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file not found: {path}")
    raw = path.read_bytes()
    problems: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if errors == "strict":
            what = "JSON caption file" if path.suffix.lower() == ".json" else "caption file"
            raise CaptionFileError(f"{path}: not valid UTF-8 ({err})" if what == "caption file" else f"{path}: not a valid UTF-8 JSON caption file ({err})") from err
        text = raw.decode("utf-8", errors="replace")
        bad_lines = [i for i, line in enumerate(text.splitlines(), start=1) if "\ufffd" in line]
        problems.append(f"{path}: not valid UTF-8 on {len(bad_lines)} line(s) (first: line {bad_lines[0] if bad_lines else '?'}); invalid bytes replaced")
    reader = _read_json if path.suffix.lower() == ".json" else _read_csv
    out = reader(path, text, problems if errors == "replace" else None)
    kept, dropped = split_dropped(out)
    for kind, rows in dropped.items() if report_dropped else ():
        vid, cap = rows[0]
        problems.append(f"{path}: {len(rows)} caption(s) with {DROPPED[kind]} dropped (first: video {vid!r}, {cap.start:.2f}-{cap.end:.2f}s {cap.text[:40]!r})")
    for problem in problems:
        log.warning("%s", problem)
    return kept, problems


def split_dropped(captions: dict[str, list[Caption]]) -> tuple[dict[str, list[Caption]], dict[str, list[tuple[str, Caption]]]]:
    """``(usable captions sorted by start, {kind: [(video_id, caption), ...]})``; every video keeps its entry, even if empty."""
    kept: dict[str, list[Caption]] = {}
    dropped: dict[str, list[tuple[str, Caption]]] = {}
    for vid, caps in captions.items():
        kept[vid] = []
        for cap in caps:
            kind = caption_problem(cap)
            if kind is None:
                kept[vid].append(cap)
            else:
                dropped.setdefault(kind, []).append((vid, cap))
        kept[vid].sort(key=lambda c: (c.start, c.end))
    return kept, dropped


def dropped_captions(path: str | Path, errors: str = "replace") -> dict[str, list[tuple[str, Caption]]]:
    """The captions of a file that :func:`read_captions` drops, by kind (``captions_reversed``, ``captions_empty``)."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="replace" if errors == "replace" else "strict")
    reader = _read_json if path.suffix.lower() == ".json" else _read_csv
    return split_dropped(reader(path, text, []))[1]


def _read_csv(path: Path, text: str, problems: list[str] | None) -> dict[str, list[Caption]]:
    out: dict[str, list[Caption]] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"video_id", "start", "end", "text"} - set(reader.fieldnames or [])
    if missing:
        raise CaptionFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected video_id,start,end,text")
    for line, row in enumerate(reader, start=2):
        try:
            cap = Caption(float(row["start"]), float(row["end"]), row["text"] or "")
        except (TypeError, ValueError) as err:
            message = f"{path}, line {line}: bad start/end ({row['start']!r}, {row['end']!r}): {err}"
            if problems is None:
                raise CaptionFileError(message) from err
            problems.append(message + "; row skipped")
            continue
        out.setdefault(row["video_id"], []).append(cap)
    return out


def _read_json(path: Path, text: str, problems: list[str] | None) -> dict[str, list[Caption]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CaptionFileError(f"{path}: not a valid UTF-8 JSON caption file ({err})") from err
    out: dict[str, list[Caption]] = {}
    for vid, entry in data.items():
        try:
            out[vid] = [Caption(float(s), float(e), str(t)) for s, e, t in zip(entry["start"], entry["end"], entry["text"], strict=True)]
        except (KeyError, TypeError, ValueError) as err:
            message = f"{path}: video {vid!r}: expected start/end/text lists of equal length ({err})"
            if problems is None:
                raise CaptionFileError(message) from err
            problems.append(message + "; video's captions skipped")
    return out


def captions_outside(captions: list[Caption], video_duration: float, tolerance: float = 0.5) -> list[Caption]:
    """Captions that start after the video ends (or end before 0): they can never match a clip."""
    return [c for c in captions if c.start > video_duration + tolerance or c.end < 0]


def consecutive_window(captions: list[Caption], index: int, k: int) -> list[int]:
    """The ``k`` consecutive captions containing ``index`` with the smallest time span (MIL-NCE sampling)."""
    n = len(captions)
    k = min(k, n)
    best, best_span = index, float("inf")
    for first in range(max(0, index - k + 1), min(index, n - k) + 1):
        span = captions[first + k - 1].end - captions[first].start
        if span < best_span:
            best, best_span = first, span
    return list(range(best, best + k))


def sample_train_window(
    captions: list[Caption], k: int, clip_duration: float, video_duration: float, rng: np.random.Generator
) -> tuple[float, list[int]]:
    """Training sampling (MIL-NCE): a random caption, its tightest K-window, a clip start inside the window's span.

    The span is stretched to at least ``clip_duration`` around its centre. Returns
    ``(clip_start, caption indices)`` with the sampled caption first.
    """
    index = int(rng.integers(len(captions)))
    window = consecutive_window(captions, index, k)
    lo, hi = captions[window[0]].start, max(captions[i].end for i in window)
    if hi - lo < clip_duration:
        centre = 0.5 * (lo + hi)
        lo, hi = centre - clip_duration / 2, centre + clip_duration / 2
    start = float(rng.uniform(lo, max(hi - clip_duration, lo)))
    start = min(max(start, 0.0), max(video_duration - clip_duration, 0.0))
    return start, [index] + [i for i in window if i != index]


def nearest_captions(captions: list[Caption], start: float, end: float, k: int) -> list[int]:
    """Indices of the ``k`` captions nearest in time to the window's centre (distance 0 when it overlaps), nearest first."""
    centre = 0.5 * (start + end)

    def distance(c: Caption) -> float:
        return 0.0 if c.start <= centre <= c.end else min(abs(c.start - centre), abs(c.end - centre))

    order = sorted(range(len(captions)), key=lambda i: (distance(captions[i]), abs(captions[i].centre - centre)))
    return order[:k]
