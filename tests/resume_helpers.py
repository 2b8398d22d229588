"""A callback for the kill-and-resume test: it stops the run where a crash would, without any hook in versanet itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class PauseAt(Callback):
    """When ``step`` optimizer steps are done (their checkpoint written), write ``marker`` and wait to be killed.

    At the start of the next batch the loader has already read ahead: a kill there is a crash mid-epoch.
    """

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(600)
