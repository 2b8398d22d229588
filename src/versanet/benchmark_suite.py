"""`versanet benchmark`: run a suite of downstream benchmarks on checkpoints and write a paper-style results table.

A suite is a YAML file (``configs/benchmarks/suites/{toy,mmv}.yaml``)::

    name: toy
    title: Toy world
    benchmarks:
      - key: toy_linear_shape            # row key in the JSON; also the key of the papers' numbers
        config: ../toy_linear.yaml       # a benchmark config, relative to the suite file, or a list of them
                                         # composed in order (`--config A --config B`: later ones override)
        column: Linear (shape)           # column header
        metrics: {top-1: test/top1}      # shown name -> logged metric
        overrides: [--data.init_args.label_key=colour]      # optional, for this benchmark only
        splits: {arg: data.init_args.split, values: [1, 2, 3]}   # optional: one run per split, mean shown

Each benchmark runs exactly as ``versanet fit`` + ``versanet test --ckpt_path <the fit's checkpoint>``
would (``versanet test`` alone for the zero-shot modules), with ``--model.init_args.checkpoint`` set
to the checkpoint under test. Results go to ``<output>/results.json`` and ``<output>/results.md``:
one row per checkpoint (rows of earlier runs with the same output are kept; a checkpoint run again
replaces its row, or with ``only`` updates those benchmarks in it), then the papers' rows
(docs/method.md, "Downstream protocols") for the benchmarks they report.
Accuracies, recalls and mAPs are shown in percent, ranks as ranks.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

#: Papers' numbers (docs/method.md, "Papers' numbers"): model -> benchmark key -> metric -> value (percent; ranks as ranks).
PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "MMV FAC S3D-G": {
        "ucf101_linear": {"top-1": 89.6}, "ucf101_finetune": {"top-1": 92.5}, "hmdb51_linear": {"top-1": 62.6},
        "hmdb51_finetune": {"top-1": 69.6}, "esc50_linear": {"top-1": 87.7}, "audioset_mlp": {"mAP": 30.3}, "k600_linear": {"top-1": 68.0},
    },
    "MMV FAC TSM-50": {
        "ucf101_linear": {"top-1": 91.5}, "ucf101_finetune": {"top-1": 94.9}, "hmdb51_linear": {"top-1": 66.7},
        "hmdb51_finetune": {"top-1": 73.2}, "esc50_linear": {"top-1": 86.4}, "audioset_mlp": {"mAP": 30.6}, "k600_linear": {"top-1": 67.8},
    },
    "MMV FAC TSM-50x2": {
        "ucf101_linear": {"top-1": 91.8}, "ucf101_finetune": {"top-1": 95.2}, "hmdb51_linear": {"top-1": 67.1},
        "hmdb51_finetune": {"top-1": 75.0}, "esc50_linear": {"top-1": 88.9}, "audioset_mlp": {"mAP": 30.9}, "k600_linear": {"top-1": 70.5},
        "imagenet_linear_naive": {"top-1": 20.3}, "imagenet_linear_deflated": {"top-1": 56.6}, "imagenet_linear_inflated": {"top-1": 57.4},
        "voc_linear_naive": {"mAP": 45.6}, "voc_linear_deflated": {"mAP": 77.4}, "voc_linear_inflated": {"mAP": 77.4},
    },
    "VATT-B": {"k400_finetune": {"top-1": 79.6}},
    "VATT-M": {"k400_finetune": {"top-1": 81.1}},
    "VATT-L": {"k400_finetune": {"top-1": 82.1}},
    # the VATT paper's model size for these rows is not restated here; AudioSet and ImageNet are fine-tuned there (other keys than our frozen ones)
    "VATT": {
        "audioset_finetune": {"mAP": 39.4}, "imagenet_finetune": {"top-1": 78.7},
        "youcook2_zeroshot": {"R@10": 45.5, "MedR": 13}, "msrvtt_zeroshot": {"R@10": 29.7, "MedR": 49},
    },
    # MCN scores text against video+audio; its numbers are approximate R@10 only
    "MCN": {"youcook2_zeroshot_va": {"R@10": 45.0}, "msrvtt_zeroshot_va": {"R@10": 34.0}},
}

RANK_METRICS = ("MedR", "MeanR")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the entry."""


