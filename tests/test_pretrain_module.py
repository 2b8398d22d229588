"""PretrainModule details: the LR schedule, de-duplicated evaluation, retrieval ranks, the toy-data command."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from versanet.cli import main
from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN
from versanet.eval.retrieval import first_occurrence, match_ranks, retrieval_metrics
from versanet.graph import FAC
from versanet.models import PretrainModule


def small_module(**kw) -> PretrainModule:
    encoders = {"video": SmallVideoCNN(widths=(4, 8), out_dim=8), "audio": SmallAudioCNN(widths=(4,), out_dim=8),
                "text": EmbeddingTextEncoder(vocab_size=20, embed_dim=4, out_dim=8)}
    return PretrainModule(encoders, FAC(va_dim=8, vat_dim=4), **kw)


def test_linear_warmup_then_cosine_to_the_final_ratio() -> None:
    module = small_module(lr=1e-2, warmup_steps=10, final_lr_ratio=0.1)
    module._trainer = SimpleNamespace(estimated_stepping_batches=110)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step" and isinstance(optimizer, torch.optim.Adam)
    lrs = []
    for _ in range(110):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-3)  # 1/10 of the peak on the first step
    assert lrs[10] == pytest.approx(1e-2)  # the peak is reached after warmup_steps steps
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert lrs[60] == pytest.approx(1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + torch.cos(torch.tensor(torch.pi * 50 / 100)).item()), rel=1e-6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # lr * final_lr_ratio after the last step


def test_adamw_and_weight_decay_are_used() -> None:
    module = small_module(optimizer="adamw", weight_decay=0.05, warmup_steps=0)
    module._trainer = SimpleNamespace(estimated_stepping_batches=5)
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.05


def test_first_occurrence_drops_ddp_padding_duplicates() -> None:
    index = torch.tensor([3, 0, 1, 3, 2, 0])
    assert first_occurrence(index).tolist() == [True, True, True, False, True, False]


def test_retrieval_ranks_by_hand() -> None:
    sim = torch.tensor([
        [0.9, 0.1, 0.0],   # match ranked 1st
        [0.8, 0.5, 0.7],   # two scores above the match: rank 3
        [0.2, 0.6, 0.4],   # one above: rank 2
    ])
    assert match_ranks(sim).tolist() == [1, 3, 2]
    metrics = retrieval_metrics(sim, ks=(1, 2))
    assert metrics["R@1"] == pytest.approx(1 / 3) and metrics["R@2"] == pytest.approx(2 / 3)
    assert metrics["MedR"] == 2.0 and metrics["MeanR"] == pytest.approx(2.0)
    # even count: numpy's median, the mean of the two middle ranks
    assert retrieval_metrics(torch.tensor([[1.0, 0.0], [1.0, 0.5]]))["MedR"] == 1.5
    with pytest.raises(ValueError, match="square"):
        match_ranks(torch.zeros(2, 3))


def test_encode_rejects_inputs_of_the_wrong_rank() -> None:
    module = small_module()
    with pytest.raises(ValueError, match=r"text input has shape \(2, 3, 4, 5\)"):
        module.encode("text", torch.zeros(2, 3, 4, 5, dtype=torch.long))


def test_toy_data_command_writes_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["toy-data", str(tmp_path / "toy"), "--num_train", "3", "--num_val", "1", "--seconds", "2", "--workers", "1"])
    assert "toy world written to" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "toy" / "videos").iterdir()) == [f"toy_00000{i}.mp4" for i in range(4)]
    assert (tmp_path / "toy" / "splits" / "val.txt").read_text().split() == ["toy_000003"]
