"""Downstream training details against hand-worked answers: the fine-tuning schedule, a frozen backbone's
BatchNorm statistics, the one linear probe (its optimum and its penalty), and the metrics' state merge.

Runs on a 24-clip random-tensor data module and a small checkpoint written with ``save_pretrained``
(no video decoding): about 10 s.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from distributed_helpers import run_gloo
from versanet.checkpoint import save_pretrained
from versanet.downstream import FineTuneModule
from versanet.eval.classification import ClassificationScores
from versanet.eval.crosstask import StepRecall
from versanet.eval.probe import BankedClassifier, fit_linear_probe

SMALL_CONFIG = {
    "encoders": {
        "video": {"class_path": "SmallVideoCNN", "init_args": {"widths": [4, 8], "out_dim": 16}},
        "audio": {"class_path": "SmallAudioCNN", "init_args": {"widths": [4, 8], "out_dim": 16}},
        "text": {"class_path": "EmbeddingTextEncoder", "init_args": {"vocab_size": 64, "embed_dim": 8, "out_dim": 16}},
    },
    "graph": {"class_path": "FAC", "init_args": {"va_dim": 16, "vat_dim": 8}},
}


def write_small_checkpoint(path: Path) -> Path:
    """A pretraining checkpoint of small encoders whose BatchNorm layers hold non-trivial statistics."""
    from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN
    from versanet.graph import FAC
    from versanet.models import PretrainModule

    torch.manual_seed(0)
    model = PretrainModule({"video": SmallVideoCNN(widths=(4, 8), out_dim=16), "audio": SmallAudioCNN(widths=(4, 8), out_dim=16),
                            "text": EmbeddingTextEncoder(vocab_size=64, embed_dim=8, out_dim=16)}, FAC(va_dim=16, vat_dim=8))
    with torch.no_grad():
        model.encoders["video"].train()(torch.rand(8, 3, 4, 16, 16) * 3)  # running statistics away from (0, 1)
    return save_pretrained(path, SMALL_CONFIG, model.state_dict())


class RandomClips(L.LightningDataModule):
    """``{"video": [3, 4, 16, 16], "label", "index"}``; label = which quarter of the frame is bright (learnable)."""

    num_classes, class_names, multilabel = 4, ["a", "b", "c", "d"], False

    def __init__(self, n: int = 24, batch_size: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.labels = torch.arange(n) % 4
        self.video = torch.rand(n, 3, 4, 16, 16, generator=g) * 0.2
        for i, c in enumerate(self.labels.tolist()):
            self.video[i, :, :, (c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] += 1.0
        self.batch_size = batch_size

    def _loader(self, shuffle: bool = False) -> DataLoader:
        items = [{"video": v, "label": y, "index": i} for i, (v, y) in enumerate(zip(self.video, self.labels))]
        return DataLoader(items, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.ckpt")


def trainer(tmp_path: Path, steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, max_epochs=100, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, accelerator="cpu", default_root_dir=tmp_path)


@pytest.mark.parametrize("mult", [0.0, 0.1])
def test_backbone_lr_mult_zero_keeps_every_pretrained_tensor(mult: float, small_ckpt: Path, tmp_path: Path, one_thread) -> None:
    module = FineTuneModule(str(small_ckpt), lr=0.1, backbone_lr_mult=mult, warmup_steps=0, dropout=0.0)
    before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    trainer(tmp_path, 4).fit(module, datamodule=RandomClips())
    after = module.backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if mult == 0:
        # parameters AND BatchNorm running statistics (and their batch counters) as pretrained
        assert changed == set() and not module.backbone.training
    else:  # the same run with a trainable backbone does change both: the check above can fail
        assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


def test_finetune_schedule_is_linear_warmup_then_cosine(small_ckpt: Path, tmp_path: Path, one_thread) -> None:
    module = FineTuneModule(str(small_ckpt), lr=0.2, backbone_lr_mult=0.5, warmup_steps=2, final_lr_ratio=0.1, optimizer="sgd", dropout=0.0)
    lrs: list[tuple[float, float]] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            groups = trainer.optimizers[0].param_groups
            lrs.append((groups[0]["lr"], groups[-1]["lr"]))

    run = trainer(tmp_path, 6)
    run.callbacks.append(Record())
    run.fit(module, datamodule=RandomClips())
    # 6 steps, 2 of warm-up from lr/2 (torch's LinearLR from 1/w), then cosine from the peak to 0.1 * peak at step 6
    expected = [0.5, 0.75] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [round(a / 0.2, 6) for a, _ in lrs] == [round(e, 6) for e in expected]
    assert all(b == pytest.approx(a * 0.5) for a, b in lrs)  # the backbone keeps its multiplier


def test_finetune_learns_and_reports_accuracy_on_every_sample(small_ckpt: Path, tmp_path: Path, one_thread) -> None:
    data = RandomClips()
    module = FineTuneModule(str(small_ckpt), lr=0.05, warmup_steps=0, dropout=0.0, label_smoothing=0.0)
    run = trainer(tmp_path, 40)
    run.fit(module, datamodule=data)
    result = run.test(module, datamodule=data, verbose=False)[0]
    with torch.no_grad():
        expected = (module.eval()(data.video).mean(1).argmax(-1) == data.labels).float().mean().item()
    assert result["test/top1"] == pytest.approx(expected) and result["test/top1"] >= 0.75  # chance is 0.25


def test_penalty_and_members_of_the_classifier_bank() -> None:
    bank = BankedClassifier(3, 5, 4, hidden_dim=6)
    with torch.no_grad():
        for layer in bank.weights:
            for m in range(3):
                layer[m].fill_(m + 1.0)
        for b in bank.biases:
            b.fill_(100.0)  # biases are not penalised
    # member m: (m + 1)^2 * (6*5 + 4*6) squared entries
    assert bank.penalty().tolist() == [54.0, 4 * 54.0, 9 * 54.0]
    x = torch.randn(7, 5)
    for m in range(3):  # member m alone: every hidden unit is relu((m+1) sum(x) + 100), every logit 6 (m+1) h + 100
        h = torch.relu(x.sum(1, keepdim=True) * (m + 1) + 100)
        assert torch.allclose(bank(x)[:, m], (6 * (m + 1) * h + 100).expand(7, 4))


def test_linear_probe_reaches_the_optimum_of_its_stated_objective() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g)
    y = (x @ torch.randn(3, 3, generator=g)).argmax(1)  # linearly separable classes
    wd = 0.01
    probe = fit_linear_probe(x, y, weight_decay=wd)
    standardise, bank = probe[0], probe[1]
    w = bank.weights[0][0].detach().clone().requires_grad_(True)
    b = bank.biases[0][0].detach().clone().requires_grad_(True)
    z = (x - x.mean(0)) / x.std(0)
    assert torch.allclose(standardise(x), z)
    loss = F.cross_entropy(z @ w.T + b, y) + wd * w.pow(2).sum()  # mean CE + wd ||W||^2, bias free
    loss.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4
    assert (probe(x).argmax(1) == y).float().mean() > 0.9


# ---------------------------------------------------------------------------- metrics across processes
def _metric_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(9, 7, generator=g)
    labels = torch.randint(0, 7, (9,), generator=g)
    return scores, labels, torch.arange(9)


def _shards() -> list[list[int]]:
    """What a DistributedSampler gives 2 ranks for 9 samples: the last rank's batch padded with sample 0."""
    return [[0, 2, 4, 6, 8], [1, 3, 5, 7, 0]]