# ---------------------------------------------------------------------------- suite files
def repo_configs() -> Path:
    """The ``configs/`` folder of the versanet checkout (src layout)."""
    return Path(__file__).resolve().parents[2] / "configs"


def find_suite(suite: str) -> Path:
    """A suite file path, or a suite name looked up in ``./configs/benchmarks/suites`` then the checkout's."""
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise SuiteError(f"suite file not found: {path}")
        return path
    for folder in (Path("configs/benchmarks/suites"), repo_configs() / "benchmarks" / "suites"):
        candidate = folder / f"{suite}.yaml"
        if candidate.is_file():
            return candidate
    raise SuiteError(f"no suite named {suite!r} (looked for {suite}.yaml in configs/benchmarks/suites); give a name or a file")


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read and check a suite file; benchmark config paths come back absolute."""
    path = Path(path)
    try:
        suite = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    entries = suite.get("benchmarks")
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: needs a non-empty `benchmarks:` list")
    seen = set()
    for i, entry in enumerate(entries):
        where = f"{path}: benchmarks[{i}]"
        for field in ("key", "config", "metrics"):
            if field not in entry:
                raise SuiteError(f"{where}: missing `{field}`")
        if entry["key"] in seen:
            raise SuiteError(f"{where}: key {entry['key']!r} appears twice")
        seen.add(entry["key"])
        configs = [entry["config"]] if isinstance(entry["config"], str) else list(entry["config"])
        entry["config"] = []
        for config in configs:
            resolved = (path.parent / config).resolve()
            if not resolved.is_file():
                raise SuiteError(f"{where}: config not found: {resolved}")
            entry["config"].append(str(resolved))
        entry.setdefault("column", entry["key"])
        entry.setdefault("overrides", [])
        if not isinstance(entry["metrics"], dict) or not entry["metrics"]:
            raise SuiteError(f"{where}: `metrics` maps shown names to logged metrics, e.g. {{top-1: test/top1}}")
        splits = entry.get("splits")
        if splits is not None and (not isinstance(splits, dict) or "arg" not in splits or not splits.get("values")):
            raise SuiteError(f"{where}: `splits` needs `arg` (e.g. data.init_args.split) and `values`")
    suite.setdefault("name", path.stem)
    suite.setdefault("title", suite["name"])
    return suite


# ---------------------------------------------------------------------------- running
def run_benchmark(config: str | Path | list[str | Path], checkpoint: str, root_dir: str | Path, overrides: list[str] | None = None) -> dict[str, float]:
    """Run one benchmark on one checkpoint as ``versanet fit`` + ``versanet test`` would; its test metrics.

    ``config``: a config file, or a list composed in order (``--config A --config B``).
    """
    from lightning.pytorch import LightningDataModule, LightningModule

    from versanet import registry
    from versanet.cli import VersanetCLI, _user_error_in_chain, check_config_names

    registry.load_builtin()
    registry.load_plugins(strict=False)
    configs = [config] if isinstance(config, (str, Path)) else list(config)
    for path in configs:
        check_config_names(path)
    args = [*(a for path in configs for a in ("--config", str(path))), f"--model.init_args.checkpoint={checkpoint}",
            f"--trainer.default_root_dir={root_dir}", *(overrides or [])]
    argv, sys.argv = sys.argv, sys.argv[:1]  # the benchmark's own arguments, not `versanet benchmark ...`'s
    try:
        cli = VersanetCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, args=args, run=False,
                          save_config_kwargs={"overwrite": True})
    except ValueError as err:  # jsonargparse wraps what the module raised: report that (a refused file, a bad graph)
        cause = _user_error_in_chain(err)
        if cause is None:
            raise
        raise cause from None
    finally:
        sys.argv = argv
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    ckpt_path = None
    if not getattr(model, "zero_shot", False):
        trainer.fit(model, datamodule=datamodule)
        callback = trainer.checkpoint_callback
        ckpt_path = getattr(callback, "best_model_path", None) or getattr(callback, "last_model_path", None) or None
    results = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def shown(metric: str, value: float) -> float:
    """A logged value in the table's units: percent, except ranks."""
    return value if metric in RANK_METRICS or value != value else 100.0 * value


