"""CrossTask step localisation as MCN evaluates it zero-shot: the official ground truth, MCN's inputs and recall, by hand."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from versanet.data.features import context_window, per_second_rows
from versanet.eval.crosstask import StepRecall, assignment_matrix, order_constrained_assignment, step_annotation

REPO = Path(__file__).resolve().parents[1]


def test_ground_truth_marks_floor_start_to_ceil_end() -> None:
    # CrossTask's read_assignment: Y[floor(start):ceil(end), step - 1] = 1, cut at the video's end
    y = step_annotation([(1, 0.2, 1.1), (3, 2.0, 2.9), (2, 3.5, 9.0), (4, 0.0, 1.0)], seconds=5, num_steps=3)
    assert y.int().tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0]]  # step 4 is not a step of the task


def test_recall_official_sums_over_videos_mcn_averages_videos() -> None:
    scores = torch.tensor([[0.2, 0.9, 0.0], [0.8, 0.1, 0.1], [0.1, 0.3, 0.2], [0.0, 0.6, 0.9], [0.3, 0.1, 0.5]])
    prediction = assignment_matrix(order_constrained_assignment(scores), 5)  # seconds (1, 2, 3)
    a = step_annotation([(1, 1.0, 1.5), (2, 3.0, 3.5), (3, 3.2, 4.4)], 5, 3)  # hit, miss (2 != 3), hit: 2 of 3
    b = step_annotation([(1, 1.0, 1.5), (3, 3.2, 4.4)], 5, 3)  # step 2 absent: 2 of 2
    c = step_annotation([(1, 0.0, 0.9)], 5, 3)  # a miss: 0 of 1
    empty = step_annotation([], 5, 3)  # no step annotated: counts neither way
    official, mcn = StepRecall(), StepRecall("video")
    for metric in (official, mcn):
        for task, y in (("pancakes", a), ("pancakes", b), ("pancakes", empty), ("car", c)):
            metric.update(task, prediction, y)
    assert official.per_task() == {"car": 0.0, "pancakes": pytest.approx(4 / 5)}  # (2 + 2) / (3 + 2)
    assert mcn.per_task() == {"car": 0.0, "pancakes": pytest.approx((2 / 3 + 1) / 2)}
    assert official.compute()["recall"] == pytest.approx(0.4) and mcn.compute()["recall"] == pytest.approx(5 / 12)
    with pytest.raises(ValueError, match="'task' .* or 'video'"):
        StepRecall("mean")


def test_per_second_rows_and_audio_windows_follow_the_reference() -> None:
    # a 3d stream of 7 rows over 5 seconds: adaptive max pooling bins [floor(7i/5), ceil(7(i+1)/5)) = 0-1, 1-2, 2-4, 4-5, 5-6
    rows = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0], [0.0, 4.0], [1.0, 1.0], [5.0, 0.0]])
    expected = torch.tensor([[1.0, 2.0], [3.0, 2.0], [3.0, 4.0], [1.0, 4.0], [5.0, 1.0]])
    assert torch.allclose(per_second_rows(rows, 5), F.normalize(expected, dim=1))
    # MCN's 8 s windows (4 s either side), moved inside a 20 s video at its ends
    assert [context_window(s, 20, 4) for s in (0, 3, 4, 10, 16, 17, 19)] == [(0, 8), (0, 8), (0, 8), (6, 14), (12, 20), (12, 20), (12, 20)]


# ------------------------------------------------------------------------------------------- end to end
WORDS = "cut the onion slowly then fry it in oil until golden add salt and stir".split()
TASKS = {"101": ("Fry Onions", ["cut the onion", "fry it in oil", "add salt"]), "202": ("Season", ["add salt", "stir"])}
VIDEOS = {("101", "aaaaaaaaaa1"): (9, [(1, 0.4, 2.2), (2, 3.0, 5.5), (3, 6.1, 8.0)]),
          ("101", "aaaaaaaaaa2"): (6, [(1, 0.0, 1.0), (3, 4.2, 5.0)]),
          ("202", "bbbbbbbbbb1"): (7, [(1, 1.5, 2.5), (2, 5.0, 6.9)])}


def write_crosstask_features(root: Path, dim: int = 8) -> None:
    """A CrossTask release (tasks, val list, annotations) and, per video, the files `versanet features extract` writes."""
    rng = np.random.default_rng(3)
    release = root / "crosstask_release"
    (release / "annotations").mkdir(parents=True)
    (release / "tasks_primary.txt").write_text("".join(f"{t}\n{name}\nhttp://x\n{len(steps)}\n{','.join(steps)}\n\n" for t, (name, steps) in TASKS.items()))
    (release / "videos_val.csv").write_text("".join(f"{t},{v},https://www.youtube.com/watch?v={v}\n" for t, v in VIDEOS))
    features = root / "features"
    features.mkdir()
    for (task, vid), (seconds, segments) in VIDEOS.items():
        (release / "annotations" / f"{task}_{vid}.csv").write_text("".join(f"{s},{a},{b}\n" for s, a, b in segments))
        np.savez(features / f"{vid}_2d.npz", features=rng.random((seconds, dim), dtype=np.float32))
        np.savez(features / f"{vid}_3d.npz", features=rng.random((int(seconds * 1.5), dim), dtype=np.float32))
        np.savez(features / f"{vid}_spec.npz", arr_0=-80 * rng.random((40, seconds * 100 + 1), dtype=np.float32))


@torch.no_grad()
def mcn_recall_by_hand(model, root: Path, tokenize) -> float:  # noqa: ANN001
    """MCN's eval_cross.py recomputed: text @ (video + audio)^T per second, the best strictly increasing seconds (brute
    force), per-video recall averaged within a task, then over tasks."""
    from versanet.data.features import audio_window

    model.eval()
    per_task: dict[str, list[float]] = {}
    for (task, vid), (seconds, segments) in VIDEOS.items():
        f2d = torch.from_numpy(np.load(root / "features" / f"{vid}_2d.npz")["features"])
        f3d = torch.from_numpy(np.load(root / "features" / f"{vid}_3d.npz")["features"])
        spec = torch.from_numpy(np.load(root / "features" / f"{vid}_spec.npz")["arr_0"])
        video = torch.cat([per_second_rows(f2d, seconds), per_second_rows(f3d, seconds)], dim=1)
        audio = torch.stack([audio_window(spec, *context_window(s, seconds, 4), 1024) for s in range(seconds)])
        steps = TASKS[task][1]
        heads, enc = model.heads, model.encoders
        v = heads["video->joint"](enc["video"](video))
        a = heads["audio->joint"](enc["audio"](audio))
        t = heads["text->joint"](enc["text"](tokenize(steps)))
        scores = (t @ (v + a).T).T  # [S, K]
        best = max(itertools.combinations(range(seconds), len(steps)), key=lambda ts: sum(scores[s, k].item() for k, s in enumerate(ts)))
        truth = np.zeros((seconds, len(steps)), dtype=bool)  # CrossTask's read_assignment, written out again
        for step, start, end in segments:
            if step <= len(steps):
                truth[int(np.floor(start)) : int(np.ceil(end)), step - 1] = True
        hits = sum(truth[s, k] for k, s in enumerate(best))
        per_task.setdefault(task, []).append(hits / truth.any(0).sum())
    return float(np.mean([np.mean(r) for r in per_task.values()]))


def test_mcn_crosstask_config_scores_recall_as_the_reference(tmp_path: Path) -> None:
    from test_mcn_data import paper_config_tiny

    from versanet.checkpoint import load_pretrained
    from versanet.cli import run_cli

    fitted = run_cli(["fit", "--config", str(paper_config_tiny(tmp_path))])  # MCN at tiny width, 2 steps
    ckpt = tmp_path / "mcn.ckpt"
    fitted.trainer.save_checkpoint(ckpt)
    root = tmp_path / "crosstask"
    write_crosstask_features(root)
    config = yaml.safe_load((REPO / "configs/mcn/crosstask_zeroshot.yaml").read_text())
    assert config["model"]["init_args"]["recall"] == "video" and config["model"]["init_args"]["fusion"] == "sum_dot"
    config["trainer"].update(accelerator="cpu", default_root_dir=str(tmp_path / "test"), logger=False, enable_progress_bar=False)
    config["model"]["init_args"]["checkpoint"] = str(ckpt)
    config["data"]["init_args"].update(root=str(root), num_workers=0)
    config["data"]["init_args"]["transforms"]["text"]["init_args"]["cache_path"] = str(tmp_path / "howto" / "word2vec" / "w2v.subset.pt")
    path = tmp_path / "crosstask.yaml"
    path.write_text(yaml.safe_dump(config))
    tested = run_cli(["test", "--config", str(path)])
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    assert metrics["test/num_tasks"] == 2
    tokenize = tested.datamodule.transforms["text"].encode
    assert metrics["test/recall"] == pytest.approx(mcn_recall_by_hand(load_pretrained(str(ckpt)), root, tokenize), abs=1e-6)
    batch = next(iter(tested.datamodule.test_dataloader()))
    assert batch["video"].shape == (1, 9, 16) and batch["audio"].shape == (1, 9, 41, 1024) and batch["text"].shape == (1, 3, 20)
    assert batch["annotation"][0].int().tolist() == step_annotation(VIDEOS[("101", "aaaaaaaaaa1")][1], 9, 3).int().tolist()
