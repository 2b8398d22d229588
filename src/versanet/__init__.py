"""versanet: self-supervised multimodal (video, audio, text) representation learning (MMV, VATT, MCN)."""

from versanet._torch_family import check_torch_family

check_torch_family()  # before anything imports torchaudio: a mismatched torch family gets one readable line

# ruff: noqa: E402

from versanet.encoders import Encoder
from versanet.graph import FAC, Disjoint, Edge, LossTerm, ModalityGraph, Shared
from versanet.heads import Head
from versanet.models import PretrainModule
from versanet.registry import get, load_plugins, names, register

__version__ = "0.1.0"

__all__ = [
    "Encoder", "Head", "ModalityGraph", "Edge", "LossTerm", "FAC", "Shared", "Disjoint",
    "PretrainModule", "register", "get", "names", "load_plugins", "__version__",
]
