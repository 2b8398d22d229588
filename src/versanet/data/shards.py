"""WebDataset shards: write a corpus's original compressed files into tar shards, train from them anywhere.

Why WebDataset (``webdataset`` package) rather than ``litdata``: shards are plain POSIX tar files
(inspectable with ``tar tf``, writable by any tool), read sequentially from local disk, NFS, HTTP or
object storage through ``pipe:`` URLs (``pipe:aws s3 cp s3://bucket/train-000001.tar -``) with no
service or index to run; it is one small dependency; and it stores the bytes it is given, so the
mp4 goes in as is and is decoded by the same PyAV path as files (litdata's optimised format
serialises Python objects and wants its own cloud-side tooling).

Shard layout: one tar member pair per sample, ``<8-digit index>.<ext>`` (the original file's bytes:
mp4, avi, wav, jpg, ...) and ``<8-digit index>.json`` (the :class:`VideoItem`: key, label,
captions, segment, query caption, source path). Samples are written in a seeded random order.

Reading (:class:`ShardDataset`): each epoch the shard list is shuffled with ``(seed, epoch)``, split
disjointly by rank (as ``webdataset.split_by_node`` does, with the rank read in the main process) and by DataLoader worker
(``webdataset.split_by_worker``), samples are shuffled in a buffer seeded by ``(seed, epoch, rank,
worker)``, then decoded and transformed exactly like files (same sampler, transforms and failure
policy). Same seed and epoch -> same order. ``samples_per_epoch`` makes every rank yield the same
number of samples (cycling its shards), which DDP needs. Resumption: :class:`ShardLoader` records
the epoch and the batches consumed; on resume each worker skips the samples it had produced
(reading, not decoding, them) and the epoch continues with the same remaining samples (with
several workers their interleaving into batches may differ from the interrupted run).
"""

from __future__ import annotations

import json
import logging
import random
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from versanet.data.datasets.base import ClipDataset, VideoItem
from versanet.data.failures import joined
from versanet.seeding import derived_seed, seeded
from versanet.data.video_io import MediaDecodeError

log = logging.getLogger("versanet.data")

_META_KEYS = {"json", "__key__", "__url__", "__local_path__"}


def expand(urls: str | list[str]) -> list[str]:
    """A brace pattern (``train-{000000..000099}.tar``) or a list -> the shard URLs."""
    if isinstance(urls, str):
        return list(wds.shardlists.expand_urls(urls))
    return list(urls)


def write_shards(items: list[VideoItem], pattern: str, maxcount: int = 1000, maxsize: float = 2e9, seed: int = 0, shuffle: bool = True) -> dict[str, Any]:
    """Write ``items`` (their original files) into shards named by ``pattern`` (``out/train-%06d.tar``).

    Returns counts: ``shards`` (paths), ``samples``, ``bytes``, ``missing`` (items whose file was absent).
    """
    order = list(range(len(items)))
    if shuffle:
        random.Random(seed).shuffle(order)
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    written, total, missing, shards = 0, 0, [], []
    with wds.ShardWriter(pattern, maxcount=maxcount, maxsize=maxsize, verbose=0) as sink:
        for n, i in enumerate(order):
            item = items[i]
            path = Path(item.path)
            if not path.is_file():
                missing.append(item.path)
                continue
            data = path.read_bytes()
            meta = item.to_json()
            meta["index"] = i
            sink.write({"__key__": f"{n:08d}", (path.suffix.lstrip(".").lower() or "bin"): data, "json": json.dumps(meta).encode()})
            written += 1
            total += len(data)
            if sink.fname and (not shards or shards[-1] != sink.fname):
                shards.append(sink.fname)
    return {"shards": shards, "samples": written, "bytes": total, "missing": missing}


def read_shard_keys(path: str | Path) -> list[str]:
    """The sample keys (``json`` metadata ``key``) stored in one local shard, in order."""
    keys = []
    with tarfile.open(path) as tar:
        for member in tar:
            if member.name.endswith(".json"):
                keys.append(json.loads(tar.extractfile(member).read())["key"])  # type: ignore[union-attr]
    return keys