def _steps(rank: int) -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    videos = []
    for i, hits in enumerate([3, 1, 2, 0, 1]):
        pred = torch.zeros(4, 3, dtype=torch.bool)
        pred[torch.arange(3), torch.arange(3)] = True  # step k at second k
        ann = torch.zeros(4, 3, dtype=torch.bool)
        for k in range(3):
            ann[k if k < hits else 3, k] = True  # the first `hits` steps annotated where predicted, the others at second 3
        videos.append((["task a", "task b"][i % 2], pred, ann, i))
    order = [[0, 2, 4], [1, 3, 0]]  # video 0 on both ranks
    return [videos[i] for i in order[rank]]


def _metric_worker(rank: int) -> tuple:
    scores, labels, index = _metric_data()
    metric = ClassificationScores(7)
    rows = torch.tensor(_shards()[rank])
    for part in rows.split(2):
        metric.update(scores[part], labels[part], index[part])
    recall = StepRecall()
    for task, pred, ann, i in _steps(rank):
        recall.update(task, pred, ann, i)
    return rank, metric.compute(), recall.compute()


def test_metrics_merge_the_states_of_every_process_and_count_each_sample_once() -> None:
    scores, labels, index = _metric_data()
    single = ClassificationScores(7)
    single.update(scores, labels, index)
    reference = single.compute()
    top1 = (scores.argmax(1) == labels).float().mean().item()
    top5 = (scores.topk(5, 1).indices == labels[:, None]).any(1).float().mean().item()
    assert reference == {"test/top1": pytest.approx(top1), "test/top5": pytest.approx(top5)}
    recall = StepRecall()
    for rank in range(2):
        for task, pred, ann, i in _steps(rank):
            recall.update(task, pred, ann, i)
    # task a: videos 0, 2, 4 -> (3 + 2 + 1) / 9; task b: videos 1, 3 -> (1 + 0) / 6; video 0 (on both ranks) counted once
    assert recall.compute() == {"recall": pytest.approx((6 / 9 + 1 / 6) / 2), "num_tasks": 2.0,
                                "recall/task a": pytest.approx(6 / 9), "recall/task b": pytest.approx(1 / 6)}

    results = run_gloo(_metric_worker)
    for _, classification, steps in results:
        assert classification == pytest.approx(reference)  # both processes see the whole set, sample 0 once
        assert steps == pytest.approx(recall.compute())

