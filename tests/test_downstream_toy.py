"""Downstream benchmarks end to end on the toy world: a short quickstart pretraining, then probes, retrieval and the suite.

One pretraining run (the quickstart FAC config, 100 steps of 16 clips) on a 192 + 48 video toy world
is shared by every test here. The 64-video world of ``toy_root`` is too small for text-video
retrieval to generalise in a short run, so this module writes its own (about 15 s).
Torch runs single-threaded here: on a small shared CPU box that is several times faster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import versanet.data.datasets  # noqa: F401 - registers the benchmark data modules
import versanet.downstream  # noqa: F401 - registers the benchmark modules and toy data modules
from versanet.benchmark_suite import benchmark, load_suite, run_benchmark
from versanet.cli import run_cli
from versanet.data.toy import ToyWorldConfig, generate_toy_world
from versanet.downstream.features import FeatureCache

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart" / "fac.yaml"
BENCH = REPO / "configs" / "benchmarks"


@pytest.fixture(scope="module", autouse=True)
def _single_thread(cli_single_thread: None) -> None:
    """Every test here runs single-threaded (see ``cli_single_thread`` in conftest.py)."""


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(toy world root, checkpoint of a 100-step quickstart FAC run on it)."""
    base = tmp_path_factory.mktemp("downstream")
    root = generate_toy_world(base / "toy", ToyWorldConfig(num_train=192, num_val=48, seconds=4.0, seed=3), workers=2)
    run_cli([
        "fit", "--config", str(QUICKSTART), f"--data.init_args.root={root}", "--data.init_args.toy=null", "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=16", "--trainer.max_steps=100", "--trainer.max_epochs=100", "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={base / 'pretrain'}",
        "--trainer.callbacks=[]", "--trainer.logger=false", "--model.init_args.warmup_steps=10",
    ])
    ckpt = next((base / "pretrain").rglob("*.ckpt"))
    return Path(root), ckpt


def _run(configs: list[str], ckpt: Path, root: Path, out: Path, *extra: str) -> dict[str, float]:
    return run_benchmark([BENCH / c for c in configs], str(ckpt), out, [f"--data.init_args.root={root}", *extra])


def test_pretrained_checkpoint_beats_random_weights_on_probe_and_retrieval(pretrained: tuple[Path, Path], tmp_path: Path) -> None:
    root, ckpt = pretrained
    results = {}
    for init in ("pretrained", "random"):
        probe = _run(["toy_linear.yaml", "toy_linear_lowshot.yaml"], ckpt, root, tmp_path / init / "probe", f"--model.init_args.init={init}",
                     f"--model.init_args.cache_dir={tmp_path / 'cache'}")
        retrieval = _run(["toy_retrieval.yaml"], ckpt, root, tmp_path / init / "retrieval", f"--model.init_args.init={init}")
        results[init] = {"probe": probe["test/top1"], **{k.split("/")[-1]: v for k, v in retrieval.items() if "/text_to_video/" in k}}
    print(results)
    ours, base = results["pretrained"], results["random"]
    # 1-shot linear probe on colour, mean over 5 draws: pretrained features group clips by colour whatever the nuisances
    assert ours["probe"] >= base["probe"] + 0.2
    # zero-shot text -> video on 48 held-out videos (random weights: R@5 ~ 5/48, median rank ~ 24)
    assert ours["R@5"] >= base["R@5"] + 0.2
    assert ours["MedR"] <= base["MedR"] / 2


