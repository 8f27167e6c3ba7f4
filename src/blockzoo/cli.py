"""The ``blockzoo`` command: list, describe and summarise the zoo's models, train one on a data set, evaluate weights.

``blockzoo --help`` lists the commands and ``blockzoo train --help`` the
options of one. The console script and ``python -m blockzoo`` call
:func:`main`; so can Python code, with the arguments as a list.

Example:
    >>> from blockzoo.cli import main
    >>> main(["list", "resnet2*"])
    name      family        parameters  input
    resnet20  cifar_resnet     269,722  3x32x32
    0
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from blockzoo._cli.checks import Check, IntCheck
from blockzoo._cli.options import MODEL, TRAIN_OPTIONS, CommandError, Option, default_text
from blockzoo._cli.tables import format_table
from blockzoo._names import check_globs_match, close_matches, format_choices
from blockzoo._version import __version__
from blockzoo.models import list_models, model_info
from blockzoo.models._registry import model_input_size, model_signature

__all__ = ["main"]

_TRAIN_EPILOG = """\
examples:
  blockzoo train simple_cnn                   the digits, 10 epochs: seconds on a CPU
  blockzoo train resnet20 --data cifar10 --data-dir data --download --scheduler cosine
  blockzoo train simple_cnn --config run.toml --lr 1e-3    flags override the file
  blockzoo train --resume runs/simple_cnn-digits           continue a stopped run

--config FILE holds the options as JSON or TOML, keyed like the long flags
(batch_size or batch-size) plus model; optimizer and scheduler may be tables
with a name and the factory's options, e.g. {"name": "sgd", "momentum": 0.9}.
--print-config prints the options a run would use, as such a file.

The model is built for the data. When its builder takes no img_size, the
digits are enlarged to its input size, at most 64x64 (resnet18 trains on
64x64 digits) unless it needs more (inception_v3 trains on 75x75 digits).
The torchvision sets validate on their test split, which picks best.safetensors.

--out receives config.json, history.json, best.safetensors and
last.safetensors (weights), state.pt (to resume) and curves.png; a new run
refuses a folder that holds a run (continue that one with --resume DIR).
Ctrl-C saves the state at the current step and exits with status 130."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``blockzoo: error: ...``) that records its long flags for close matches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.flags: list[str] = ["--help"]

    def option(self, group: Any, *names: str, **kwargs: Any) -> None:
        """``group.add_argument(*names, **kwargs)``, remembering the long flags."""
        group.add_argument(*names, **kwargs)
        self.flags.extend(n for n in names if n.startswith("--"))
        if kwargs.get("action") is argparse.BooleanOptionalAction:
            self.flags.extend("--no-" + n[2:] for n in names if n.startswith("--"))

    def error(self, message: str) -> NoReturn:
        # "argument --epochs: --epochs must be ..." says the flag twice; our checks name it already.
        raise CommandError(re.sub(r"^argument (--[\w-]+): (?=\1 )", "", message))


def _argtype(flag: str, check: Check) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return check.text(flag, text)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _add_option(parser: _Parser, group: Any, opt: Option, *, fill_default: bool = False) -> None:
    """Add ``opt``'s flag; its argparse default is ``None`` (not given) unless ``fill_default``."""
    text = opt.help if opt.default is None else f"{opt.help} (default: {default_text(opt)})"
    default = opt.default if fill_default else None
    if opt.kind == "switch":
        parser.option(group, opt.flag, action=argparse.BooleanOptionalAction, default=default, help=text)
    elif opt.kind == "repeat":
        parser.option(
            group, opt.flag, action="append", type=_argtype(opt.flag, opt.check), metavar=opt.metavar, help=opt.help
        )
    else:
        parser.option(
            group, opt.flag, type=_argtype(opt.flag, opt.check), metavar=opt.metavar, default=default, help=text
        )


def _list(args: argparse.Namespace) -> int:
    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = list_models(pattern)
    if not names:
        try:
            check_globs_match("PATTERN", [pattern], list_models(), what="model", received=args.pattern)
        except ValueError as err:
            raise CommandError(str(err)) from err
    rows = []
    for name in names:
        info = model_info(name)
        rows.append([name, info.family, f"{info.num_params:,}", "x".join(map(str, info.input_size))])
    print(format_table(["name", "family", "parameters", "input"], rows, right={2}))
    return 0


