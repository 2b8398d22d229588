"""Training-step throughput of a pretraining config, and the share of step time in the loss and its gather.

    python benchmarks/train_throughput.py [--config configs/quickstart/fac.yaml] [--steps 20]

Builds the model and data module from the config exactly as `versanet fit` does, takes real
batches from its data loader (decoded toy/real clips), then times on this machine:
- data: clips/s that the loader delivers (its workers decoding + augmenting);
- step: forward + loss + backward + optimizer step on a batch already in memory (clips/s);
- loss: the objective alone (normalise, gather across ranks, similarity, log-sum-exp), forward + backward,
  and its share of the step.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentParser

from versanet import registry
from versanet.models import PretrainModule


def build(config_path: Path, root: str | None) -> tuple[PretrainModule, object]:
    registry.load_builtin()
    registry.load_plugins()
    from lightning.pytorch import LightningDataModule, LightningModule

    config = yaml.safe_load(config_path.read_text())
    if root is not None:
        config["data"]["init_args"]["root"] = root
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningModule, "model")
    parser.add_subclass_arguments(LightningDataModule, "data")
    cfg = parser.parse_object({"model": config["model"], "data": config["data"]})
    init = parser.instantiate(cfg)
    return init.model, init.data


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/quickstart/fac.yaml"))
    parser.add_argument("--root", default=None, help="override data.init_args.root")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, data = build(args.config, args.root)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    batches, start = [], time.perf_counter()
    for batch in loader:
        batches.append(batch)
        if len(batches) == args.steps:
            break
    data_seconds = time.perf_counter() - start
    batch_size = batches[0][model.graph.modalities[0]].shape[0]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    it = iter(range(10**9))

    def step() -> None:
        b = batches[next(it) % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        model.objective(b, model(b))["loss"].backward()
        optimizer.step()

    with torch.no_grad():
        emb = {k: v.detach() for k, v in model(batches[0]).items()}
    emb = {k: v.requires_grad_() for k, v in emb.items()}

    def loss_only() -> None:
        model.objective(batches[0], emb)["loss"].backward()

    step_s = timed(step, args.steps)
    loss_s = timed(loss_only, args.steps)
    rows = [
        ("data loader (decode + augment, %d workers)" % data.num_workers, batch_size * len(batches) / data_seconds, data_seconds / len(batches), ""),
        ("training step (fwd + loss + bwd + Adam)", batch_size / step_s, step_s, "100%"),
        ("  of which loss + gather (fwd + bwd)", batch_size / loss_s, loss_s, f"{loss_s / step_s:.1%}"),
    ]
    print(f"config: {args.config}  batch: {batch_size}  threads: {torch.get_num_threads()}  device: cpu  world size: 1")
    print("| stage | clips/s | s/batch | share of step |")
    print("| --- | ---: | ---: | ---: |")
    for name, rate, seconds, share in rows:
        print(f"| {name} | {rate:.1f} | {seconds:.3f} | {share} |")
    print("\nUnder DDP the loss also gathers embeddings from every rank; with W ranks its similarity matrices grow to [B, W*B*K].")


if __name__ == "__main__":
    main()
