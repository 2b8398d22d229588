"""MCN's zero-shot retrieval configs (YouCook2, MSR-VTT) run under `versanet test` on features in the extractor's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORDS = "cut the onion slowly then fry it in oil until golden add salt and stir".split()


def write_benchmark_features(root: Path, captions: str, split: str, videos: int = 3, seconds: int = 12, dim: int = 8) -> int:
    """Flat ``features/<id>_{2d,3d,spec}.npz``, a ``video_id,start,end,text`` caption file and a split; returns the caption count."""
    rng = np.random.default_rng(5)
    (root / "features").mkdir(parents=True)
    (root / "splits").mkdir()
    rows, ids = ["video_id,start,end,text"], []
    for v in range(videos):
        vid = f"clip{v}"
        ids.append(vid)
        np.savez(root / "features" / f"{vid}_2d.npz", features=rng.random((seconds, dim), dtype=np.float32))
        np.savez(root / "features" / f"{vid}_3d.npz", features=rng.random((int(seconds * 1.5), dim), dtype=np.float32))
        np.savez(root / "features" / f"{vid}_spec.npz", arr_0=-80 * rng.random((40, seconds * 100), dtype=np.float32))
        for start in (0.0, 5.0):
            rows.append(f"{vid},{start},{start + 4.0},{' '.join(rng.choice(WORDS, 4))}")
    (root / captions).write_text("\n".join(rows) + "\n")
    (root / split).write_text("\n".join(ids) + "\n")
    return len(rows) - 1


@pytest.fixture(scope="module")
def mcn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/mcn/howto100m.yaml at tiny width, 2 steps; its folder holds the word2vec subset the zero-shot configs read."""
    from test_mcn_data import paper_config_tiny

    from versanet.cli import run_cli

    root = tmp_path_factory.mktemp("mcn")
    fitted = run_cli(["fit", "--config", str(paper_config_tiny(root))])
    ckpt = root / "mcn.ckpt"
    fitted.trainer.save_checkpoint(ckpt)
    return ckpt


@pytest.mark.parametrize("name", ["youcook2_zeroshot", "msrvtt_zeroshot"])
def test_mcn_zeroshot_config_ranks_every_caption_against_video_and_audio(name: str, mcn_checkpoint: Path, tmp_path: Path) -> None:
    from versanet.cli import run_cli

    ckpt = mcn_checkpoint
    config = yaml.safe_load((REPO / f"configs/mcn/{name}.yaml").read_text())
    data = config["data"]["init_args"]
    assert config["model"]["init_args"]["fusion"] == "sum_dot" and config["model"]["init_args"]["gallery"] == ["video", "audio"]
    n = write_benchmark_features(tmp_path / "bench", data["captions"], data["val_split"])
    config["trainer"].update(accelerator="cpu", default_root_dir=str(tmp_path / "test"), logger=False, enable_progress_bar=False)
    config["model"]["init_args"]["checkpoint"] = str(ckpt)
    data.update(root=str(tmp_path / "bench"), num_workers=0, batch_size=4)
    data["transforms"]["text"]["init_args"]["cache_path"] = str(ckpt.parent / "howto" / "word2vec" / "w2v.subset.pt")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    tested = run_cli(["test", "--config", str(path)])
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    r1 = [v for k, v in metrics.items() if k.endswith("R@1") and "text" in k.split("/")[1].split("_to_")[0]]
    medr = [v for k, v in metrics.items() if k.endswith("MedR") and "text" in k.split("/")[1].split("_to_")[0]]
    assert r1 and 0.0 <= r1[0] <= 1.0 and medr and 1.0 <= medr[0] <= n, metrics  # n captions, each one query (1-indexed ranks)
