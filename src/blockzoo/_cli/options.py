"""The options of ``blockzoo train``: one table gives the flags, the config-file keys, the checks and the defaults."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from blockzoo._cli.checks import (
    BoolCheck,
    Check,
    ChoiceCheck,
    DeviceCheck,
    FloatCheck,
    GlobsCheck,
    IntCheck,
    NameCheck,
    NamedConfigCheck,
    PathCheck,
)
from blockzoo._names import reject_unknown_keywords
from blockzoo.models._registry import model_signature
from blockzoo.optim import get_optimizer_spec
from blockzoo.optim._schedulers import canonical_schedule

__all__ = [
    "DATA_DEFAULTS",
    "MODEL",
    "RESUME_OVERRIDES",
    "TRAIN_OPTIONS",
    "CommandError",
    "Option",
    "default_text",
    "one_line",
    "read_config",
    "resolve_options",
]


class CommandError(Exception):
    """Bad input to the command line: reported as one line ``blockzoo: error: ...``.

    Args:
        message: What is wrong and how to fix it.
        status: The exit status (2 for bad input, 1 for a failure while running).
    """

    def __init__(self, message: str, *, status: int = 2) -> None:
        super().__init__(one_line(message))
        self.status = status


def one_line(message: object) -> str:
    """``message`` on one line: a multi-line error (every key problem of a checkpoint) joined by spaces."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _dataset(name: str) -> object:
    from blockzoo.data import dataset_info  # the data floor loads only when a data set is named

    return dataset_info(name)


@dataclass(frozen=True)
class Option:
    """One option of ``blockzoo train``.

    Attributes:
        dest: The config-file key and the attribute name (``batch_size``); the flag is ``--batch-size``.
        check: Reads and checks the value.
        help: One line for ``--help``.
        group: The ``--help`` section it is listed in.
        default: The value when neither the command line nor the config file gives one.
        metavar: The placeholder in ``--help``.
        kind: ``"value"`` (``--x V``), ``"switch"`` (``--x`` / ``--no-x``) or ``"repeat"`` (``--x A --x B``).
    """

    dest: str
    check: Check
    help: str
    group: str
    default: Any = None
    metavar: str | None = None
    kind: Literal["value", "switch", "repeat"] = "value"

    @property
    def flag(self) -> str:
        """The long flag, ``--batch-size`` for ``batch_size``."""
        return "--" + self.dest.replace("_", "-")


MODEL = NameCheck(model_signature)
_OPTIMIZER = NamedConfigCheck(NameCheck(get_optimizer_spec))
_SCHEDULER = NamedConfigCheck(NameCheck(canonical_schedule))

TRAIN_OPTIONS: tuple[Option, ...] = (
    Option("data", NameCheck(_dataset), "data set: digits (built in), cifar10, cifar100, mnist, fashion_mnist", "data", "digits", "NAME"),
    Option("data_dir", PathCheck(), "folder of the torchvision data sets", "data", None, "DIR"),
    Option("download", BoolCheck(), "download a torchvision data set that --data-dir lacks", "data", False, kind="switch"),
    Option("epochs", IntCheck(1), "passes over the training set", "training", 30, "N"),
    Option("batch_size", IntCheck(1), "samples per step", "training", 64, "N"),
    Option("optimizer", _OPTIMIZER, "optimizer name (blockzoo.list_optimizers())", "training", "adamw", "NAME"),
    Option("lr", FloatCheck(0, low_open=True), "learning rate", "training", 1e-3, "X"),
    Option("weight_decay", FloatCheck(0), "weight decay (never on biases and norms)", "training", 0.0, "X"),
    Option("scheduler", _SCHEDULER, "learning-rate schedule (blockzoo.list_schedulers())", "training", None, "NAME"),
    Option("ema", FloatCheck(0, 1, low_open=True, high_open=True), "keep an exponential moving average of the weights with this decay", "training", None, "X"),
    Option("accumulate", IntCheck(1), "batches whose gradients add up to one step", "training", 1, "N"),
    Option("label_smoothing", FloatCheck(0, 1, high_open=True), "label smoothing of the cross-entropy loss", "training", 0.0, "X"),
    Option("grad_clip", FloatCheck(0, low_open=True), "clip the gradients' global norm to X", "training", None, "X"),
    Option("seed", IntCheck(0), "seed of the weights, the shuffling and augmentation (the data split is fixed); drawn and recorded in config.json when not given", "training", None, "N"),
    Option("pretrained", ChoiceCheck(("torchvision",)), "start from torchvision's weights (the classifier is reset for the data's classes)", "model", None, "torchvision"),
    Option("init_weights", PathCheck(), "start from these weights (a .safetensors or .pt file); every key must match", "model", None, "FILE"),
    Option("freeze", GlobsCheck(), "freeze the parameters whose names match GLOB (repeatable)", "model", None, "GLOB", "repeat"),
    Option("device", DeviceCheck(), "cpu, cuda, cuda:1, mps, or auto (cuda, then mps, then cpu)", "hardware", "auto", "D"),
    Option("amp", ChoiceCheck(("bf16", "fp16")), "mixed precision: bf16, or fp16 with a gradient scaler", "hardware", None, "{bf16,fp16}"),
    Option("channels_last", BoolCheck(), "channels-last memory layout", "hardware", False, kind="switch"),
    Option("compile", BoolCheck(), "torch.compile the model", "hardware", False, kind="switch"),
    Option("workers", IntCheck(0), "DataLoader worker processes", "hardware", 0, "N"),
    Option("strategy", ChoiceCheck(("ddp", "fsdp")), "under torchrun: a model replica per process (ddp) or sharded by FSDP2 (fsdp)", "hardware", "ddp", "{ddp,fsdp}"),
    Option("sync_batchnorm", BoolCheck(), "under torchrun on GPUs: batch norm statistics over the global batch (SyncBatchNorm)", "hardware", False, kind="switch"),
    Option("out", PathCheck(), "output folder (default: runs/NAME-DATA)", "output", None, "DIR"),
)  # fmt: skip

