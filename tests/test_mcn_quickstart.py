"""The MCN toy recipe, shortened: features of the small toy world from a fixed random network, then a few epochs of MCN.

It must clear bars well above chance on the 16 held-out clips: text -> video+audio R@5 (chance 5/16)
and the NMI of the clusters against the toy's colour labels, compared with the same clusters'
NMI after shuffling them across clips (what NMI gives by chance on 16 clips).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # feature extraction of 80 videos and 6 epochs: ~2-4 minutes on 2 busy cores
def test_mcn_quickstart_learns_retrieval_and_clusters_above_chance(toy_root: Path, tmp_path: Path) -> None:
    from torchmetrics.functional.clustering import normalized_mutual_info_score

    from versanet.callbacks import ClusterReport
    from versanet.cli import run_cli
    from versanet.features_extract import features_extract

    fac = yaml.safe_load((REPO / "configs/quickstart/fac.yaml").read_text())
    fac["data"]["init_args"].update(root=str(toy_root), toy=None, num_workers=0)
    fac_path = tmp_path / "fac.yaml"
    fac_path.write_text(yaml.safe_dump(fac))
    features = toy_root / "mcn_features"
    summary = features_extract(str(fac_path), str(features), progress=False)
    assert summary["failed"] == 0 and summary["written"] + summary["already_there"] == 80
    assert features_extract(str(fac_path), str(features), progress=False)["already_there"] == 80  # resumable: nothing redone

    config = yaml.safe_load((REPO / "configs/quickstart/mcn.yaml").read_text())
    config["trainer"].update(max_epochs=6, default_root_dir=str(tmp_path / "run"), logger=False, enable_checkpointing=False)
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "ModelCheckpoint" not in c["class_path"]]
    config["data"]["init_args"].update(root=str(toy_root), batch_size=16, num_workers=0)
    config["model"]["init_args"]["warmup_steps"] = 5
    path = tmp_path / "mcn.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = run_cli(["fit", "--config", str(path)])
    results = {(r["query"], r["gallery"]): r for r in cli.model.retrieval_results}
    text = results[("text", "video+audio")]
    assert text["n"] == 16
    assert text["R@5"] >= 0.5, text  # chance 5/16 = 31%

    report = next(c for c in cli.trainer.callbacks if isinstance(c, ClusterReport))
    clusters, labels = report.assignments(cli.model, cli.datamodule.val_dataloader())
    nmi = float(normalized_mutual_info_score(clusters, labels["colour"]))
    generator = torch.Generator().manual_seed(0)
    shuffled = [float(normalized_mutual_info_score(clusters[torch.randperm(len(clusters), generator=generator)], labels["colour"])) for _ in range(50)]
    assert nmi > sum(shuffled) / len(shuffled) + 0.1, (nmi, sum(shuffled) / len(shuffled))