def test_features_are_cached_and_reused_across_classifier_settings(pretrained: tuple[Path, Path], tmp_path: Path) -> None:
    root, ckpt = pretrained
    common = ["--config", str(BENCH / "toy_linear.yaml"), "--config", str(BENCH / "toy_linear_lowshot.yaml"), f"--model.init_args.checkpoint={ckpt}", f"--data.init_args.root={root}",
              f"--model.init_args.cache_dir={tmp_path / 'cache'}"]
    first = run_cli(["fit", *common, f"--trainer.default_root_dir={tmp_path / 'a'}"])
    assert first.model.extractor.sources == {"train": "extracted"}
    FeatureCache.clear_memory()  # the second run reads the file, as a new process would
    second = run_cli(["fit", *common, f"--trainer.default_root_dir={tmp_path / 'b'}", "--model.init_args.weight_decays=[0.1]",
                      "--model.init_args.train_per_class=2"])
    assert second.model.extractor.sources == {"train": "cache"}
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    other = run_cli(["fit", *common, f"--trainer.default_root_dir={tmp_path / 'c'}", "--model.init_args.init=random"])
    assert other.model.extractor.sources == {"train": "extracted"}  # another backbone: another cache entry
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_toy_classification_data_labels_and_views(pretrained: tuple[Path, Path]) -> None:
    import csv

    from versanet.data.transforms import VideoClipTransform
    from versanet.downstream.toy import ToyClassificationDataModule

    root, _ = pretrained
    rows = {r["video_id"]: r for r in csv.DictReader((root / "labels.csv").open())}
    video = {"video": VideoClipTransform(crop=32, resize=36, flip_prob=0.0)}
    shape = ToyClassificationDataModule(str(root), video, label_key="shape", num_frames=4, eval_clips=3)
    shape.setup()
    sample = shape.test_set[0]
    assert sample["video"].shape == (3, 3, 4, 32, 32) and shape.num_classes == 4 and not shape.multilabel
    assert shape.class_names[int(sample["label"])] == rows[shape.test_set.video_ids[0]]["shape"]
    # the centred clip of a 4 s video with 3 segments lies in the middle segment
    motion = ToyClassificationDataModule(str(root), video, label_key="direction", num_frames=4)
    motion.setup()
    for i in range(3):
        vid = motion.test_set.video_ids[i]
        assert motion.class_names[int(motion.test_set[i]["label"])] == rows[vid]["directions"].split("|")[1]
    with pytest.raises(ValueError, match="eval_clips 1"):
        ToyClassificationDataModule(str(root), video, label_key="direction", eval_clips=2).setup()