def _buffer_shuffle(samples: Iterator[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    buffer: list[dict[str, Any]] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = sample
    rng.shuffle(buffer)
    yield from buffer


class ShardDataset(IterableDataset):
    """Samples from WebDataset shards, decoded by ``dataset`` (a :class:`ClipDataset`: sampler, transforms, failure policy).

    Args:
        urls: shard URLs or a brace pattern (local paths, ``pipe:`` commands, http).
        dataset: decodes one stored item (its ``load_item`` gets the media bytes).
        seed: shuffling seed (shards per epoch, and the sample buffer).
        shuffle_buffer: samples held for in-worker shuffling (0: shard order only).
        samples_per_epoch: samples per epoch over all ranks and workers (None: one pass over the shards).
    """

    def __init__(self, urls: str | list[str], dataset: ClipDataset, seed: int = 0, shuffle_buffer: int = 256, samples_per_epoch: int | None = None) -> None:
        self.urls, self.dataset, self.seed = expand(urls), dataset, seed
        self.shuffle_buffer, self.samples_per_epoch = shuffle_buffer, samples_per_epoch
        self.epoch = 0
        self.rank, self.world_size = self.node_info()
        self.skip_batches = 0  # batches already consumed this epoch (set on resume)
        self.batch_size = 1

    @staticmethod
    def node_info() -> tuple[int, int]:
        """(rank, world size) as the main process sees them (RANK/WORLD_SIZE or the initialised process group)."""
        rank, world, _, _ = wds.utils.pytorch_worker_info()
        return rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard_order(self, cycle: int = 0) -> list[str]:
        """All shards in this epoch's order (before the split by rank and worker)."""
        urls = list(self.urls)
        random.Random(hash((self.seed, self.epoch, cycle)) & 0xFFFFFFFF).shuffle(urls)
        return urls

    def my_shards(self, cycle: int = 0) -> list[str]:
        """The shards this rank and worker read: disjoint across ranks and workers.

        Ranks take every ``world_size``-th shard (what ``webdataset.split_by_node`` does) using the rank
        recorded in the main process: DataLoader workers do not see the process group. Workers then
        split their rank's shards with ``webdataset.split_by_worker``.
        """
        srcs = [{"url": u} for u in self.shard_order(cycle)][self.rank :: self.world_size]
        return [s["url"] for s in wds.split_by_worker(srcs)]

    def _raw(self) -> Iterator[dict[str, Any]]:
        """Undecoded samples of this worker (cycling through its shards when ``samples_per_epoch`` asks for more)."""
        _, _, worker, workers = wds.utils.pytorch_worker_info()
        rank, world = self.rank, self.world_size
        quota = None if self.samples_per_epoch is None else self.samples_per_epoch // (world * workers)
        produced, cycle = 0, 0
        while True:
            mine = self.my_shards(cycle)
            if not mine:
                log.warning("shards: rank %d worker %d got no shard (%d shards for %d readers)", rank, worker, len(self.urls), world * workers)
                return
            rng = random.Random(hash((self.seed, self.epoch, cycle, rank, worker)) & 0xFFFFFFFF)
            stream = wds.tariterators.tarfile_samples([{"url": u} for u in mine], handler=wds.warn_and_continue)
            if self.shuffle_buffer > 1:
                stream = _buffer_shuffle(iter(stream), self.shuffle_buffer, rng)
            for sample in stream:
                if quota is not None and produced >= quota:
                    return
                produced += 1
                yield sample
            if quota is None:
                return
            cycle += 1

    def skip(self) -> int:
        """Samples this worker produced before the resumed point: the DataLoader takes batches from
        workers in turn, so worker w had made ``ceil((n - w) / W)`` of the ``n`` consumed batches."""
        _, _, worker, workers = wds.utils.pytorch_worker_info()
        return max(0, -(-(self.skip_batches - worker) // workers)) * self.batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        skip = self.skip()
        ds = self.dataset
        for n, raw in enumerate(self._raw()):
            if n < skip:
                continue
            meta = json.loads(raw["json"])
            media = next((raw[k] for k in raw if k not in _META_KEYS), None)
            item = VideoItem.from_json(meta)
            name = f"{item.path or item.key} (in {raw.get('__url__')})"
            if name in ds.bad:  # unreadable before: not decoded again
                continue
            ds.tried += 1
            with seeded(derived_seed(self.seed, self.epoch, int(meta.get("index", n)))):  # as for files: (seed, epoch, index)
                try:
                    if media is None:
                        raise MediaDecodeError(name, "no media file in the shard sample")
                    sample = ds.load_item(item, media, int(meta.get("index", n)))
                except MediaDecodeError as err:
                    ds.record_failure(MediaDecodeError(name, err.reason))
                    continue
            found = ds.take_new_bad()
            sample["bad_count"], sample["bad_files"] = len(found), joined(found)
            sample.setdefault("short_files", "")
            yield sample


class ShardLoader(DataLoader):
    """A DataLoader over a :class:`ShardDataset` that sets the epoch on every pass and can resume mid-epoch.

    ``epoch_fn`` gives the epoch at the start of each pass (the trainer's ``current_epoch``). Lightning
    saves ``state_dict()`` in checkpoints and calls ``load_state_dict`` on resume (a stateful loader).
    Workers are not persistent, so each pass starts them with the new epoch.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, num_workers: int, epoch_fn: Callable[[], int] | None = None,
                 consumed_fn: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, persistent_workers=False, **kwargs)
        self._epoch_fn, self._consumed_fn = epoch_fn, consumed_fn
        self._epoch, self._yielded, self._resume = 0, 0, None

    def __iter__(self):  # noqa: ANN204
        self._epoch = self._epoch_fn() if self._epoch_fn is not None else self._epoch
        ds: ShardDataset = self.dataset  # type: ignore[assignment]
        ds.set_epoch(self._epoch)
        ds.rank, ds.world_size = ds.node_info()  # the process group exists by now (Lightning DDP)
        skip_batches = 0
        if self._resume is not None and self._resume["epoch"] == self._epoch:
            skip_batches = self._resume["batches"]
        self._resume = None
        ds.skip_batches, ds.batch_size = skip_batches, self.batch_size or 1
        self._yielded = skip_batches
        for batch in super().__iter__():
            self._yielded += 1
            yield batch
        if self._epoch_fn is None:
            self._epoch += 1

    def state_dict(self) -> dict[str, int]:
        consumed = self._consumed_fn() if self._consumed_fn is not None else self._yielded
        return {"epoch": self._epoch, "batches": int(consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)
        self._epoch = state["epoch"]


def shard_loader(datamodule: Any, urls: str) -> ShardLoader:
    """The training loader of a data module reading ``urls`` instead of files (``shards:`` in its config)."""
    base = datamodule.train_set
    dataset = ShardDataset(urls, base, seed=datamodule.seed, samples_per_epoch=datamodule.samples_per_epoch)

    def epoch() -> int:
        trainer = getattr(datamodule, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else dataset.epoch

    def consumed() -> int:
        trainer = getattr(datamodule, "trainer", None)
        if trainer is None:
            return loader._yielded
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)  # training steps run this epoch

    loader = ShardLoader(dataset, datamodule.batch_size, datamodule.num_workers, epoch, consumed, pin_memory=torch.cuda.is_available())
    return loader


def data_shard(
    target: str, output: str, split: str = "train", maxcount: int = 1000, maxsize: float = 2e9, seed: int = 0, prefix: str | None = None,
) -> None:
    """Write a corpus split into WebDataset shards (original compressed files + JSON metadata).

    Args:
        target: a config YAML (its ``data`` section) or a corpus folder (captioned-video layout).
        output: folder for the shards.
        split: train, val or test.
        maxcount: samples per shard at most.
        maxsize: bytes per shard at most.
        seed: order in which samples are written.
        prefix: shard name prefix (default: the split), giving ``<prefix>-000000.tar``.
    """
    from versanet.data.check import load_datamodule

    dm = load_datamodule(target)
    dm._load() if hasattr(dm, "_load") else None
    items = dm.list_items(split)
    pattern = str(Path(output) / f"{prefix or split}-%06d.tar")
    result = write_shards(items, pattern, maxcount=maxcount, maxsize=maxsize, seed=seed)
    n = len(result["shards"])
    first, last = (Path(result["shards"][0]).name, Path(result["shards"][-1]).name) if n else ("", "")
    print(f"wrote {result['samples']} samples ({result['bytes'] / 1e6:.1f} MB of original files) into {n} shards under {output}")
    if n:
        print(f"train from them with: --data.init_args.shards='{Path(output) / f'{prefix or split}-{{{first[-10:-4]}..{last[-10:-4]}}}.tar'}'")
    if result["missing"]:
        print(f"{len(result['missing'])} listed files were missing and skipped (first: {result['missing'][0]})")