def _smallest(size: tuple[int, int] | None) -> str:
    return "" if size is None else f" ({'x'.join(map(str, size))} at the least)"


def _info(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    facts = [
        ["family", info.family],
        ["paper", info.paper or "-"],
        ["input size", "x".join(map(str, info.input_size)) + _smallest(info.min_input_size)],
        ["parameters", f"{info.num_params:,}"],
    ]
    options = [
        [name, _annotation(p), repr(p.default) if p.default is not p.empty else "(required)"]
        for name, p in model_signature(args.model).parameters.items()
        if name not in ("device", "dtype")
    ]
    print(info.name)
    print(_indent(format_table(["", ""], facts).split("\n", 1)[1]))
    print(f"  options (blockzoo.create_model({info.name!r}, ...)):")
    print(_indent(format_table(["name", "type", "default"], options), 4))
    return 0


def _indent(text: str, spaces: int = 2) -> str:
    return "\n".join(" " * spaces + line for line in text.split("\n"))


def _annotation(p: inspect.Parameter) -> str:
    if p.annotation is p.empty:
        return ""
    return p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)


def _summary(args: argparse.Namespace) -> int:
    from blockzoo._cli.runs import bad_input
    from blockzoo.inspect import summary
    from blockzoo.models import create_model

    size = tuple(args.input_size) if args.input_size is not None else model_input_size(args.model)
    accepted = model_signature(args.model).parameters
    options: dict[str, Any] = {}
    if "in_channels" in accepted:
        options["in_channels"] = size[0]
    if "img_size" in accepted and len(set(size[1:])) == 1:
        options["img_size"] = size[1]
    with bad_input():
        model = create_model(args.model, **options)
        result = summary(model, (1, *size), depth=args.depth)
    print(result.to_markdown() if args.markdown else result)
    return 0


def _summary_parser(commands: Any) -> _Parser:
    parser: _Parser = commands.add_parser(
        "summary",
        help="show a model layer by layer",
        description="A model's layers with their output shapes, parameters and FLOPs, and the totals\n"
        "(parameters, memory, activation memory of a training step, FLOPs and MACs).",
    )
    parser.option(parser, "model", metavar="NAME", type=_argtype("NAME", MODEL), help="a model from blockzoo list")
    parser.option(
        parser,
        "--input-size",
        nargs=3,
        type=_argtype("--input-size", IntCheck(1)),
        metavar=("C", "H", "W"),
        help="the size of one input, batch 1 (default: the model's own)",
    )
    parser.option(
        parser,
        "--depth",
        type=_argtype("--depth", IntCheck(1)),
        default=3,
        metavar="N",
        help="levels of layers shown (default: 3)",
    )
    parser.option(parser, "--markdown", action="store_true", help="print a markdown table")
    return parser


def _train(args: argparse.Namespace) -> int:
    from blockzoo._cli.commands import train_command

    return train_command(args)


def _evaluate(args: argparse.Namespace) -> int:
    from blockzoo._cli.commands import evaluate_command

    return evaluate_command(args)


def _train_parser(commands: Any) -> _Parser:
    train: _Parser = commands.add_parser(
        "train",
        help="train a model on a data set",
        description="Train a zoo model on a data set, with progress, checkpoints, a history and\ncurves.",
        epilog=_TRAIN_EPILOG,
    )
    train.option(
        train, "model", nargs="?", metavar="NAME", type=_argtype("NAME", MODEL), help="a model from blockzoo list"
    )
    groups = {
        "data": train.add_argument_group("data"),
        "training": train.add_argument_group("training"),
        "model": train.add_argument_group("model and weights"),
        "hardware": train.add_argument_group("hardware"),
        "output": train.add_argument_group("configuration and output"),
    }
    for opt in TRAIN_OPTIONS:
        _add_option(train, groups[opt.group], opt)
    out = groups["output"]
    train.option(out, "--config", metavar="FILE", help="read the options from a JSON or TOML file; flags override it")
    train.option(
        out, "--resume", metavar="DIR", help="continue the stopped run in DIR, as its config.json describes it"
    )
    train.option(out, "--print-config", action="store_true", help="print the options as a --config file and exit")
    return train


