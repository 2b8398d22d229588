"""CrossTask step localisation (MCN's zero-shot protocol), ``versanet test`` only.

Per video (batch size 1): ``video [S, *input]`` (one clip per second), the task's ordered step
texts ``steps``, ``annotation`` bool ``[S, K]`` and ``task``. Each second's clip and each step's
text are embedded in the joint space the graph defines for video and text (``S_vat`` for FAC),
L2-normalised, and their dot products are the per-second scores ``[S, K]``. Steps are placed by
the order-constrained dynamic programme of :mod:`versanet.eval.crosstask`; recall is computed per
task and averaged (``test/recall``; ``test/recall/<task>`` per task) over the videos of every process
(:class:`~versanet.eval.crosstask.StepRecall` is a torchmetrics ``Metric``).

The steps' token ids are the batch's ``text`` ``[1, K, L]`` when the data module tokenises them (it
holds the text transform the encoder was pretrained with), else the step texts are tokenised here
with the data module's ``tokenize`` or ``transforms["text"].encode``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor

from versanet.downstream.common import Init, embed, load_pretrained, shared_space
from versanet.eval.crosstask import StepRecall, assignment_matrix, order_constrained_assignment


def _unwrap(value: Any) -> Any:
    """A batch-of-one field back to the sample's value (default_collate wraps strings in lists/tuples)."""
    if isinstance(value, Tensor):
        return value[0] if value.dim() > 0 and value.shape[0] == 1 else value
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (list, tuple, str)):
        return value[0]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) and len(v) == 1 for v in value):
        return [v[0] for v in value]  # default_collate of a list of strings: [(s1,), (s2,), ...]
    return value


class StepLocalisationModule(LightningModule):
    """Zero-shot step localisation: per-second text-video scores, order-constrained assignment, recall.

    Args:
        checkpoint: pretraining checkpoint (``versanet fit``).
        init: ``pretrained`` or ``random`` (a baseline).
        space: joint space of the video-text comparison (default: the graph's).
        strict_order: steps on strictly increasing seconds (falls back to non-decreasing when a
            video has fewer seconds than steps).
        clip_chunk: clips encoded at once (memory bound for long videos).
    """

    zero_shot = True

    def __init__(self, checkpoint: str, init: Init = "pretrained", init_seed: int = 0, space: str | None = None,
                 strict_order: bool = True, clip_chunk: int = 64, video_modality: str = "video", text_modality: str = "text") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = load_pretrained(checkpoint, init, init_seed)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.space = space or shared_space(self.model.graph, video_modality, text_modality)
        self.recall = StepRecall()

    def on_test_start(self) -> None:
        self.model.eval()
        self.recall.reset()

    def tokenize(self, steps: list[str]) -> Tensor:
        dm = self.trainer.datamodule
        if hasattr(dm, "tokenize"):
            return dm.tokenize(steps)
        transform = getattr(dm, "transforms", {}).get(self.hparams.text_modality)
        if transform is None or not hasattr(transform, "encode"):
            raise ValueError("step texts need the pretraining tokenizer: give the data module a text transform with encode() (TokenizeText)")
        return transform.encode(steps)

    @torch.no_grad()
    def scores(self, video: Tensor, tokens: Tensor) -> Tensor:
        """``video [S, *input]``, step tokens ``[K, L]`` -> cosine scores ``[S, K]``."""
        vm, tm = self.hparams.video_modality, self.hparams.text_modality
        feats = torch.cat([self.model.encoders[vm](part) for part in video.split(self.hparams.clip_chunk)])
        v = F.normalize(embed(self.model, vm, feats, self.space).float(), dim=-1)
        t = F.normalize(embed(self.model, tm, self.model.encoders[tm](tokens), self.space).float(), dim=-1)
        return v @ t.T

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        video = _unwrap(batch[self.hparams.video_modality])
        steps = list(_unwrap(batch["steps"]))
        annotation = _unwrap(batch["annotation"]).bool()
        task = _unwrap(batch["task"])
        task = str(task.item() if isinstance(task, Tensor) else task)
        given = batch.get(self.hparams.text_modality)
        tokens = _unwrap(given) if isinstance(given, Tensor) else self.tokenize(steps)
        scores = self.scores(video, tokens.to(self.device))
        chosen = order_constrained_assignment(scores, self.hparams.strict_order)
        index = batch.get("index")
        index = int(_unwrap(index)) if index is not None else None
        self.recall.update(task, assignment_matrix(chosen, scores.shape[0]), annotation, index)

    def on_test_epoch_end(self) -> None:
        """Recall over every process's videos (the metric gathers them), logged once."""
        results = {f"test/{k}": v for k, v in self.recall.compute().items()}
        self.log_dict(results, batch_size=1)  # the same on every process
