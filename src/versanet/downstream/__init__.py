"""Downstream benchmarks: one LightningModule per benchmark family (docs/method.md, "Downstream protocols"; docs/benchmarks.md).

- :class:`LinearProbeModule`: frozen, cached backbone features + a linear (or MLP) classifier with an L2 sweep;
- :class:`AudioClassificationModule`: the same on the audio backbone (ESC-50, AudioSet);
- :class:`ImageClassificationModule`: the same through a deflated / inflated video network (VOC, ImageNet);
- :class:`FineTuneModule`: the whole network fine-tuned, multi-view testing;
- :class:`ZeroShotRetrievalModule`: text <-> video (or video+audio) retrieval, test only;
- :class:`StepLocalisationModule`: CrossTask step localisation, test only.

Toy-world data modules for all of them: :mod:`versanet.downstream.toy`.
"""

from versanet.downstream.finetune import FineTuneModule
from versanet.downstream.frozen import AudioClassificationModule, LinearProbeModule
from versanet.downstream.images import ImageClassificationModule
from versanet.downstream.retrieval import ZeroShotRetrievalModule
from versanet.downstream.steps import StepLocalisationModule
from versanet.downstream.toy import ToyClassificationDataModule, ToyStepsDataModule

__all__ = [
    "LinearProbeModule", "AudioClassificationModule", "ImageClassificationModule", "FineTuneModule",
    "ZeroShotRetrievalModule", "StepLocalisationModule", "ToyClassificationDataModule", "ToyStepsDataModule",
]
