"""Every shell command in README.md and docs/*.md runs, at tiny size, and a new command cannot go untested.

How it works. The fenced ``bash`` / ``sh`` / ``shell`` blocks of README.md and docs/*.md, and the
unlabeled fences with a line that starts like a command (``versanet``, ``python``, ``pip``, ``pytest``:
an unlabeled fence must not hide a command from this test), are split into simple commands (continuation lines joined, ``&&`` / ``;`` chains split, comments dropped, whitespace
collapsed). Each must have an entry in ``COVERAGE``, keyed by that normalised text:

- ``Run(extra, expect)``: the command runs in a sandbox folder laid out like a checkout in use
  (``configs/``, ``plugins/`` and ``benchmarks/`` of the repository; a small toy world in
  ``data/toy``; miniature copies of released layouts in ``data/ucf101``, ``data/esc50``,
  ``data/msrvtt``; the quickstart's checkpoint in ``runs/quickstart-fac/...``; the placeholder paths
  the docs use -- ``PATH``, ``PATH.ckpt``, ``CKPT``, ``PRETRAIN.ckpt``,
  ``runs/mmv-fac_s3dg/checkpoints/last.ckpt`` -- as copies of that checkpoint; ``captions.csv``).
  ``extra`` arguments are appended to shrink it (later flags override the documented ones in
  LightningCLI and jsonargparse); it must exit 0, print ``expect`` (stdout or stderr; log records are
  not captured) and leave the file ``writes``. ``versanet`` commands run in-process (fast), anything
  else in a subprocess.
- ``Elsewhere(where)``: not run here; ``where`` names the CI step or test that runs it.

A command that is documented but not in ``COVERAGE`` fails ``test_every_documented_command_is_covered``
with the line to add. To cover a new command, add ONE line to ``COVERAGE``, e.g.::

    "versanet fit --config configs/vatt/base.yaml": Run(TINY_FIT + ("--model.init_args.encoders.video.init_args.depth=1",), expect="loss"),

(copy the command exactly as ``test_every_documented_command_is_covered`` prints it). If it reads a
file the sandbox lacks, add it in ``sandbox`` below. Entries no document uses any more fail too.

Cost: one tiny quickstart fit shared by every command that needs a checkpoint (it is itself the
README's first command), then each command at a few steps: about 2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from versanet.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICKSTART_CKPT = "runs/quickstart-fac/lightning_logs/version_0/checkpoints/last.ckpt"
TOKENIZER = "data/toy/tokenizer/spm_word_256.model"


@dataclass(frozen=True)
class Run:
    """Run the documented command in the sandbox with ``extra`` appended; it must exit 0, print ``expect`` and
    leave the file or folder ``writes`` (relative to the sandbox)."""

    extra: tuple[str, ...] = ()
    expect: str = ""
    writes: str = ""


@dataclass(frozen=True)
class Elsewhere:
    """Not run by this test: ``where`` names the CI step or test that runs it."""

    where: str


# ------------------------------------------------------------------------------------------- tiny sizes
TINY_LOADER = ("--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false")
TINY_FIT = (*TINY_LOADER, "--data.init_args.toy=null", "--data.init_args.batch_size=8", "--trainer.max_steps=2",
            "--trainer.val_check_interval=2", "--trainer.limit_val_batches=2", "--trainer.num_sanity_val_steps=0")
TINY_TEST = (*TINY_LOADER, "--data.init_args.toy=null", "--data.init_args.batch_size=8", "--trainer.limit_test_batches=2")
SMALL_CLIPS = ("--data.init_args.num_frames=4", "--data.init_args.eval_clips=2", "--data.init_args.short_side=null")
SMALL_VIDEO = '--data.init_args.transforms={"video": {"class_path": "VideoClipTransform", "init_args": {"crop": 16, "resize": 20}}}'
TOY_TEXT = {"class_path": "TokenizeText", "init_args": {"num_candidates": 1, "max_tokens": 16, "vocab_size": 256, "model_type": "word", "model_path": TOKENIZER}}
SMALL_VIDEO_TEXT = ('--data.init_args.transforms={"video": {"class_path": "VideoClipTransform", "init_args": {"crop": 16, "resize": 20}}, "text": '
                    + str(TOY_TEXT).replace("'", '"') + "}")
BENCH_FLAGS = ("--strict", "true", "--cache_dir", "runs/docs_feature_cache")

COVERAGE: dict[str, Run | Elsewhere] = {
    # --- installation and the suite itself (README)
    "python3 -m venv .venv": Elsewhere(".ci/run: builds a fresh virtual environment the same way"),
    ". .venv/bin/activate": Elsewhere(".ci/run"),
    "pip install -e .": Elsewhere(".ci/run: installs the package from this checkout"),
    'pip install -e ".[test]" -e plugins/versanet-motion': Elsewhere(".ci/run: runs exactly this"),
    "pytest -q": Elsewhere(".ci/run: the test suite, this file included"),
    "torchrun --nnodes 4 --nproc-per-node 8 --node-rank R --master-addr HOST --master-port 29500 -m versanet.cli fit --config configs/mmv/fac_s3dg.yaml --trainer.num_nodes 4 --trainer.devices 8 --trainer.strategy ddp --data.init_args.shards '/shared/howto100m/train-{000000..000999}.tar' --data.init_args.samples_per_epoch 1000000":
        Elsewhere("tests/test_multinode.py: the same torchrun + versanet fit recipe, 2 nodes x 1 process on localhost (gloo), from shared shards"),
    "pip install -e plugins/versanet-motion": Elsewhere(".ci/run: installs the plugin"),
    # --- README, "Using it"
    "versanet fit --config configs/quickstart/fac.yaml": Run(TINY_FIT, expect="linear probe on frozen video features"),
    "versanet fit --config configs/quickstart/fac.yaml --print_config": Run(expect="class_path: versanet.FAC"),
    f"versanet test --config configs/quickstart/fac.yaml --ckpt_path {QUICKSTART_CKPT}": Run(TINY_TEST, expect="test/text_to_video@vat/R@1"),
    "versanet list": Run(expect="SmallVideoCNN"),
    "versanet toy-data data/toy --num_train 800 --num_val 100": Run(("--num_train", "24", "--num_val", "8", "--seconds", "3.0"), expect="toy world written to"),
    "versanet data check configs/mmv/fac_s3dg.yaml": Elsewhere("tests/test_mmv_configs.py::test_data_check_reads_the_mix_of_an_mmv_config_relative_"
                                                               "to_the_config (on HowTo100M and AudioSet fixture layouts)"),
    "versanet benchmark --ckpt PATH --suite toy": Run(("--data_root", "data/toy", "--only", "[toy_linear_shape]", "--overrides", "[--trainer.max_epochs=1]",
                                                       "--output", "runs/docs_toy_suite", *BENCH_FLAGS), expect="| PATH |"),
    "versanet tokenizer train captions.csv spm.model --vocab_size 8000": Run(expect="wrote spm.model"),
    "versanet deflate CKPT image_net.pt --method naive": Run(expect="wrote image_net.pt"),
    # --- docs/benchmarks.md (released layouts: miniature copies)
    "versanet fit --config configs/data/ucf101.yaml --config configs/benchmarks/linear_video.yaml --model.init_args.checkpoint runs/mmv-fac_s3dg/checkpoints/last.ckpt":
        Run((*TINY_LOADER, *SMALL_CLIPS, SMALL_VIDEO, "--model.init_args.train_views=1"),
            writes="runs/benchmarks/linear_video/lightning_logs/version_0/checkpoints/epoch=2-step=3.ckpt"),
    "versanet test --config configs/data/ucf101.yaml --config configs/benchmarks/linear_video.yaml --model.init_args.checkpoint runs/mmv-fac_s3dg/checkpoints/last.ckpt --ckpt_path runs/benchmarks/linear_video/lightning_logs/version_0/checkpoints/epoch=2-step=3.ckpt":
        Run((*TINY_LOADER, *SMALL_CLIPS, SMALL_VIDEO, "--model.init_args.train_views=1"), expect="test/top1"),
    "versanet test --config configs/data/msrvtt.yaml --config configs/benchmarks/zeroshot.yaml --model.init_args.checkpoint PRETRAIN.ckpt":
        Run((*TINY_LOADER, *SMALL_CLIPS, SMALL_VIDEO_TEXT), expect="test/text_to_video/R@1"),
    "versanet benchmark --ckpt PRETRAIN.ckpt --suite mmv": Run(("--only", "[esc50_linear]", "--output", "runs/docs_mmv_suite", *BENCH_FLAGS, "--overrides",
                                                                "[--model.init_args.train_views=1,--data.init_args.num_workers=0]"), expect="| PRETRAIN |"),
    f"versanet benchmark --ckpt {QUICKSTART_CKPT} --suite toy --data_root data/toy": Run(("--only", "[toy_zeroshot]", "--output", "runs/docs_toy_suite2", *BENCH_FLAGS),
                                                                                         expect="T->V R@1"),
    # --- docs/data.md (the MMV configs' data: resolved here; trained on fixture layouts in tests/test_mmv_configs.py)
    "versanet fit --config configs/mmv/fac_s3dg.yaml": Run(("--print_config",), expect="class_path: versanet.data.mixing.MixedDataModule"),
    "versanet fit --config configs/mmv/fac_s3dg.yaml --config configs/data/howto100m.yaml": Run(("--print_config",), expect="class_path: versanet.text.Word2VecTokenize"),
    "versanet fit --config configs/mmv/fac_s3dg.yaml --data.init_args.roots='[/data/htm, /data/audioset]'": Run(("--print_config",), expect="- /data/audioset"),
    "versanet fit --config configs/mmv/fac_s3dg.yaml --ckpt_path runs/mmv-fac_s3dg/checkpoints/last.ckpt": Elsewhere(
        "tests/test_resume.py (a real run killed with SIGKILL mid-epoch, resumed with --ckpt_path last.ckpt); the MMV configs' last.ckpt: tests/test_mmv_configs.py"),
    # --- docs/configs.md
    "versanet fit --config configs/benchmarks/toy_linear.yaml --config configs/benchmarks/toy_linear_lowshot.yaml --print_config": Run(expect="train_per_class: 1"),
    # --- docs/mmv.md
    "versanet fit --config configs/deflation/recalibrate_toy.yaml --model.init_args.checkpoint PATH.ckpt":
        Run((*TINY_LOADER, "--data.init_args.batch_size=4", "--data.init_args.frames_per_video=2", "--trainer.max_steps=2"),
            writes="runs/deflation-toy/image_encoder.pt"),
    # --- docs/mcn.md
    "versanet fit --config configs/mcn/howto100m.yaml": Elsewhere(
        "tests/test_mcn_data.py::test_paper_config_resolves_and_trains_at_tiny_size (this config, sizes shrunk, on a fixture release)"),
    "versanet features extract configs/quickstart/fac.yaml data/toy/mcn_features [--ckpt runs/quickstart-fac/checkpoints/last.ckpt]": Elsewhere(
        "a synopsis, not a command: the plain form runs in tests/test_mcn_quickstart.py"),
    "versanet features extract configs/quickstart/fac.yaml data/toy/mcn_features": Elsewhere(
        "tests/test_mcn_quickstart.py (the toy world's 80 videos extracted, then resumed with nothing redone)"),
    "versanet fit --config configs/quickstart/mcn.yaml": Elsewhere("tests/test_mcn_quickstart.py (this config, shortened, must clear a retrieval and NMI bar)"),
    "versanet test --config configs/mcn/youcook2_zeroshot.yaml --model.init_args.checkpoint runs/mcn-howto100m/checkpoints/last.ckpt": Elsewhere(
        "tests/test_mcn_zeroshot.py (this config on features in the extractor's layout, from a tiny MCN checkpoint)"),
    "versanet test --config configs/mcn/msrvtt_zeroshot.yaml --model.init_args.checkpoint runs/mcn-howto100m/checkpoints/last.ckpt": Elsewhere(
        "tests/test_mcn_zeroshot.py (this config on features in the extractor's layout, from a tiny MCN checkpoint)"),
    "versanet test --config configs/mcn/crosstask_zeroshot.yaml --model.init_args.checkpoint runs/mcn-howto100m/checkpoints/last.ckpt": Elsewhere(
        "tests/test_mcn_crosstask.py::test_mcn_crosstask_config_scores_recall_as_the_reference (recall against a hand-computed reference)"),
    "python benchmarks/mcn_step.py --batch 4096 --width 256 --repeats 3": Run(("--batch", "64", "--width", "32", "--audio_frames", "64", "--repeats", "1"),
                                                                              expect="share of k-means + queue"),
    # --- docs/weights.md (release-format files written by tests/test_weights.py's generator)
    "versanet weights list": Run(expect="formats:"),
    "versanet weights convert --from FORMAT SRC OUT.ckpt [--vocab FILE]": Elsewhere("a synopsis, not a command: the conversions below run"),
    "versanet weights convert --from milnce_s3d s3d_howto100m.pth milnce_s3d.ckpt": Run(expect="wrote milnce_s3d.ckpt", writes="milnce_s3d.ckpt"),
    "versanet weights convert --from mmv_tfhub mmv_s3d/ mmv_s3d.ckpt --vocab vocab.txt": Elsewhere(
        "tests/test_weights.py::test_mmv_tfhub_saved_model_converts (a SavedModel needs TensorFlow to write)"),
    "versanet weights convert --from mmv_haiku_npz mmv_s3d.npz mmv_s3d.ckpt --vocab vocab.txt": Elsewhere(
        "tests/test_weights.py::test_mmv_haiku_npz_converts (S3D-G, TSM-50 and TSM-50x2 in Haiku's names)"),
    "versanet weights convert --from vatt_tf tx_fac_bbs/ckpt-500000.index vatt_bbs.ckpt --vocab howto100m_en.txt": Elsewhere(
        "tests/test_weights_vatt.py::test_vatt_tf_converts_and_matches_the_tf_computation (TF checkpoints need TensorFlow to write)"),
    "versanet test --config configs/data/msrvtt.yaml --config configs/benchmarks/zeroshot.yaml --model.init_args.checkpoint vatt_bbs.ckpt "
    "--data.init_args.root data/msrvtt --data.init_args.transforms '{video: {class_path: VideoClipTransform, init_args: {crop: 224, resize: 224, "
    "value_range: [-1, 1]}}, text: {class_path: VocabularyTokenize, init_args: {checkpoint: vatt_bbs.ckpt}}}'": Elsewhere(
        "tests/test_weights_vatt.py::test_a_converted_vatt_runs_zero_shot_msrvtt_retrieval (the same command on a converted TF fixture)"),
    "versanet test --config configs/data/msrvtt.yaml --config configs/benchmarks/zeroshot.yaml --model.init_args.checkpoint milnce_s3d.ckpt "
    "--data.init_args.root data/msrvtt --data.init_args.transforms '{video: {class_path: VideoClipTransform, init_args: {crop: 224, resize: 224}}, "
    "text: {class_path: VocabularyTokenize, init_args: {checkpoint: milnce_s3d.ckpt}}}'":
        Run((*TINY_LOADER, "--data.init_args.num_frames=8", "--data.init_args.eval_clips=1"), expect="test/text_to_video/R@1"),
    # --- README and docs/search.md: search your own videos (the app extra)
    f"versanet embed data/toy/videos --ckpt {QUICKSTART_CKPT} --index runs/search/toy --every 2": Run(("--workers", "0"), expect="embedded",
                                                                                                         writes="runs/search/toy/vectors/video.faiss"),
    'versanet search runs/search/toy "a red circle moving left" -k 5': Run(expect="(5 of "),
    'pip install -e ".[app]"': Elsewhere(".ci/run: the test extra includes the app extra"),
    'versanet search runs/search/toy "a blue square moving up" -k 5': Run(expect="(5 of "),
    "versanet serve runs/search/toy": Elsewhere("tests/test_app.py: the server on a free port, its page in headless Chromium"),
    "versanet plot runs/search/toy --labels data/toy/labels.csv --column colour": Run(("--method", "pca"), expect="wrote", writes="runs/search/toy/plot.html"),
    # --- docs/vatt.md (the quickstart fits write the checkpoint the suite command reads; the paper configs train at tiny size in
    # tests/test_vatt_configs.py; the full quickstart figures are checked at a shorter run in tests/test_vatt_toy.py)
    "versanet fit --config configs/quickstart/vatt.yaml": Run(TINY_FIT, expect="text -> video", writes="runs/quickstart-vatt/lightning_logs/version_0/checkpoints/last.ckpt"),
    "versanet fit --config configs/quickstart/vatt_ma.yaml": Run(TINY_FIT, expect="text -> video", writes="runs/quickstart-vatt_ma/lightning_logs/version_0/checkpoints/last.ckpt"),
    "versanet fit --config configs/vatt/mbs.yaml --print_config": Run(expect="class_path: versanet.encoders.vatt.VATTVideo"),
    "versanet fit --config configs/vatt/mbs.yaml": Run(("--print_config",), expect="droptoken_rate: 0.5"),
    "versanet benchmark --ckpt runs/quickstart-vatt/lightning_logs/version_0/checkpoints/last.ckpt --suite configs/vatt/benchmarks/suites/toy.yaml --data_root data/toy":
        Run(("--only", "[toy_zeroshot]", "--output", "runs/docs_vatt_suite", *BENCH_FLAGS), expect="T->V R@1"),
    "python benchmarks/vatt_flops.py": Run(("--models", "mbs", "--batch", "4", "--warmup", "0", "--reps", "1"), expect="784.8 -> 375.4"),
    # --- docs/plugins.md
    "versanet list --kind encoder": Run(expect="MotionCNN"),
    "versanet fit --config plugins/versanet-motion/configs/four_modalities.yaml": Run(TINY_FIT, writes="runs/four-modalities/lightning_logs/version_0/checkpoints"),
}


# ------------------------------------------------------------------------------------------- extraction
SHELL_FENCES = ("bash", "sh", "shell")
COMMAND_START = re.compile(r"^\s*(versanet|python[\d.]*|pip[\d.]*|pytest)(\s|$)")


def is_shell_block(language: str, body: str) -> bool:
    """A ``bash``/``sh``/``shell`` fence, or an unlabeled one with a line that starts like a command."""
    return language in SHELL_FENCES or (not language and any(COMMAND_START.match(line) for line in body.splitlines()))


def documented_commands() -> dict[str, str]:
    """Normalised simple command -> ``file:line`` of its first appearance, in document order."""
    found: dict[str, str] = {}
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for block in re.finditer(r"^```([\w+-]*)[ \t]*\n(.*?)^```", text, re.S | re.M):
            if not is_shell_block(block.group(1), block.group(2)):
                continue
            line_no = text[: block.start(2)].count("\n") + 1
            pending, start = "", line_no
            for offset, line in enumerate(block.group(2).splitlines()):
                if not pending:
                    start = line_no + offset
                pending += line[:-1] + " " if line.endswith("\\") else line + "\n"
                if line.endswith("\\") or not _complete(pending):
                    continue  # a continued line, or a quoted argument that spans lines
                for command in split_commands(pending):
                    found.setdefault(command, f"{doc.relative_to(REPO)}:{start}")
                pending = ""
    return found


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def split_commands(text: str) -> list[str]:
    """``a && b ; c  # note`` -> ``["a", "b", "c"]`` (comments dropped, quoting kept, whitespace collapsed)."""
    lexer = shlex.shlex(text, posix=False, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    for token in lexer:
        if set(token) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [" ".join(" ".join(c).split()) for c in commands if c]


# ------------------------------------------------------------------------------------------- the sandbox
SHARED_OUTPUT: dict[str, str] = {}  # commands the sandbox ran as its shared step -> their output
def _link(sandbox: Path, name: str) -> None:
    (sandbox / name).symlink_to(REPO / name, target_is_directory=True)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder laid out like a checkout in use (see the module docstring); the quickstart fit runs here once."""
    from fixtures_data import MediaCache, make_esc50, make_msrvtt, make_ucf101

    from versanet.data.toy import ToyWorldConfig, generate_toy_world

    root = tmp_path_factory.mktemp("docs_sandbox")
    for name in ("configs", "plugins", "benchmarks"):
        _link(root, name)
    generate_toy_world(root / "data" / "toy", ToyWorldConfig(num_train=24, num_val=8, seconds=3.0), workers=2)
    media = MediaCache(root / "_media")
    media.folder.mkdir()
    make_ucf101(root / "data" / "ucf101", media)
    make_esc50(root / "data" / "esc50")
    make_msrvtt(root / "data" / "msrvtt", media)
    shutil.copy(root / "data" / "toy" / "captions.csv", root / "captions.csv")
    _milnce_release(root)
    # the shared step: the README's quickstart command itself, which writes the checkpoint the other commands read
    quickstart = "versanet fit --config configs/quickstart/fac.yaml"
    SHARED_OUTPUT[quickstart] = run_command(quickstart, COVERAGE[quickstart], root)
    checkpoint = root / QUICKSTART_CKPT
    assert checkpoint.is_file(), f"{quickstart} wrote no {QUICKSTART_CKPT}"
    for placeholder in ("PATH", "PATH.ckpt", "CKPT", "PRETRAIN.ckpt", "runs/mmv-fac_s3dg/checkpoints/last.ckpt"):
        (root / placeholder).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, root / placeholder)
    return root


def _milnce_release(root: Path) -> None:
    """``s3d_howto100m.pth`` + ``s3d_dict.npy`` in MIL-NCE's release format (random weights), as docs/weights.md uses them."""
    import numpy as np
    import torch
    from test_weights import _milnce_state

    words = np.array(["a", "caption", "about", "video", "the", "cut"])
    torch.save(_milnce_state(vocab=len(words) + 3), root / "s3d_howto100m.pth")
    np.save(root / "s3d_dict.npy", words)


def run_command(command: str, how: Run, cwd: Path) -> str:
    """Run ``command`` + ``how.extra`` in ``cwd``; its stdout and stderr. Fails on a non-zero exit."""
    argv = [*shlex.split(command), *how.extra]
    if argv[0] != "versanet":
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        return proc.stdout + proc.stderr
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_argv = Path.cwd(), sys.argv
    os.chdir(cwd)
    sys.argv = sys.argv[:1]  # LightningCLI must not see pytest's arguments
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv[1:])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), f"{command}: exit {exit_info.code}\n{err.getvalue()[-3000:]}"
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
    return out.getvalue() + err.getvalue()