def _evaluate_parser(commands: Any) -> _Parser:
    evaluate: _Parser = commands.add_parser(
        "evaluate",
        help="evaluate weights on a data set's validation split",
        description="Load weights into a model and print the loss, the accuracy and the confusion\n"
        "matrix on the validation split (the split that blockzoo train validates on).",
    )
    evaluate.option(evaluate, "model", metavar="NAME", type=_argtype("NAME", MODEL), help="a model from blockzoo list")
    evaluate.option(evaluate, "--weights", metavar="FILE", required=True, help="a .safetensors or .pt file of weights")
    by_dest = {opt.dest: opt for opt in TRAIN_OPTIONS}
    for opt in (*(by_dest[d] for d in ("data", "data_dir", "download", "device")), _EVAL_BATCH_SIZE):
        _add_option(evaluate, evaluate, opt, fill_default=True)
    return evaluate


#: Evaluation keeps no activations for a backward pass: larger batches than training's.
_EVAL_BATCH_SIZE = Option("batch_size", IntCheck(1), "samples per batch", "data", 256, "N")


def _parser() -> tuple[_Parser, dict[str, _Parser]]:
    parser = _Parser(
        prog="blockzoo",
        description="blockzoo: composable PyTorch blocks, a model zoo, and the tools to train its models.",
        epilog="blockzoo COMMAND --help describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"blockzoo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    listing: _Parser = commands.add_parser("list", help="list the models", description="List the zoo's models.")
    listing.option(
        listing,
        "pattern",
        nargs="?",
        default="*",
        metavar="PATTERN",
        help="a name glob such as 'resnet*'; plain text lists the names that contain it",
    )
    listing.set_defaults(run=_list)
    info: _Parser = commands.add_parser(
        "info", help="describe a model", description="A model's paper, input size, parameters and options."
    )
    info.option(info, "model", metavar="NAME", type=_argtype("NAME", MODEL), help="a model from blockzoo list")
    info.set_defaults(run=_info)
    summary = _summary_parser(commands)
    summary.set_defaults(run=_summary)
    train = _train_parser(commands)
    train.set_defaults(run=_train)
    evaluate = _evaluate_parser(commands)
    evaluate.set_defaults(run=_evaluate)
    return parser, {"list": listing, "info": info, "summary": summary, "train": train, "evaluate": evaluate}


def _unrecognized(extra: Sequence[str], command: str, parser: _Parser) -> str:
    first = extra[0]
    if not first.startswith("-"):
        return f"blockzoo {command} takes no further argument {first!r}; blockzoo {command} --help shows its usage"
    flag = first.split("=", 1)[0]
    hint = close_matches(flag, parser.flags)
    did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
    return f"unrecognized argument {flag}.{did_you_mean} blockzoo {command} --help lists them all"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``blockzoo`` command and return its exit status.

    Bad input (unknown names, bad numbers, missing files) prints one line
    ``blockzoo: error: ...`` and returns 2; Ctrl-C returns 130.

    Args:
        argv: The arguments after ``blockzoo`` (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status: 0 on success, 1 when training fails (a loss that is
        not finite), 2 for bad input, 130 when interrupted, 141 when the
        program reading the output closed it (``blockzoo list | head -3``).

    Example:
        >>> from blockzoo.cli import main
        >>> main(["train", "simple_cnn", "--epochs", "0"])
        2
    """
    parser, commands = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            raise CommandError(
                "name a command: list, info, summary, train or evaluate (blockzoo --help describes them). Received: COMMAND=None"
            )
        if extra:
            raise CommandError(_unrecognized(extra, args.command, commands[args.command]))
        status: int = args.run(args)
    except CommandError as err:
        print(f"blockzoo: error: {err}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print("blockzoo: interrupted", file=sys.stderr)
        return 130
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except BrokenPipeError:  # the reader went away (`blockzoo list | head -3`): stop quietly, as Unix tools do
        _silence_stdout()
        return 128 + 13  # the status of a process ended by SIGPIPE
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):  # stdout is not a file (a test's capture)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