#: Defaults that depend on the data set; the table's defaults hold for the others.
#: On the 1,438 training digits, AdamW at lr 3e-3 passes 98% validation accuracy within ten epochs of a few seconds.
DATA_DEFAULTS: dict[str, dict[str, Any]] = {"digits": {"epochs": 10, "lr": 3e-3}}

#: The options that ``--resume`` may change: where the data are and what runs the same computation.
RESUME_OVERRIDES = ("data_dir", "download", "device")  # fit refuses other workers: they change what a resumed run draws

_BY_DEST = {opt.dest: opt for opt in TRAIN_OPTIONS}
_CONFIG_KEYS = ("model", *_BY_DEST)


def default_text(opt: Option) -> str:
    """The default as ``--help`` shows it, with the data sets that have their own."""
    per_data = [f"{value:g} on {data}" for data, values in DATA_DEFAULTS.items() if (value := values.get(opt.dest))]
    if per_data:
        return f"{', '.join(per_data)}, else {opt.default:g}"
    return "none" if opt.default is None else str(opt.default)


def _load(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix != ".toml":
        raise CommandError(f"--config must be a .json or .toml file. Received: --config={str(path)!r}")
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    raise CommandError(
        f"--config: TOML files need Python 3.11 or later (tomllib); use a JSON file with the same keys. "
        f"Received: --config={str(path)!r}"
    )


def read_config(path: str) -> dict[str, Any]:
    """The checked options of a JSON or TOML config file, keyed like the long flags (``batch_size``).

    Keys may use dashes or underscores (``batch-size`` or ``batch_size``);
    ``model`` names the model when the command line does not.

    Raises:
        CommandError: a missing or unreadable file, an unknown key (close
            matches suggested), a key given twice, or a bad value.
    """
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"--config names no file. Received: --config={path!r}")
    try:
        raw = _load(file)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise CommandError(f"--config {path} could not be read: {err}") from err
    if not isinstance(raw, Mapping):
        raise CommandError(f"--config {path} must hold a table of options. Received: {type(raw).__name__}")
    options: dict[str, Any] = {}
    written: dict[str, tuple[str, Any]] = {}  # each option's key and value as the file has them
    for key, value in raw.items():
        dest = str(key).replace("-", "_")
        try:
            reject_unknown_keywords({dest: value}, _CONFIG_KEYS, owner=f"--config {path}")
        except TypeError as err:
            raise CommandError(str(err)) from err
        if dest in written:
            first, first_value = written[dest]
            raise CommandError(
                f"--config {path} gives {dest!r} twice (with dashes and with underscores). "
                f"Received: {first}={first_value!r}, {key}={value!r}"
            )
        written[dest] = (str(key), value)
        if value is None and dest != "model" and _BY_DEST[dest].default is None:
            options[dest] = None  # JSON's null: "none", for the options that default to none
            continue
        try:
            options[dest] = (MODEL if dest == "model" else _BY_DEST[dest].check).value(dest, value)
        except (ValueError, TypeError) as err:
            raise CommandError(f"--config {path}: {err}") from err
    return options


def resolve_options(given: Mapping[str, Any], file: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of a run: the command line's, else the config file's, else the data set's default, else the table's.

    Args:
        given: The command line's values (``None`` where a flag was not given), with ``model``.
        file: :func:`read_config`'s options.

    Raises:
        CommandError: no model is named.
    """
    merged = {**file, **{k: v for k, v in given.items() if v is not None}}
    model = merged.get("model")
    if model is None:
        raise CommandError(
            "blockzoo train needs a model NAME (or a 'model' key in --config); blockzoo list shows them. "
            "Received: NAME=None"
        )
    data = merged.get("data", _BY_DEST["data"].default)
    defaults = {opt.dest: opt.default for opt in TRAIN_OPTIONS} | DATA_DEFAULTS.get(data, {})
    options = {"model": model} | {dest: merged.get(dest, default) for dest, default in defaults.items()}
    options["freeze"] = list(options["freeze"] or [])
    if options["out"] is None:
        options["out"] = str(Path("runs") / f"{model}-{data}")
    return options