# ------------------------------------------------------------------------------------------- the tests
def test_every_documented_command_is_covered() -> None:
    documented = documented_commands()
    missing = {c: where for c, where in documented.items() if c not in COVERAGE}
    assert not missing, "documented commands with no COVERAGE entry in tests/test_docs.py (add one line each):\n" + "\n".join(
        f"    {c!r}: Run(...),   # {where}" for c, where in missing.items())
    stale = sorted(set(COVERAGE) - set(documented))
    assert not stale, f"COVERAGE entries no document shows any more (remove them): {stale}"


DOCUMENTED = [(c, where) for c, where in documented_commands().items() if isinstance(COVERAGE.get(c), Run)]


@pytest.mark.parametrize(("command", "where"), DOCUMENTED, ids=[w for _, w in DOCUMENTED])
def test_documented_command_runs(command: str, where: str, sandbox: Path, one_thread) -> None:
    how = COVERAGE[command]
    output = SHARED_OUTPUT[command] if command in SHARED_OUTPUT else run_command(command, how, sandbox)
    assert how.expect in output, f"{where}: `{command}` did not print {how.expect!r}; it printed:\n{output[-3000:]}"
    assert not how.writes or (sandbox / how.writes).exists(), f"{where}: `{command}` wrote no {how.writes}"


def test_unlabeled_fences_with_commands_count_as_shell() -> None:
    assert is_shell_block("", "versanet fit --config x.yaml\n") and is_shell_block("", "# first\npip install -e .\n")
    assert is_shell_block("", "python benchmarks/mcn_step.py\n") and is_shell_block("", "pytest -q\n") and is_shell_block("bash", "ls\n")
    assert not is_shell_block("", "<features_dir>/<id>_2d.npz   features [T, 2048]\n")
    assert not is_shell_block("", "python_path = 1\npipeline\n") and not is_shell_block("text", "versanet fit\n")
    assert not is_shell_block("python", "import versanet\n") and not is_shell_block("yaml", "pip: 1\n")
