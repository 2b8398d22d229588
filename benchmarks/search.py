"""Video search: embedding throughput on the CPU, and query latency and recall at 10k / 100k / 1M moments.

    python benchmarks/search.py --ckpt runs/quickstart-fac/lightning_logs/version_0/checkpoints/last.ckpt
    python benchmarks/search.py --sizes 10000 100000 --dim 64 --skip_embed      # the index part only

1. Embedding (needs ``--ckpt``): ``versanet embed``'s own path (``embed_folder``: PyAV decoding in
   ``--workers`` processes, the checkpoint's eval transforms, the model on the CPU, SQLite writes,
   the FAISS sync) over ``--videos`` freshly written toy-world videos (6 s, 64 px, 3 moments each at
   ``--every 2``), timed end to end: clips/s. Also the model alone on the same batches.
2. Query latency: for each size, a synthetic index folder written through the same
   :class:`~versanet.app.store.ClipStore` (100 moments per file). The vectors are unit vectors
   near a random 24-dimensional subspace (learned embeddings have a low intrinsic dimension; see
   :class:`Embeddings`), queries are drawn from the same distribution. Per query, one at a time as a user searches: the FAISS search plus the SQLite lookup
   of the results' files and times (what ``Searcher.search_vector`` does), exact (flat) and IVF at
   several ``nprobe``; recall@10 of IVF against exact. The text encoder's time (``--ckpt``) is
   measured once and added in the "total" column. Medians over ``--queries`` queries.

Prints markdown tables and the load average (timings on a shared machine move with it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from versanet.app.clips import FileStat
from versanet.app.store import ClipStore
from versanet.app.threads import one_thread
from versanet.app.vectors import VectorIndex, default_nprobe, ivf_cells


class Embeddings:
    """Synthetic embeddings with the structure learned ones have: unit vectors near a ``rank``-dimensional subspace.

    ``normalise(A z + e)``, ``z ~ N(0, I_rank)``, ``A`` a fixed random ``[dim, rank]`` map, ``e`` isotropic noise
    of a fifth of the signal's norm. No clean clusters (those make IVF look perfect): neighbourhoods are continuous,
    so a query's nearest moments straddle IVF cells.
    """

    def __init__(self, dim: int, rank: int = 24, seed: int = 0) -> None:
        self.dim, self.rank = dim, rank
        self.basis = np.random.default_rng(seed).standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        signal = rng.standard_normal((n, self.rank)).astype(np.float32) @ self.basis
        noise = rng.standard_normal((n, self.dim)).astype(np.float32) * (0.2 / np.sqrt(self.dim))
        return _unit(signal + noise * np.linalg.norm(signal, axis=1, keepdims=True))


def synthetic_index(folder: Path, n: int, dim: int, seed: int = 0, per_file: int = 100) -> tuple[ClipStore, Embeddings]:
    """An index folder of ``n`` synthetic moments (:class:`Embeddings`); returns it and the generator (for queries)."""
    rng = np.random.default_rng(seed)
    source = Embeddings(dim)
    if (folder / "index.sqlite").is_file():
        store = ClipStore(folder)
        if store.counts()["clips"] == n:
            return store, source
        store.close()
        shutil.rmtree(folder)
    store = ClipStore(folder, create=True)
    store.set_meta({"dim": dim, "space": "synthetic", "modalities": ["video"], "video_dir": str(folder), "checkpoint": None})
    moments = [(2.0 * i, 2.0 * i + 2) for i in range(per_file)]
    for f in range(0, n, per_file):
        count = min(per_file, n - f)
        store.put_file(f"synthetic/{f // per_file:06d}.mp4", FileStat(0, 0), 2.0 * count, moments[:count], {"video": source.sample(rng, count)})
    return store, source


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn, repeats: int) -> tuple[float, list]:  # noqa: ANN001 - any callable
    """Median seconds of ``fn(i)`` over ``repeats`` calls, and the results."""
    times, results = [], []
    for i in range(repeats):
        started = time.perf_counter()
        results.append(fn(i))
        times.append(time.perf_counter() - started)
    return statistics.median(times), results


def query_benchmark(sizes: list[int], dim: int, queries: int, nprobes: list[int], workdir: Path, text_ms: float | None) -> list[str]:
    rows = ["| moments | index | nprobe | build s | search ms | + lookup ms | total ms (with text) | recall@10 |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in sizes:
        started = time.perf_counter()
        store, source = synthetic_index(workdir / f"synthetic_{n}_{dim}", n, dim)  # reused when --workdir already has it
        write_s = time.perf_counter() - started
        q = source.sample(np.random.default_rng(1), queries)
        all_ids = store.vector_ids("video")
        vectors = np.concatenate([v for _, v in store.vectors("video")])
        started = time.perf_counter()
        flat = VectorIndex.empty(dim, n, exact_limit=n + 1)
        flat.add(all_ids, vectors)
        variants = [("exact (flat)", flat, None, time.perf_counter() - started)]
        started = time.perf_counter()
        sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 64 * ivf_cells(n)), replace=False)]
        ivf = VectorIndex.empty(dim, n, sample, exact_limit=0)
        ivf.add(all_ids, vectors)
        ivf_build = time.perf_counter() - started
        nlist = ivf_cells(n)
        variants += [(f"IVF{nlist},Flat" + (" (default)" if p == default_nprobe(nlist) else ""), ivf, p, ivf_build)
                     for p in sorted({*nprobes, default_nprobe(nlist)})]
        del vectors
        truth = flat.search(q, 10)[1]
        print(f"{n} moments: wrote the SQLite index in {write_s:.1f} s", flush=True)
        for name, index, nprobe, build_s in variants:
            if nprobe is not None:
                index.nprobe = nprobe
            search_s, found = timed(lambda i, index=index: index.search(q[i : i + 1], 10), queries)
            lookup_s, _ = timed(lambda i, found=found: store.moments(found[i][1][0]), queries)
            got = np.concatenate([f[1] for f in found])
            recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
            total = 1000 * (search_s + lookup_s) + (text_ms or 0.0)
            rows.append(f"| {n:,} | {name} | {nprobe or '-'} | {build_s:.1f} | {1000 * search_s:.2f} | {1000 * lookup_s:.2f} | "
                        f"{total:.1f} | {recall:.3f} |")
            print(rows[-1], flush=True)
        store.close()
    return rows


def embed_benchmark(ckpt: Path, videos: int, every: float, workers: int, workdir: Path) -> tuple[list[str], float]:
    from versanet.app.embedder import ClipEncoder, DecodedClips
    from versanet.app.indexer import embed_folder, resolve_grid
    from versanet.checkpoint import load_pretrained
    from versanet.data.toy import ToyWorldConfig, generate_toy_world

    root = generate_toy_world(workdir / "toy", ToyWorldConfig(num_train=videos, num_val=0, seed=11), workers=2)
    report = embed_folder(root / "videos", workdir / "embed_index", ckpt, every=every, workers=workers, rebuild=True, progress=False)
    encoder = ClipEncoder(load_pretrained(ckpt), device="cpu")
    grid = resolve_grid(ckpt, every, None, None, 16000)
    stream = DecodedClips(root / "videos", sorted(p.name for p in (root / "videos").glob("*.mp4")), grid, encoder.transforms, encoder.modalities)
    started = time.perf_counter()
    with one_thread():  # what a DataLoader worker has
        chunks = list(stream)
    decode_s = time.perf_counter() - started
    batch = {m: torch.cat([c.inputs[m] for c in chunks]) for m in encoder.modalities}
    clips = len(batch[encoder.modalities[0]])
    started = time.perf_counter()
    for lo in range(0, clips, 32):
        encoder.embed_clips({m: x[lo : lo + 32] for m, x in batch.items()})
    model_s = time.perf_counter() - started
    with one_thread():  # as Searcher.search runs it
        text_s, _ = timed(lambda i: encoder.embed_text([f"a red circle moving left {i}"]), 50)
    rows = ["| stage | clips | seconds | clips/s |", "| --- | ---: | ---: | ---: |",
            f"| versanet embed, end to end ({workers} decode workers, {torch.get_num_threads()} torch threads) | {report.clips} | {report.seconds:.1f} | {report.clips / report.seconds:.1f} |",
            f"| decode + transforms, one process on one thread | {clips} | {decode_s:.1f} | {clips / decode_s:.1f} |",
            f"| model alone ({', '.join(encoder.modalities)}; batches of 32) | {clips} | {model_s:.1f} | {clips / model_s:.1f} |",
            f"| text query encoding | 1 | {text_s:.4f} | - |"]
    return rows, 1000 * text_s


def precision_benchmark(ckpt: Path, videos: int, every: float, workers: int, workdir: Path) -> list[str]:
    """Precision@5 of text search on a fresh toy world (seed 1: videos the quickstart never trained on)."""
    from versanet.app.evaluate import toy_precision
    from versanet.app.indexer import embed_folder
    from versanet.app.search import Searcher
    from versanet.data.toy import ToyWorldConfig, generate_toy_world

    root = generate_toy_world(workdir / "toy_fresh", ToyWorldConfig(num_train=0, num_val=videos, seed=1), workers=2)
    embed_folder(root / "videos", workdir / "toy_fresh_index", ckpt, every=every, workers=workers, progress=False)
    searcher = Searcher(workdir / "toy_fresh_index")
    rows = ["| answered by | all three | colour + shape | colour | shape | direction | chance (all three) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for modality in searcher.modalities + (["both"] if len(searcher.modalities) > 1 else []):
        p = toy_precision(searcher, root, k=5, modality=modality)
        rows.append(f"| {modality} | {p['all']:.3f} | {p['object']:.3f} | {p['colour']:.3f} | {p['shape']:.3f} | {p['direction']:.3f} | {p['chance_all']:.4f} |")
    rows.append(f"\n{p['queries']} queries ('a {{colour}} {{shape}} moving {{direction}}'), {p['moments']} moments of {videos} fresh toy videos")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="a pretraining checkpoint (embedding throughput and text encoding time)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256, help="vector width (MMV's FAC text-video space: 256; the quickstart's: 64)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip_embed", action="store_true")
    parser.add_argument("--precision", type=int, default=0, metavar="VIDEOS",
                        help="also: precision@5 of text search on this many fresh toy videos (needs --ckpt; the quickstart's: 300)")
    parser.add_argument("--skip_queries", action="store_true", help="no synthetic latency benchmark")
    parser.add_argument("--workdir", type=Path, help="where the synthetic indexes go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="versanet-search-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        text_ms = None
        if args.ckpt and not args.skip_embed:
            rows, text_ms = embed_benchmark(args.ckpt, args.videos, args.every, args.workers, workdir)
            print("\n## Embedding on the CPU\n\n" + "\n".join(rows), flush=True)
        if args.ckpt and args.precision:
            rows = precision_benchmark(args.ckpt, args.precision, args.every, args.workers, workdir)
            print("\n## Precision@5 of text search on the toy world\n\n" + "\n".join(rows), flush=True)
        if not args.skip_queries:
            print(f"\n## Query latency, {args.dim}-d vectors, {args.queries} queries one at a time (median)\n", flush=True)
            rows = query_benchmark(args.sizes, args.dim, args.queries, args.nprobe, workdir, text_ms)
            print("\n" + "\n".join(rows))
    print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; torch threads {torch.get_num_threads()}; "
          f"FAISS threads {__import__('faiss').omp_get_max_threads()}")


if __name__ == "__main__":
    main()
