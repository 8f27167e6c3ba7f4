"""What ``blockzoo train`` and ``blockzoo evaluate`` build: the data, the model that fits them, the run."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from blockzoo._cli.options import RESUME_OVERRIDES, TRAIN_OPTIONS, CommandError, one_line
from blockzoo.errors import CheckpointError, DatasetNotFoundError
from blockzoo.models import create_model, load_weights
from blockzoo.models._registry import model_input_size, model_min_input_size, model_signature

if TYPE_CHECKING:
    from blockzoo.data import DataBundle, DatasetInfo

__all__ = [
    "BAD_INPUT",
    "BUILT_IN_DATA",
    "MAX_DIGITS_SIDE",
    "bad_input",
    "build_model",
    "load_bundle",
    "load_weights_from",
    "model_options_for",
    "plan_for",
    "read_run",
    "resume_options",
]

#: Data sets that ship with blockzoo's dependencies (scikit-learn's 8x8 digits). They need no ``--data-dir``, and
#: they are resized to a model's input size (at most :data:`MAX_DIGITS_SIDE`) when its builder takes no
#: ``img_size``, so that CIFAR-shaped models (tutorial_cnn, resnet20) train on them unchanged. The torchvision sets
#: keep their size, and a model that does not fit them is reported by ``fit`` before the first step.
BUILT_IN_DATA = ("digits",)

#: The largest side the digits are enlarged to. 8x8 images gain nothing from more pixels, while 1,797 copies at
#: 224x224 take over a gigabyte. The zoo's models for 224x224 images pool globally and run at 64; lenet5 and
#: tutorial_cnn need exactly 32, below it; inception_v3 needs 75, above it (its recorded ``min_input_size``).
#: ``fit`` checks the model against a first batch all the same.
MAX_DIGITS_SIDE = 64

#: Exceptions that mean "the input is wrong" while a run is built; they become one line and exit status 2.
BAD_INPUT = (ValueError, TypeError, FileNotFoundError, CheckpointError)


@contextmanager
def bad_input(what: str = "") -> Iterator[None]:
    """Turn the errors that bad input causes into :class:`CommandError` (a missing extra into exit status 1)."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except BAD_INPUT as err:
        raise CommandError(prefix + str(err)) from err
    except ImportError as err:
        raise CommandError(str(err), status=1) from err


def _side(size: int | tuple[int, ...]) -> int | tuple[int, ...]:
    """An image size as one int when it is square."""
    if isinstance(size, int):
        return size
    return size[0] if len(set(size)) == 1 else tuple(size)


def plan_for(model: str, data: str) -> dict[str, Any]:
    """The options of :func:`blockzoo.data.load_data` that make ``data`` fit ``model``.

    Native size and channels, unless the data set is resizable and the
    builder takes no ``img_size``: then the model's default input size (a
    side of at most :data:`MAX_DIGITS_SIDE`, unless the model's
    ``min_input_size`` is larger) and channel count.
    """
    if data in BUILT_IN_DATA and "img_size" not in model_signature(model).parameters:
        channels, *size = model_input_size(model)
        smallest = model_min_input_size(model) or (1,) * len(size)
        side = _side(tuple(max(min(s, MAX_DIGITS_SIDE), low) for s, low in zip(size, smallest, strict=True)))
        return {"image_size": side, "channels": channels}
    return {}


def model_options_for(model: str, info: DatasetInfo) -> dict[str, Any]:
    """``in_channels``, ``num_classes`` and ``img_size`` from the data, for the ones the builder takes."""
    accepted = model_signature(model).parameters
    found = {"in_channels": info.in_channels, "num_classes": info.num_classes, "img_size": _side(info.image_size)}
    return {key: value for key, value in found.items() if key in accepted}


def load_bundle(options: Mapping[str, Any], data_options: Mapping[str, Any]) -> DataBundle:
    """The data set ``options["data"]`` split into training and validation (the split is the same every time)."""
    from blockzoo.data import load_data

    data, folder = options["data"], options["data_dir"]
    if folder is None and data not in BUILT_IN_DATA:
        raise CommandError(
            f"--data {data} needs --data-dir DIR, the folder that holds it (add --download to fetch it there). "
            "Received: --data-dir=None"
        )
    with bad_input(f"--data {data}"):
        try:
            return load_data(data, root=folder, download=options["download"], **data_options)
        except DatasetNotFoundError as err:
            raise CommandError(f"--data {data}: {_not_found(err, folder)}") from err