def run_suite(
    suite: dict[str, Any], checkpoint: str, output: Path, overrides: list[str] | None = None, only: list[str] | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Every benchmark of the suite on one checkpoint: ``{key: {metric: {"value", "splits"?}}}`` in table units.

    A benchmark that raises is recorded as ``{"_error": message}`` and the suite goes on, unless ``strict``.
    """
    results: dict[str, Any] = {}
    stem = Path(checkpoint).stem
    for entry in suite["benchmarks"]:
        if only and entry["key"] not in only:
            continue
        splits = entry.get("splits")
        runs = [(None, [])] if not splits else [(v, [f"--{splits['arg']}={v}"]) for v in splits["values"]]
        per_split: dict[str, dict[str, float]] = {}
        started = time.time()
        try:
            for value, split_args in runs:
                folder = output / "runs" / stem / entry["key"] / (f"split_{value}" if value is not None else "")
                logged = run_benchmark(entry["config"], checkpoint, folder, [*(overrides or []), *entry["overrides"], *split_args])
                missing = [m for m in entry["metrics"].values() if m not in logged]
                if missing:
                    raise SuiteError(f"benchmark {entry['key']}: the run logged no {', '.join(missing)}; it logged {', '.join(sorted(logged))}")
                per_split[str(value)] = {name: shown(name, logged[m]) for name, m in entry["metrics"].items()}
        except (Exception, SystemExit) as err:  # noqa: BLE001 - one failing benchmark must not lose the others
            if strict:
                raise
            message = f"{type(err).__name__}: {err}"
            print(f"versanet benchmark: {entry['key']} failed: {message}", file=sys.stderr)
            results[entry["key"]] = {"_error": message[:2000]}
            continue
        table: dict[str, Any] = {}
        for name in entry["metrics"]:
            values = [s[name] for s in per_split.values()]
            table[name] = {"value": sum(values) / len(values)}
            if splits:
                table[name]["splits"] = {k: s[name] for k, s in per_split.items()}
        table["_seconds"] = round(time.time() - started, 1)
        results[entry["key"]] = table
    return results


# ---------------------------------------------------------------------------- tables
def _columns(suite: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(benchmark key, metric name, header) for every column."""
    cols = []
    for entry in suite["benchmarks"]:
        for name in entry["metrics"]:
            header = entry["column"] if len(entry["metrics"]) == 1 and name in ("top-1",) else f"{entry['column']} {name}"
            cols.append((entry["key"], name, header))
    return cols


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if metric not in RANK_METRICS else f"{value:g}"


def format_table(report: dict[str, Any]) -> str:
    """Markdown: our rows, then the papers' rows that report any of the suite's benchmarks, then per-split details."""
    suite = report["suite"]
    cols = _columns(suite)
    lines = [f"## {suite['title']} (suite `{suite['name']}`)", "",
             "Accuracies, recalls and mAPs in percent; MedR/MeanR are ranks (1-indexed). '-': not run / not reported.", ""]
    lines.append("| Model | " + " | ".join(h for _, _, h in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for row in report["rows"]:
        cells = [("err" if "_error" in row["results"].get(k, {}) else _fmt(row["results"].get(k, {}).get(m, {}).get("value"), m)) for k, m, _ in cols]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    for model, numbers in PAPER_RESULTS.items():
        if any(k in numbers and m in numbers[k] for k, m, _ in cols):
            cells = [_fmt(numbers.get(k, {}).get(m), m) for k, m, _ in cols]
            lines.append(f"| {model} (paper) | " + " | ".join(cells) + " |")
    detail = [(k, m, h) for k, m, h in cols if any("splits" in r["results"].get(k, {}).get(m, {}) for r in report["rows"])]
    if detail:
        lines += ["", "Per split:", ""]
        for row in report["rows"]:
            for k, m, h in detail:
                splits = row["results"].get(k, {}).get(m, {}).get("splits", {})
                lines.append(f"- {row['name']}, {h}: " + ", ".join(f"split {s} {_fmt(v, m)}" for s, v in splits.items()))
    errors = [(r["name"], k, v["_error"]) for r in report["rows"] for k, v in r["results"].items() if "_error" in v]
    if errors:
        lines += ["", "Failed ('err'):", ""] + [f"- {name}, {key}: {message.splitlines()[0][:300]}" for name, key, message in errors]
    lines += ["", "Checkpoints:", ""] + [f"- {r['name']}: `{r['checkpoint']}`" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def benchmark(
    ckpt: str | list[str] | None = None,
    suite: str = "toy",
    output: str | None = None,
    name: str | list[str] | None = None,
    data_root: str | None = None,
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    init: str = "pretrained",
    cache_dir: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Run a benchmark suite on one or more pretraining checkpoints; write results.md and results.json.

    Args:
        ckpt: pretraining checkpoint(s) (.ckpt written by `versanet fit`); one table row each (--ckpt A --ckpt+ B).
        suite: suite name (toy, mmv) or a suite YAML file.
        output: folder for results.md, results.json and the runs (default runs/benchmarks/<suite name>).
        name: row label(s), one per checkpoint (default: the checkpoint's file name).
        data_root: sets --data.init_args.root of every benchmark (e.g. the toy world's folder).
        overrides: extra command-line overrides for every benchmark, e.g. [--trainer.accelerator=cpu].
        only: run only these benchmark keys.
        init: pretrained, or random (the same networks with random weights: a baseline row).
        cache_dir: frozen-feature cache folder (default $VERSANET_FEATURE_CACHE, else runs/feature_cache).
        strict: stop at the first benchmark that fails (default: record it as 'err' and go on).
    """
    if not ckpt:
        raise SuiteError("give the pretraining checkpoint(s): --ckpt PATH (repeat --ckpt+ PATH for more rows)")
    ckpts = [ckpt] if isinstance(ckpt, str) else list(ckpt)
    names = [name] if isinstance(name, str) else list(name or [])
    if names and len(names) != len(ckpts):
        raise SuiteError(f"give one name per checkpoint ({len(ckpts)} checkpoints, {len(names)} names)")
    path = find_suite(suite)
    spec = load_suite(path)
    out = Path(output) if output else Path("runs/benchmarks") / spec["name"]
    out.mkdir(parents=True, exist_ok=True)
    common = list(overrides or [])
    if data_root:
        common.append(f"--data.init_args.root={data_root}")
    if init != "pretrained":
        common.append(f"--model.init_args.init={init}")
    json_path = out / "results.json"
    previous = json.loads(json_path.read_text()) if json_path.is_file() else {}
    rows = [r for r in previous.get("rows", []) if previous.get("suite", {}).get("name") == spec["name"]]
    saved_cache = os.environ.get("VERSANET_FEATURE_CACHE")
    if cache_dir:
        os.environ["VERSANET_FEATURE_CACHE"] = str(cache_dir)
    ran: list[dict[str, Any]] = []  # this invocation's results, for the exit status
    try:
        for i, checkpoint in enumerate(ckpts):
            label = names[i] if names else Path(checkpoint).stem + (" (random init)" if init == "random" else "")
            results = run_suite(spec, checkpoint, out, common, only, strict)
            ran += list(results.values())
            row = {"name": label, "checkpoint": str(Path(checkpoint).resolve()), "init": init, "results": results}
            same = [r for r in rows if (r["checkpoint"], r.get("init")) == (row["checkpoint"], init)]
            if same and only:  # a partial re-run updates those benchmarks of the checkpoint's row
                row["results"] = {**same[0]["results"], **results}
            rows = [r for r in rows if r not in same] + [row]
    finally:
        if cache_dir:
            os.environ.pop("VERSANET_FEATURE_CACHE", None)
            if saved_cache is not None:
                os.environ["VERSANET_FEATURE_CACHE"] = saved_cache
    report = {"suite": {k: spec[k] for k in ("name", "title", "benchmarks")}, "rows": rows,
              "papers": {m: {k: v for k, v in nums.items() if k in {e["key"] for e in spec["benchmarks"]}} for m, nums in PAPER_RESULTS.items()}}
    json_path.write_text(json.dumps(report, indent=2))
    table = format_table(report)
    (out / "results.md").write_text(table)
    print(table)
    print(f"wrote {out / 'results.md'} and {json_path}")
    if ran and all(isinstance(r, dict) and "_error" in r for r in ran):
        print(f"versanet benchmark: every benchmark failed ({len(ran)}); see the errors above", file=sys.stderr)
        report["exit_code"] = 1  # `versanet benchmark` exits with status 1 (not written to results.json)
    return report
