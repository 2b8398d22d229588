"""make_loader: the training order and every sample's randomness are functions of (seed, epoch, index); the position resumes exactly."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from versanet.data.loaders import EpochSampler, make_loader


class RandomSamples(Dataset):
    """Sample i = (i, a draw from torch's RNG): what an augmentation sees."""

    def __init__(self, n: int = 24) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "draw": torch.rand(())}


def epoch(loader, number: int) -> list[dict]:  # noqa: ANN001
    loader.sampler.set_epoch(number)
    return list(loader)


def same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(torch.equal(x["index"], y["index"]) and torch.equal(x["draw"], y["draw"]) for x, y in zip(a, b))


def test_batches_depend_on_seed_epoch_and_index_only_not_on_workers() -> None:
    data = RandomSamples()
    plain = make_loader(data, 4, True, num_workers=0, seed=3)
    workers = make_loader(data, 4, True, num_workers=2, seed=3)
    assert same(epoch(plain, 0), epoch(workers, 0)) and same(epoch(plain, 1), epoch(workers, 1))
    assert not same(epoch(plain, 0), epoch(plain, 1))  # a new order and new draws each epoch
    assert not same(epoch(plain, 0), epoch(make_loader(data, 4, True, seed=4), 0))
    state = torch.get_rng_state()
    epoch(plain, 2)
    assert torch.equal(state, torch.get_rng_state())  # reading samples in this process leaves its random stream alone


def test_a_loader_resumes_at_the_batch_the_training_loop_had_consumed() -> None:
    data = RandomSamples()
    reference = [epoch(make_loader(data, 4, True, seed=7), e) for e in (0, 1)]
    for workers in (0, 2):
        resumed = make_loader(data, 4, True, num_workers=workers, seed=0)  # the seed comes back from the checkpoint too
        resumed.load_state_dict({"epoch": 0, "batches": 2, "seed": 7})
        assert same(list(resumed), reference[0][2:])
        assert same(epoch(resumed, 1), reference[1])  # the next epoch is whole
    ended = make_loader(data, 4, True, seed=7)
    ended.load_state_dict({"epoch": 0, "batches": len(ended), "seed": 7})  # saved at the end of epoch 0
    assert same(list(ended), reference[1])
    progress = make_loader(data, 4, True, seed=7, progress=lambda: (1, 3))
    assert progress.state_dict() == {"epoch": 1, "batches": 3, "seed": 7}


def test_ranks_read_disjoint_shares_and_weights_set_the_proportions() -> None:
    data = RandomSamples(24)
    shares = [[i for _, i in EpochSampler(data, seed=1, num_replicas=2, rank=r)] for r in (0, 1)]
    assert not set(shares[0]) & set(shares[1]) and sorted(shares[0] + shares[1]) == list(range(24))
    weights = torch.tensor([1.0] * 12 + [3.0] * 12)
    drawn = [i for _, i in EpochSampler(data, seed=1, weights=weights, num_samples=4000)]
    assert len(drawn) == 4000 and 0.72 < sum(i >= 12 for i in drawn) / 4000 < 0.78
    assert drawn == [i for _, i in EpochSampler(data, seed=1, weights=weights, num_samples=4000)]
