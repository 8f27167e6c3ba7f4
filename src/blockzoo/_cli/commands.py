"""``blockzoo train`` and ``blockzoo evaluate``: build the run from the options, run it, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from blockzoo._cli.options import TRAIN_OPTIONS, CommandError, read_config, resolve_options
from blockzoo._cli.runs import (
    BAD_INPUT,
    bad_input,
    build_model,
    load_bundle,
    load_weights_from,
    model_options_for,
    plan_for,
    read_run,
    resume_options,
)
from blockzoo._cli.tables import confusion_table
from blockzoo.train import Callback, History, Trainer

if TYPE_CHECKING:
    from blockzoo.data import DataBundle
    from blockzoo.train._distributed import Distributed

__all__ = ["evaluate_command", "train_command"]

#: fit's keyword for each option whose name differs; ``None``: the option is not fit's.
_FIT_NAMES: dict[str, str | None] = {
    "model": None,
    "data": None,
    "data_dir": None,
    "download": None,
    "pretrained": None,
    "init_weights": None,
    "workers": "num_workers",
    "out": "out_dir",
}


def _fit_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {}
    for key, value in options.items():
        name = _FIT_NAMES.get(key, key)
        if name is not None:
            kwargs[name] = value
    kwargs["freeze"] = kwargs["freeze"] or None
    return kwargs


def train_command(args: argparse.Namespace) -> int:
    """Train a model as the options say; resume a stopped run with ``--resume``."""
    given = {"model": args.model} | {opt.dest: getattr(args, opt.dest) for opt in TRAIN_OPTIONS}
    stopped: dict[str, Any] | None = None
    if args.resume is None:
        options = resolve_options(given, read_config(args.config) if args.config is not None else {})
    else:
        if args.config is not None:
            raise CommandError(
                f"--resume takes every option from {args.resume}/config.json; leave --config out. "
                f"Received: --config={args.config!r}"
            )
        stopped = read_run(args.resume)
        options = resume_options(stopped, given, args.resume)
    if args.print_config:
        print(json.dumps(options, indent=2))
        return 0
    from blockzoo.train._distributed import process_group

    # under torchrun the processes agree on the seed and the folder before any of them writes; fit uses the group
    with process_group(options["device"]) as group:
        return _train_in_group(args, options, stopped, group)


def _train_in_group(
    args: argparse.Namespace, options: dict[str, Any], stopped: dict[str, Any] | None, group: Distributed | None
) -> int:
    """The rest of :func:`train_command`, in each process of a torchrun group (``group``) or in the only one."""
    main = group is None or group.is_main
    note = None if options["seed"] is None else f"seed {options['seed']}"
    if args.resume is None:
        _refuse_a_run_folder(options["out"])
        if group is not None:
            group.barrier()  # every process has looked at the folder before rank 0 writes config.json there
        if options["seed"] is None:  # drawn and recorded, so that --resume rebuilds the same run
            seed = secrets.randbelow(_SEEDS)
            options["seed"] = seed if group is None else group.broadcast_int(seed)  # rank 0's, in every process
            note = f"seed {options['seed']} (pass --seed to choose)"
    name = options["model"]
    if options["seed"] is not None:  # None: a run recorded before seeds were drawn
        torch.manual_seed(options["seed"])  # the initial weights too, not only what fit seeds
    with _rank_0_first(group):  # the data and the weights are downloaded once, into the folder all share
        if args.resume is None:
            data_options = plan_for(name, options["data"])
            bundle = load_bundle(options, data_options)
            model_options = model_options_for(name, bundle.info)
            pretrained, init = options["pretrained"], options["init_weights"]
            model = build_model(name, model_options, pretrained=pretrained, init_weights=init)
        else:  # as the run was built; the weights come back from its state
            recorded = stopped if stopped is not None else read_run(args.resume)  # read above, always
            data_options, model_options = recorded["data_options"], recorded["model_options"]
            bundle = load_bundle(options, data_options)
            model = build_model(name, model_options)
    run = {"options": options, "data_options": data_options, "model_options": model_options}
    return _fit(model, bundle, options, run, resume=args.resume, note=note if main else None, main=main)


@contextlib.contextmanager
def _rank_0_first(group: Distributed | None) -> Iterator[None]:
    """Run the block in rank 0 first, then in the other processes, which find what it downloaded in place."""
    if group is not None and not group.is_main:
        group.barrier()
    yield
    if group is not None and group.is_main:  # not after a failure: torchrun then stops the waiting processes
        group.barrier()


#: The files that mark a folder as a run's: a fresh run there would mix its files with the earlier run's.
_RUN_MARKERS = ("config.json", "state.pt")


def _refuse_a_run_folder(out: str) -> None:
    """Refuse an ``--out`` that holds a run: only ``--resume`` continues one."""
    found = [name for name in _RUN_MARKERS if (Path(out) / name).is_file()]
    if found:
        raise CommandError(
            f"--out {out} already holds a run ({', '.join(found)}): pass --resume {out} to continue it, or another "
            f"--out (or remove the folder). Received: --out={out!r}"
        )


def _stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Each file's inode, modification time and size: fit replaces a file it writes, so all three tell a new one."""
    if not folder.is_dir():
        return {}
    stamps = {}
    for path in folder.iterdir():
        if path.is_file():
            stat = path.stat()
            stamps[path.name] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return stamps