def test_benchmark_suite_writes_the_table_and_matches_each_benchmark_run_alone(
    pretrained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ckpt = pretrained
    cache = tmp_path / "cache"
    short = ["--trainer.max_epochs=2"]  # fine-tuning 2 epochs instead of 8 (the probes fit in 2 anyway)
    report = benchmark(str(ckpt), suite="toy", output=str(tmp_path / "out"), name="quickstart-100", data_root=str(root), overrides=short,
                       cache_dir=str(cache), strict=True)
    table = (tmp_path / "out" / "results.md").read_text()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved == json.loads(json.dumps(report))
    suite = load_suite(BENCH / "suites" / "toy.yaml")
    assert "| quickstart-100 |" in table and "T->V R@5" in table and "1-shot linear video (colour)" in table
    assert [r["name"] for r in saved["rows"]] == ["quickstart-100"]
    row = saved["rows"][0]["results"]
    assert set(row) == {e["key"] for e in suite["benchmarks"]}

    # each benchmark alone, as a user would run it: `versanet fit` then `versanet test --ckpt_path` (`test` only when zero-shot)
    FeatureCache.clear_memory()
    monkeypatch.setenv("VERSANET_FEATURE_CACHE", str(cache))
    for entry in suite["benchmarks"]:
        configs = [a for c in entry["config"] for a in ("--config", c)]
        args = [*configs, f"--model.init_args.checkpoint={ckpt}", f"--data.init_args.root={root}", *short, *entry["overrides"]]
        folder = tmp_path / "alone" / entry["key"]
        model_class = next(m["class_path"] for c in entry["config"] if (m := yaml.safe_load(Path(c).read_text()).get("model", {})).get("class_path"))
        if model_class not in ZERO_SHOT:
            fitted = run_cli(["fit", *args, f"--trainer.default_root_dir={folder / 'fit'}"])
            args.append(f"--ckpt_path={fitted.trainer.checkpoint_callback.best_model_path}")
        tested = run_cli(["test", *args, f"--trainer.default_root_dir={folder / 'test'}"])
        logged = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
        for name, metric in entry["metrics"].items():
            alone = logged[metric] if name in ("MedR", "MeanR") else 100 * logged[metric]
            assert row[entry["key"]][name]["value"] == pytest.approx(alone, rel=1e-6, abs=1e-9), (entry["key"], name)


ZERO_SHOT = {"ZeroShotRetrievalModule", "StepLocalisationModule"}


# ------------------------------------------------------------------------------------------------ the paper configs on real layouts
# The configs for the real benchmarks run on miniature copies of the released layouts (tests/fixtures_data.py), shrunk
# to the toy network: small frames, 4-frame clips, the toy checkpoint's tokenizer in place of word2vec.
SMALL_TRANSFORMS = {
    "video": {"class_path": "VideoClipTransform", "init_args": {"crop": 16, "resize": 20, "flip_prob": 0.0, "color_jitter_prob": 0.0}},
    "audio": {"class_path": "LogMelTransform", "init_args": {"sample_rate": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 40}},
    "image": {"class_path": "ImageTransform", "init_args": {"crop": 16, "resize": 20}},
}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from fixtures_data import MediaCache, make_audioset, make_crosstask, make_esc50, make_msrvtt, make_ucf101, make_voc2007, write_video

    base = tmp_path_factory.mktemp("corpora")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    roots = {name: base / name for name in ("ucf", "esc", "audioset", "msrvtt", "voc", "crosstask")}
    make_ucf101(roots["ucf"], media)
    make_esc50(roots["esc"])
    make_audioset(roots["audioset"], media)
    make_msrvtt(roots["msrvtt"], media)
    for i, video in enumerate(sorted((roots["msrvtt"] / "videos").rglob("*.mp4"))):  # three different videos, not copies
        write_video(video, seconds=3.0 + i, tone_at=0.5 + 0.8 * i)
    make_voc2007(roots["voc"])
    make_crosstask(roots["crosstask"], media)
    write_video(roots["crosstask"] / "videos" / "23521" / "jjjjjjjjjj1.mp4", seconds=6.0)  # 6 seconds for 3 steps: a real choice
    return roots


def _paper_config(key: str, root: Path, tokenizer: Path, out: Path, data: dict | None = None, model: dict | None = None) -> list[str]:
    """The mmv suite's configs for ``key`` plus an overlay that shrinks them (a later config overrides earlier ones)."""
    from test_downstream_configs import resolved

    entry = next(e for e in load_suite(BENCH / "suites" / "mmv.yaml")["benchmarks"] if e["key"] == key)
    zero_shot = any(k in key for k in ("zeroshot", "crosstask"))
    full = resolved(entry["config"], "test" if zero_shot else "fit")["data"]["init_args"]
    args = {"root": str(root), "num_workers": 0, "batch_size": 4}
    for name, value in {"num_frames": 4, "fps": 5.0, "short_side": None, "eval_clips": 2, "audio_rate": 16000}.items():
        if name in full:
            args[name] = value
    text = {"class_path": "TokenizeText", "init_args": {"num_candidates": 1, "max_tokens": 16, "vocab_size": 256, "model_type": "word", "model_path": str(tokenizer)}}
    args["transforms"] = {m: (text if m == "text" else SMALL_TRANSFORMS[m]) for m in full["transforms"]}
    args.update(data or {})
    overlay = {"trainer": {"max_epochs": 1, "check_val_every_n_epoch": 1, "enable_progress_bar": False, "log_every_n_steps": 1}, "data": {"init_args": args},
               "model": {"init_args": model or {}}}
    path = out / f"{key}_small.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(overlay))
    return [*entry["config"], str(path)]


def fit_and_test(configs: list[str], ckpt: Path, out: Path, zero_shot: bool = False):  # noqa: ANN201 - VersanetCLI
    """`versanet fit` then `versanet test --ckpt_path` (`test` alone when zero-shot); the test's logged metrics and its CLI."""
    base = [*(a for c in configs for a in ("--config", c)), f"--model.init_args.checkpoint={ckpt}"]
    extra = []
    if not zero_shot:
        fitted = run_cli(["fit", *base, f"--trainer.default_root_dir={out / 'fit'}"])
        extra = [f"--ckpt_path={fitted.trainer.checkpoint_callback.best_model_path}"]
    tested = run_cli(["test", *base, *extra, f"--trainer.default_root_dir={out / 'test'}"])
    return {k: float(v) for k, v in tested.trainer.callback_metrics.items()}, tested


@torch.no_grad()
def probe_scores(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:  # noqa: ANN001 - LinearProbeModule
    """Test scores recomputed by hand from the fitted weights: standardise, the selected final head, mean over views."""
    fs = model.features("test")
    h = (fs.features.float() - model.feature_mean) / model.feature_std  # [N, V, d]
    head = model.tested_heads()[0]
    layers = list(zip(model.classifier.weights, model.classifier.biases))
    for k, (w, b) in enumerate(layers):
        h = h @ w[head].T + b[head]
        h = torch.relu(h) if k < len(layers) - 1 else h
    return h.mean(1), fs.labels, fs.ignore


def average_precision(scores: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor | None = None) -> float:
    """Non-interpolated AP per class (mean precision at each positive, ties in input order), averaged over classes with one."""
    aps = []
    for c in range(scores.shape[1]):
        keep = torch.ones(len(scores), dtype=torch.bool) if ignore is None else ~ignore[:, c].bool()
        hits = targets[keep, c][torch.sort(scores[keep, c], descending=True, stable=True).indices].float()
        if hits.sum() > 0:
            ranks = torch.nonzero(hits).flatten() + 1
            aps.append((torch.arange(1, len(ranks) + 1) / ranks).mean().item())
    return sum(aps) / len(aps)


@torch.no_grad()
def fused_ranks(tested) -> torch.Tensor:  # noqa: ANN001 - VersanetCLI
    """Text -> video+audio ranks recomputed by hand through FAC's heads (audio borrows the video's S_va -> S_vat head)."""
    net = tested.model.model
    heads = net.heads
    texts, videos, audios = [], [], []
    for batch in tested.datamodule.test_dataloader():
        b, v = batch["video"].shape[:2]
        videos.append(heads["video@va->vat"](heads["video->va"](net.encoders["video"](batch["video"].flatten(0, 1)))).reshape(b, v, -1).mean(1))
        audios.append(heads["video@va->vat"](heads["audio->va"](net.encoders["audio"](batch["audio"].flatten(0, 1)))).reshape(b, v, -1).mean(1))
        texts.append(heads["text->vat"](net.encoders["text"](batch["text"][:, 0])))
    t, vid, aud = (F.normalize(torch.cat(x), dim=-1) for x in (texts, videos, audios))
    sim = (t @ vid.T + t @ aud.T) / 2
    return (sim > sim.diagonal()[:, None]).sum(1) + 1


@torch.no_grad()
def step_recall(tested) -> float:  # noqa: ANN001 - VersanetCLI
    """CrossTask recall by brute force: the best strictly increasing second per step from hand-computed scores."""
    import itertools

    net = tested.model.model
    heads = net.heads
    hits = annotated = 0
    for batch in tested.datamodule.test_dataloader():
        v = F.normalize(heads["video@va->vat"](heads["video->va"](net.encoders["video"](batch["video"][0]))), dim=-1)
        t = F.normalize(heads["text->vat"](net.encoders["text"](batch["text"][0])), dim=-1)
        scores, annotation = v @ t.T, batch["annotation"][0].bool()  # [S, K]
        seconds, steps = scores.shape
        best = max(itertools.combinations(range(seconds), steps), key=lambda ts: sum(scores[s, k].item() for k, s in enumerate(ts)))
        hits += sum(int(annotation[s, k]) for k, s in enumerate(best))
        annotated += int(annotation.any(0).sum())
    return hits / annotated


def test_paper_configs_run_on_the_released_layouts(pretrained: tuple[Path, Path], corpora: dict[str, Path], tmp_path: Path) -> None:
    """Every paper protocol on a miniature copy of its release's layout; each logged metric equals a hand recomputation
    from the fitted weights (views averaged, the selected head, ranks with ties for the query, the ordered assignment)."""
    toy, ckpt = pretrained
    tokenizer = toy / "tokenizer" / "spm_word_256.model"
    assert tokenizer.is_file()
    frozen = {"cache_dir": str(tmp_path / "cache"), "weight_decays": [1.0e-2], "train_views": 1}

    def run(key: str, corpus: str, data: dict | None = None, model: dict | None = None, tag: str = ""):  # noqa: ANN202
        configs = _paper_config(key, corpora[corpus], tokenizer, tmp_path / (key + tag), data, model)
        return fit_and_test(configs, ckpt, tmp_path / (key + tag) / "run", zero_shot=any(k in key for k in ("zeroshot", "crosstask")))

    ucf, cli = run("ucf101_linear", "ucf", model={**frozen, "weight_decays": [1.0e-3, 1.0e-1], "train_views": 2, "holdout_fraction": 0.2})
    scores, labels, _ = probe_scores(cli.model)
    assert scores.shape[1] == 3 and "test/top5" not in ucf  # 3 classes: no top-5
    assert ucf["test/top1"] == pytest.approx((scores.argmax(1) == labels).float().mean().item())

    tuned, cli = run("ucf101_finetune", "ucf", data={"eval_crops": 3}, model={"lr": 0.001})
    model = cli.model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in cli.datamodule.test_dataloader():  # [B, V = 2 clips x 3 crops, ...]: softmax averaged over the views
            assert batch["video"].shape[1] == 6
            b, v = batch["video"].shape[:2]
            probs = model.classifier(model.backbone(batch["video"].flatten(0, 1))).softmax(-1).reshape(b, v, -1).mean(1)
            correct += int((probs.argmax(-1) == batch["label"]).sum())
            total += b
    assert tuned["test/top1"] == pytest.approx(correct / total)

    esc, cli = run("esc50_linear", "esc", model=frozen)
    scores, labels, _ = probe_scores(cli.model)
    assert esc["test/top1"] == pytest.approx((scores.argmax(1) == labels).float().mean().item())

    audioset, cli = run("audioset_mlp", "audioset", model={**frozen, "hidden_dim": 8, "batch_size": 2})
    scores, labels, _ = probe_scores(cli.model)
    assert audioset["test/mAP"] == pytest.approx(average_precision(scores, labels))

    for method in ("naive", "inflate"):
        voc, cli = run("voc_linear_naive", "voc", model={**frozen, "method": method, "num_frames": 4}, tag=method)
        scores, labels, ignore = probe_scores(cli.model)
        assert voc["test/mAP"] == pytest.approx(average_precision(scores, labels, ignore))
        assert {"test/mAP_voc11", "test/mAP_voc_area"} <= set(voc)

    # three videos of different lengths and tones: their embeddings differ, so the ranks depend on the weights
    msrvtt, cli = run("msrvtt_zeroshot_va", "msrvtt")
    ranks = fused_ranks(cli).float()
    assert msrvtt["test/num_queries"] == 3
    assert msrvtt["test/text_to_video+audio/R@1"] == pytest.approx((ranks <= 1).float().mean().item())
    assert msrvtt["test/text_to_video+audio/MeanR"] == pytest.approx(ranks.mean().item())

    # a 6 s video, 3 ordered steps: 20 possible placements, the chosen one (and the recall) depends on the weights
    crosstask, cli = run("crosstask", "crosstask")
    assert crosstask["test/num_tasks"] == 1 and crosstask["test/recall"] == pytest.approx(step_recall(cli))