def _not_found(err: DatasetNotFoundError, folder: str) -> str:
    """The data floor's message (the folder, the files), with the flag that downloads them instead of its keyword."""
    found, hint, _ = str(err).partition(" Pass download=True")
    if not hint:  # a message of another form: keep it whole, and still name the flag
        found = str(err).rstrip(".") + "."
    return f"{found} Add --download to download it into --data-dir. Received: --data-dir={folder!r}"


def build_model(
    name: str, model_options: Mapping[str, Any], *, pretrained: str | None = None, init_weights: str | None = None
) -> nn.Module:
    """The model: pretrained (its classifier reset for the data's classes) or fresh, then ``init_weights`` if given.

    ``init_weights`` loads strictly: every key and shape must match the model.
    """
    with bad_input():
        if pretrained is None:
            model = create_model(name, **model_options)
        else:
            kept = {k: v for k, v in model_options.items() if k != "num_classes"}
            model = create_model(name, pretrained=pretrained, **kept)
            num_classes = model_options.get("num_classes")
            if num_classes is not None and getattr(model, "num_classes", num_classes) != num_classes:
                model.reset_classifier(num_classes)  # type: ignore[operator]
                model.model_config = {**model.model_config, "num_classes": num_classes}  # type: ignore[assignment,dict-item]
    if init_weights is not None:
        load_weights_from(model, init_weights, flag="--init-weights")
    return model


def load_weights_from(model: nn.Module, path: str, *, flag: str) -> None:
    """Load weights strictly, first checking the model name that a safetensors file records.

    Raises:
        CommandError: the file records another model, or the weights do not
            fit (the first of the key problems that :func:`~blockzoo.load_weights` lists).
    """
    saved, name = _saved_model_name(path), getattr(model, "model_name", None)
    if saved is not None and name is not None and saved != name:
        raise CommandError(
            f"{flag} must be weights of {name!r}; {path} holds weights of {saved!r} (its metadata says so). "
            f"Received: {flag}={path!r}"
        )
    try:
        load_weights(model, path)
    except (CheckpointError, ValueError) as err:
        message = one_line(err)
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + " [...]"
        raise CommandError(f"{flag} {path}: {message}") from err


#: A checkpoint error lists every key that does not fit; on a terminal the first ones say enough.
_MAX_MESSAGE = 600


def _saved_model_name(path: str) -> str | None:
    """The model name that :func:`~blockzoo.save_weights` records in a safetensors file, if it is readable."""
    if not path.endswith(".safetensors") or not Path(path).is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as file:
            return (file.metadata() or {}).get("model")
    except (SafetensorError, OSError):
        return None  # load_weights reports what is wrong with the file


def read_run(folder: str) -> dict[str, Any]:
    """The ``run`` entry of a training folder's ``config.json``: the options, data options and model options."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CommandError(
            f"--resume needs a folder that blockzoo train wrote (with config.json and state.pt). Received: --resume={folder!r}"
        )
    try:
        run = json.loads(path.read_text())["run"]
        if not {"options", "data_options", "model_options"} <= set(run):
            raise KeyError("options")
    except (ValueError, KeyError, TypeError) as err:
        raise CommandError(
            f"--resume: {path} does not describe a blockzoo train run (no 'run' entry with its options). Received: --resume={folder!r}"
        ) from err
    return dict(run)


def resume_options(run: Mapping[str, Any], given: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """The run's options with the few that a resumed run may change (``RESUME_OVERRIDES``) taken from the command line.

    Raises:
        CommandError: the command line names another model, or changes an option that decides the run.
    """
    options = dict(run["options"])
    model = given.get("model")
    if model is not None and model != options["model"]:
        raise CommandError(
            f"--resume {folder} continues a run of {options['model']!r}; leave NAME out or give that. Received: NAME={model!r}"
        )
    fixed = [
        f"{opt.flag}={given[opt.dest]!r}"
        for opt in TRAIN_OPTIONS
        if given.get(opt.dest) is not None and opt.dest not in RESUME_OVERRIDES
    ]
    if fixed:
        allowed = ", ".join("--" + d.replace("_", "-") for d in RESUME_OVERRIDES)
        raise CommandError(
            f"--resume continues the run as {folder}/config.json describes it; only {allowed} may change. "
            f"Received: {', '.join(fixed)}"
        )
    options.update({k: given[k] for k in RESUME_OVERRIDES if given.get(k) is not None})
    options["out"] = folder
    return options