#: Seeds drawn when --seed is not given: below 2**31, so that every tool that takes a seed takes them.
_SEEDS = 2**31


class _Started(Callback):
    """Tells whether fit got past its checks and set-up to the first batch, and prints ``note`` then."""

    def __init__(self, note: str | None = None) -> None:
        self.started = False
        self.note = note

    def on_fit_start(self, trainer: Trainer) -> None:
        self.started = True
        if self.note is not None:
            print(self.note, flush=True)


def _fit(
    model: nn.Module,
    bundle: DataBundle,
    options: Mapping[str, Any],
    run: dict[str, Any],
    *,
    resume: str | None,
    note: str | None,
    main: bool = True,
) -> int:
    from blockzoo.errors import NonFiniteLossError
    from blockzoo.train import fit

    started = _Started(note)
    out = Path(options["out"])
    before = _stamps(out)
    try:
        history = fit(
            model,
            bundle.train,
            val_data=bundle.val,
            resume=resume,
            config=run,
            callbacks=[started],
            **_fit_kwargs(options),
        )
    except BAD_INPUT as err:
        if started.started:  # training had begun: a bug, not bad input; let its traceback show
            raise
        raise CommandError(str(err)) from err  # fit refused an option, or the model does not fit the data
    except NonFiniteLossError as err:
        raise CommandError(str(err), status=1) from err
    except KeyboardInterrupt:  # fit saved the state at the current step and said where
        resumable = (out / "state.pt").is_file()
        tail = f"; continue with: blockzoo train --resume {options['out']}" if resumable else ""
        print(f"blockzoo: interrupted{tail}", file=sys.stderr)
        return 130
    if not main:  # rank 0 reports for every process
        return 0
    print(_best_line(history))
    wrote = sorted(name for name, stamp in _stamps(out).items() if before.get(name) != stamp)
    print(f"wrote {options['out']}: {', '.join(wrote)}")
    return 0


def _best_line(history: History) -> str:
    """The best epoch and its metrics; the last epoch's when none recorded the monitored metric as a number."""

    def shown(row: Mapping[str, float]) -> str:
        metrics = ", ".join(f"{k} {row[k]:.4f}" for k in ("val_accuracy", "val_loss", "train_loss") if k in row)
        return f"epoch {row['epoch']} of {len(history.rows)}: {metrics}"

    if not history.rows:
        return "best: none (no epoch finished)"
    try:
        return f"best: {shown(history.best())}"
    except KeyError:  # every value of the monitored metric is NaN, or there is none
        return f"best: none (no epoch recorded {history.monitor} as a number); last: {shown(history.rows[-1])}"


def evaluate_command(args: argparse.Namespace) -> int:
    """Load weights into a model and report loss, accuracy and the confusion matrix on the validation split."""
    from blockzoo.train import evaluate

    options = {"data": args.data, "data_dir": args.data_dir, "download": args.download}
    bundle = load_bundle(options, plan_for(args.model, args.data))
    model = build_model(args.model, model_options_for(args.model, bundle.info))
    load_weights_from(model, args.weights, flag="--weights")
    with bad_input():
        result = evaluate(model, bundle.val, batch_size=args.batch_size, device=args.device, confusion_matrix=True)
    matrix = cast("torch.Tensor", result.confusion_matrix)  # asked for above
    total = int(matrix.sum())
    correct = int(matrix.diagonal().sum())
    print(f"{args.model} on {args.data}, validation split ({total} samples)")
    print(f"loss      {result.loss:.4f}")
    print(f"accuracy  {result.accuracy:.4f} ({correct} of {total})")
    print("confusion matrix (rows: true class, columns: predicted)")
    print(confusion_table(matrix, bundle.info.classes))
    return 0
