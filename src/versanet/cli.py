"""The `versanet` command: LightningCLI for fit/validate/test/predict, plus a few tools.

    versanet fit --config configs/quickstart/fac.yaml      # train (any LightningModule + data module)
    versanet test --config ... --ckpt_path PATH             # evaluate a checkpoint
    versanet list [--kind encoder]                          # every registered component
    versanet toy-data DIR [--num_train 800 ...]             # write the toy world
    versanet tokenizer train CAPTIONS OUTPUT [--vocab_size 8000]   # sentencepiece on a caption file
    versanet deflate CKPT OUT [--method naive|inflate]      # video network -> image network
    versanet data check CONFIG_OR_DIR                        # report unreadable/short/bad files before a run
    versanet data shard CONFIG_OR_DIR OUTPUT                 # WebDataset shards of the original bytes
    versanet benchmark --ckpt PATH --suite toy|mmv|FILE       # every benchmark of a suite -> results table
    versanet weights list | convert --from FORMAT SRC OUT    # published checkpoints -> versanet checkpoints
    versanet features extract CONFIG DIR [--ckpt PATH]      # per-video features, MCN's release layout
    versanet embed VIDEO_DIR --ckpt CKPT --index INDEX_DIR    # your videos -> a searchable index (pip install versanet[app])
    versanet search INDEX_DIR "a red circle moving left"      # the best matching moments
    versanet serve INDEX_DIR                                  # a local web page to search and play them
    versanet plot INDEX_DIR [--labels CSV --column NAME]      # the joint space in 2-D

Required arguments of the tool commands are positional, options are flags (jsonargparse's CLI).

Plugins in the ``versanet.plugins`` entry-point group are imported before anything is parsed, so
their classes work as short ``class_path`` names. Config files are checked before parsing: a
``class_path`` that names nothing registered fails at once with the close matches.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pickle
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from versanet import registry

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


class ConfigError(ValueError):
    """A config file that names something that does not exist; the message names the file and the key."""


class VersanetCLI(LightningCLI):
    """LightningCLI with versanet's defaults: any LightningModule / data module by class_path, no abbreviated options.

    argparse would otherwise take a prefix for the full name (``--trainer.max_step`` for ``--trainer.max_steps``)
    without a word; a typo must fail instead.
    """

    def __init__(self, *args: Any, parser_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        no_abbrev: dict[str, Any] = {"allow_abbrev": False, **{command: {"allow_abbrev": False} for command in LIGHTNING_COMMANDS}}
        for key, value in (parser_kwargs or {}).items():
            no_abbrev[key] = {**no_abbrev.get(key, {}), **value} if isinstance(value, dict) else value
        super().__init__(*args, parser_kwargs=no_abbrev, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - LightningArgumentParser
        from versanet.data.failures import DataHealth

        parser.set_defaults({"trainer.log_every_n_steps": 10})
        # always on: counts unreadable samples across workers and ranks, logs them, keeps them in checkpoints
        parser.add_lightning_class_args(DataHealth, "data_health")

    def _parse_ckpt_path(self) -> None:
        """Lightning's merge of a ``--ckpt_path``'s hyperparameters into the config, reading the file safely.

        Lightning's own version reads the file weights-only but then hands its ``class_path`` values to
        jsonargparse, which imports whatever module they name; here the file is read once with
        :func:`versanet.checkpoint.safe_load`, and a ``class_path`` that is not registered or already
        imported is refused (one line naming the file) before anything is resolved.
        """
        from versanet.checkpoint import CheckpointError, check_class_paths, safe_load

        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        try:
            checkpoint = safe_load(ckpt_path)
            hparams = dict(checkpoint.get("hyper_parameters", {})) if isinstance(checkpoint, dict) else {}
            check_class_paths(hparams, ckpt_path, "hyper_parameters")
        except CheckpointError as err:
            sys.exit(f"versanet: error: {err}")
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """``--ckpt_path`` is read weights-only, whatever torch's default or its environment variables say."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            if kwargs.get("weights_only") is False:
                sys.exit("versanet: error: --weights_only false is refused: versanet reads checkpoints as weights and plain data only "
                         "(docs/overview.md, 'Files and trust')")
            kwargs["weights_only"] = True
        return kwargs

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a ``--ckpt_path`` that holds more than weights and plain data is refused in one line naming it."""
        try:
            super()._run_subcommand(subcommand)
        except pickle.UnpicklingError as err:
            path = self.config_init[subcommand].get("ckpt_path")
            from versanet.checkpoint import unpickling_reason

            sys.exit(f"versanet: error: checkpoint {path} was refused: it holds Python objects other than tensors and plain data, "
                     f"and loading them could run code from the file ({unpickling_reason(err)})")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        """A ``DataHealth`` listed under ``trainer.callbacks`` replaces the always-on one (two would clash in checkpoints)."""
        from versanet.data.failures import DataHealth

        listed = config.get("callbacks") or []
        listed = listed if isinstance(listed, list) else [listed]
        if any(isinstance(c, DataHealth) for c in listed):
            callbacks = [c for c in callbacks if not isinstance(c, DataHealth)]
        return super()._instantiate_trainer(config, callbacks)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _walk_class_paths(node: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(key path, class_path, init_args)`` of every class node in a config tree."""
    if isinstance(node, dict):
        if isinstance(node.get("class_path"), str):
            yield where or "<root>", node["class_path"], node.get("init_args")
        for key, value in node.items():
            yield from _walk_class_paths(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_class_paths(value, f"{where}[{i}]")


def check_config_names(path: str | Path) -> None:
    """Fail before training when a config names something that does not exist, or gives a class an argument it does not take.

    Checks every ``class_path`` under ``model`` and ``data`` (a nested data file is read relative to this
    one): a short name must be registered; the ``init_args`` keys must be arguments of the class
    (classes taking ``**kwargs`` are left to the parser); a head's ``in_dim``/``out_dim`` come from the graph.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    known = {name for names in registry.all_names().values() for name in names}
    known |= {c.__name__ for base in (LightningModule, LightningDataModule) for c in _subclasses(base) if not c.__name__.startswith("_")}
    for section in ("model", "data"):
        node, where_file = config.get(section, {}), path
        if isinstance(node, str) and node.endswith((".yaml", ".yml")):  # a nested config file, relative to this one
            nested = path.parent / node
            if not nested.is_file():
                raise ConfigError(f"{path}: {section}: config file {node!r} not found (looked for {nested})")
            where_file, node = nested, yaml.safe_load(nested.read_text(encoding="utf-8")) or {}
        for where, class_path, init_args in _walk_class_paths(node, section):
            if "." not in class_path and class_path not in known:
                message = registry.unknown_name_message("class_path", class_path, sorted(known))
                raise ConfigError(f"{where_file}: {where}: {message}")
            problem = _init_args_problem(class_path, init_args)
            if problem:
                raise ConfigError(f"{where_file}: {where}: {problem}")


def _resolve_class(class_path: str) -> type | None:
    """The class a ``class_path`` names (registered short name or dotted path), None when it cannot be resolved here."""
    if "." not in class_path:
        for kind in registry.KINDS:
            if class_path in registry.names(kind):
                return registry.get(kind, class_path)
        found = [c for base in (LightningModule, LightningDataModule) for c in _subclasses(base) if c.__name__ == class_path]
        return found[0] if found else None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _init_args_problem(class_path: str, init_args: Any) -> str | None:
    """What is wrong with ``init_args`` for ``class_path`` (one sentence), or None."""
    if not isinstance(init_args, dict) or not init_args:
        return None
    cls = _resolve_class(class_path)
    if cls is None or not isinstance(cls, type):
        return None
    from versanet.heads import Head

    if issubclass(cls, Head):
        given = [k for k in ("in_dim", "out_dim") if k in init_args]
        if given:
            return (f"{cls.__name__}: {' and '.join(given)} {'is' if len(given) == 1 else 'are'} set by the graph "
                    "(in_dim: the source's width, out_dim: the space's); remove it from init_args")
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    accepted = [n for n, p in params.items() if n != "self" and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in init_args if k not in accepted]
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{cls.__name__} takes no argument {unknown[0]!r}; {hint}its arguments: {', '.join(accepted)}"
    return None


def _config_paths(args: list[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            paths.append(args[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


# ---------------------------------------------------------------------------- tool commands
def list_components(kind: str | None = None) -> None:
    """Print every registered encoder, head, loss, graph, transform and dataset with a one-line description.

    Args:
        kind: only this kind (encoder, head, loss, graph, transform, dataset).
    """
    kinds = [kind] if kind else list(registry.KINDS)
    for k in kinds:
        print(f"{k}{'es' if k.endswith('s') else 's'}:")
        for name in registry.names(k):
            cls = registry.get(k, name)
            print(f"  {name:<26} {registry.describe(cls)}  [{cls.__module__}]")
    plugins = registry.loaded_plugins()
    print("plugins: " + (", ".join(f"{n} ({m})" for n, m in plugins.items()) if plugins else "none installed"))


def toy_data(
    root: str,
    num_train: int = 800,
    num_val: int = 100,
    seconds: float = 6.0,
    fps: int = 10,
    size: int = 64,
    sample_rate: int = 16000,
    num_segments: int = 3,
    asr_shift_prob: float = 0.3,
    asr_max_shift: float = 1.0,
    object_scale: float = 1.5,
    seed: int = 0,
    workers: int = 2,
) -> None:
    """Write the toy audio-visual-text world to ROOT (mp4 + captions.csv + labels.csv + splits); the one command that does.

    Args:
        root: output folder.
        num_train: training videos.
        num_val: held-out videos.
        seconds: length of each video.
        fps: frame rate.
        size: frame width and height in pixels.
        sample_rate: audio sample rate.
        num_segments: motion segments (and captions) per video.
        asr_shift_prob: probability that a caption's times are shifted (like ASR captions that lag).
        asr_max_shift: largest shift in seconds.
        object_scale: object size relative to the base shapes.
        seed: world seed.
        workers: processes used to render.
    """
    from versanet.data.toy import ToyWorldConfig, generate_toy_world

    config = ToyWorldConfig(num_train=num_train, num_val=num_val, seconds=seconds, fps=fps, size=size, sample_rate=sample_rate,
                            num_segments=num_segments, asr_shift_prob=asr_shift_prob, asr_max_shift=asr_max_shift, seed=seed, object_scale=object_scale)
    print(f"toy world written to {generate_toy_world(root, config, workers=workers, progress=True)}")


def tokenizer_train(captions: str, output: str, vocab_size: int = 8000, model_type: str = "unigram") -> None:
    """Train a sentencepiece vocabulary on a caption file (.csv with a `text` column, HowTo100M .json, or .txt lines).

    Args:
        captions: caption file.
        output: path of the .model file to write.
        vocab_size: upper bound on the vocabulary size.
        model_type: sentencepiece model type (unigram, bpe, word, char).
    """
    from versanet.data.captions import read_captions
    from versanet.data.tokenizer import train_sentencepiece
    from versanet.data.transforms import normalise_text

    path = Path(captions)
    if path.suffix.lower() == ".txt":
        texts = path.read_text(encoding="utf-8").splitlines()
    else:
        texts = [c.text for caps in read_captions(path).values() for c in caps]
    model = train_sentencepiece([normalise_text(t) for t in texts], output, vocab_size, model_type)
    import sentencepiece as spm

    print(f"wrote {model} ({spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()} pieces from {len(texts)} captions)")


#: per verb, option spellings jsonargparse cannot declare -> the ones it parses (``from`` is a keyword; short options)
OPTION_ALIASES = {"weights": {"--from": "--from_"}, "search": {"-k": "--k"}}


def option_aliases(args: list[str]) -> list[str]:
    """``weights convert --from X`` -> ``--from_ X``, ``search INDEX QUERY -k 5`` -> ``--k 5`` (``=value`` forms too)."""
    aliases = OPTION_ALIASES.get(args[0], {}) if args else {}
    out = args[:1]
    for arg in args[1:]:
        name, eq, value = arg.partition("=")
        out.append(aliases[name] + eq + value if name in aliases else arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `versanet` console script."""
    run_cli(argv)


def run_cli(argv: list[str] | None = None) -> VersanetCLI | None:
    """Run a `versanet` command; returns the LightningCLI (trainer, model, datamodule) for Lightning commands."""
    args = list(sys.argv[1:] if argv is None else argv)
    cli_args = None if argv is None else args  # LightningCLI reads sys.argv itself when run as a script
    registry.load_builtin()
    registry.load_plugins(strict=not (args and args[0] == "list"))
    if args and args[0] not in LIGHTNING_COMMANDS and not args[0].startswith("-"):
        from jsonargparse import CLI

        from versanet.app import commands as app
        from versanet.benchmark_suite import benchmark
        from versanet.data.check import data_check
        from versanet.data.shards import data_shard
        from versanet.deflation import deflate_command
        from versanet.weights.convert import weights_convert, weights_list
        from versanet.features_extract import features_extract

        # one entry per line: each verb is a function whose signature jsonargparse turns into the command line
        tools = {
            "list": list_components,
            "toy-data": toy_data,
            "tokenizer": {"train": tokenizer_train},
            "deflate": deflate_command,
            "data": {"check": data_check, "shard": data_shard},
            "benchmark": benchmark,
            "weights": {"list": weights_list, "convert": weights_convert},
            "features": {"extract": features_extract},
            "embed": app.embed,
            "search": app.search,
            "serve": app.serve,
            "plot": app.plot,
        }
        result = CLI(tools, args=option_aliases(args), allow_abbrev=False)
        code = _exit_code(result)
        if code:
            sys.exit(code)
        return None
    for path in _config_paths(args):
        try:
            check_config_names(path)
        except ConfigError as err:
            sys.exit(f"versanet: error: {err}")
    try:
        return VersanetCLI(
            LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
            args=cli_args, save_config_kwargs={"overwrite": True},
        )
    except Exception as err:  # noqa: BLE001 - a user's mistake is one line; anything else keeps its traceback
        cause = _user_error_in_chain(err)
        if cause is None:
            raise
        sys.exit(f"versanet: error: {cause}")


def _exit_code(result: Any) -> int:
    """A tool's exit status: its result's ``exit_code`` (attribute or key) when it has one, else 0."""
    if isinstance(result, dict):
        return int(result.get("exit_code", 0) or 0)
    return int(getattr(result, "exit_code", 0) or 0)


def _user_error_in_chain(err: BaseException) -> BaseException | None:
    """The error a user can act on (bad graph, unknown name, missing data, unusable corpus) that caused ``err``, if any.

    jsonargparse wraps errors raised while instantiating classes; Lightning re-raises those of a run.
    """
    from versanet.checkpoint import CheckpointError
    from versanet.data.captions import CaptionFileError
    from versanet.data.failures import DataNotFound, TooManyBadSamples
    from versanet.graph import GraphError

    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, (GraphError, registry.RegistryError, CheckpointError, DataNotFound, CaptionFileError, TooManyBadSamples)):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


if __name__ == "__main__":
    main()
