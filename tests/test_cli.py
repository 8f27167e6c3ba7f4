"""The ``blockzoo`` command: run in process through ``main`` (and twice as a real process)."""

from __future__ import annotations

import inspect
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import blockzoo
import blockzoo.data
import blockzoo.models._torchvision
import blockzoo.train
from blockzoo._cli.runs import build_model, plan_for
from blockzoo._cli.tables import confusion_table
from blockzoo.cli import main
from blockzoo.data import digits, load_data
from blockzoo.errors import DatasetNotFoundError, InputError, NonFiniteLossError
from blockzoo.models._registry import model_signature
from blockzoo.models._simple import simple_cnn
from blockzoo.train import History, evaluate


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command that must fail on its input: status 2 and one line ``blockzoo: error: ...``; the message."""
    status, out, err = run(capsys, *argv)
    assert status == 2, (status, out, err)
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("blockzoo: error: ")
    return err[len("blockzoo: error: ") : -1]


# ---------------------------------------------------------------- list, info, version, help


def test_list_shows_every_model_with_family_parameters_and_input(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list")
    assert status == 0
    header, *lines = out.splitlines()
    assert header.split() == ["name", "family", "parameters", "input"]
    assert [line.split()[0] for line in lines] == blockzoo.list_models()
    for line in lines:
        name, family, params, size = line.split()
        info = blockzoo.model_info(name)
        assert (family, int(params.replace(",", ""))) == (info.family, info.num_params)
        assert tuple(int(s) for s in size.split("x")) == info.input_size
    # the parameter counts are right-aligned: every one ends where the header's column ends
    end = header.index("parameters") + len("parameters")
    assert all(re.match(r"[\d,]+$", line[:end].split()[-1]) for line in lines)


def test_list_filters_by_glob(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", "resnet1*")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == blockzoo.list_models("resnet1*")


def test_list_of_plain_text_shows_the_names_that_contain_it(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", "vgg1")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [n for n in blockzoo.list_models() if "vgg1" in n]


def test_list_of_a_glob_that_matches_nothing_suggests_names(capsys: pytest.CaptureFixture[str]) -> None:
    message = fails(capsys, "list", "resnet9*")
    assert message.startswith("PATTERN glob 'resnet9*' matches no model. Did you mean ")
    assert message.endswith("Received: PATTERN='resnet9*'")


def test_info_shows_the_paper_input_size_parameters_and_the_builders_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "info", "simple_cnn")
    assert status == 0
    info = blockzoo.model_info("simple_cnn")
    assert out.splitlines()[0] == "simple_cnn"
    assert f"paper       {info.paper}" in out
    assert "input size  3x32x32\n" in out
    assert "input size  3x299x299 (75x75 at the least)\n" in run(capsys, "info", "inception_v3")[1]
    assert f"parameters  {info.num_params:,}" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[7:]}
    expected = {n: p for n, p in inspect.signature(simple_cnn).parameters.items() if n not in ("device", "dtype")}
    assert list(rows) == list(expected)
    for name, param in expected.items():
        assert " ".join(rows[name][2:]) == repr(param.default), name
    assert rows["img_size"][1] == "int"


def test_info_of_an_unknown_model_suggests_close_names(capsys: pytest.CaptureFixture[str]) -> None:
    message = fails(capsys, "info", "resnet21")
    assert message.startswith("argument NAME: Unknown model 'resnet21'. Did you mean ")
    assert "'resnet20'" in message


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version")[:2] == (0, f"blockzoo {blockzoo.__version__}\n")
    for command in ("list", "info", "summary", "train", "evaluate"):
        status, out, _ = run(capsys, command, "--help")
        assert status == 0
        assert out.startswith(f"usage: blockzoo {command}")
    _, out, _ = run(capsys, "train", "--help")
    out = " ".join(out.split())  # argparse wraps the help to the terminal's width
    assert "(default: 10 on digits, else 30)" in out
    assert "(default: 0.003 on digits, else 0.001)" in out
    assert "digits are enlarged to its input size, at most 64x64" in out
    assert "drawn and recorded in config.json when not given" in out
    assert "The torchvision sets validate on their test split, which picks best.safetensors." in out


# ---------------------------------------------------------------- summary


def test_summary_of_resnet20_shows_the_papers_parameter_count(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    status, out, err = run(capsys, "summary", "resnet20")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "ZooModel 'resnet20': input [1, 3, 32, 32] -> output [1, 10], in train mode"
    assert "parameters   269,722 (trainable 269,722, frozen 0)" in lines
    table = lines[1 : lines.index("parameters   269,722 (trainable 269,722, frozen 0)")]
    assert max(len(line) for line in table) <= 100
    assert out == str(blockzoo.summary(blockzoo.create_model("resnet20"), (1, 3, 32, 32))) + "\n"


def test_summary_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "summary", "simple_cnn", "--input-size", "1", "64", "64", "--depth", "1", "--markdown")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("ZooModel 'simple_cnn': input [1, 1, 64, 64] -> output [1, 10]")
    assert lines[2].startswith("| name | type | output shape | params |")
    assert [line.split(" | ")[0] for line in lines[4:6]] == ["| features", "| head"]
    expected = blockzoo.count_params(blockzoo.create_model("simple_cnn", in_channels=1, img_size=64))
    assert f"- **parameters**: {expected:,} (trainable {expected:,}, frozen 0)" in lines


# ---------------------------------------------------------------- bad input: status 2, one line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "simple_cnn", "--epochs", "0"], "--epochs must be a positive int. Received: --epochs=0"),
        (["train", "simple_cnn", "--epochs", "2.5"], "--epochs must be a positive int. Received: --epochs='2.5'"),
        (
            ["train", "simple_cnn", "--batch-size", "-3"],
            "--batch-size must be a positive int. Received: --batch-size=-3",
        ),
        (["train", "simple_cnn", "--lr", "-1"], "--lr must be a finite number > 0. Received: --lr=-1.0"),
        (["train", "simple_cnn", "--lr", "nan"], "--lr must be a finite number > 0. Received: --lr=nan"),
        (["train", "simple_cnn", "--lr", "inf"], "--lr must be a finite number > 0. Received: --lr=inf"),
        (["train", "simple_cnn", "--lr", "fast"], "--lr must be a finite number > 0. Received: --lr='fast'"),
        (["train", "simple_cnn", "--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0."),
        (["train", "simple_cnn", "--ema", "1"], "--ema must be a number in (0, 1). Received: --ema=1.0"),
        (["train", "simple_cnn", "--label-smoothing", "1"], "--label-smoothing must be a number in [0, 1)."),
        (["train", "simple_cnn", "--grad-clip", "0"], "--grad-clip must be a finite number > 0."),
        (["train", "simple_cnn", "--accumulate", "0"], "--accumulate must be a positive int."),
        (["train", "simple_cnn", "--workers", "-1"], "--workers must be a non-negative int. Received: --workers=-1"),
        (["train", "simple_cnn", "--seed", "-1"], "--seed must be a non-negative int."),
        (["train", "simple_cnn", "--amp", "fp8"], "--amp must be one of 'bf16', 'fp16'. Received: --amp='fp8'"),
        (["train", "simple_cnn", "--pretrained", "imagenet"], "--pretrained must be one of 'torchvision'."),
        (["train", "simple_cnn", "--device", "gpu"], "--device must be 'auto' or a torch device such as 'cpu'"),
        (["train", "simple_cnm"], "argument NAME: Unknown model 'simple_cnm'. Did you mean 'simple_cnn'?"),
        (["train", "simple_cnn", "--optimizer", "adamx"], "Unknown optimizer 'adamx'. Did you mean 'adamax'"),
        (["train", "simple_cnn", "--scheduler", "cosin"], "Unknown scheduler 'cosin'. Did you mean 'cosine'?"),
        (["train", "simple_cnn", "--lrr", "0.1"], "unrecognized argument --lrr. Did you mean '--lr'?"),
        (["train", "simple_cnn", "--no-channels-lst"], "Did you mean '--no-channels-last'"),
        (["train", "simple_cnn", "resnet20"], "blockzoo train takes no further argument 'resnet20'"),
        (
            ["train"],
            "blockzoo train needs a model NAME (or a 'model' key in --config); blockzoo list shows them. "
            "Received: NAME=None",
        ),
        (
            [],
            "name a command: list, info, summary, train or evaluate (blockzoo --help describes them). Received: COMMAND=None",
        ),
        (["summary", "resnet20", "--depth", "0"], "--depth must be a positive int. Received: --depth=0"),
        (["summary", "resnet20", "--input-size", "3", "32"], "argument --input-size: expected 3 arguments"),
        (["summary", "resnet20", "--input-size", "3", "0", "32"], "--input-size must be a positive int."),
        (["summary", "resnt20"], "argument NAME: Unknown model 'resnt20'. Did you mean 'resnet20'"),
        (["summary", "simple_cnn", "--input-size", "3", "4", "4"], "img_size must be at least 8 for 3 pooling stages"),
        (["evaluate", "simple_cnn"], "the following arguments are required: --weights"),
        (["train", "--resume", "nowhere"], "--resume needs a folder that blockzoo train wrote"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert message in fails(capsys, *argv)


# ---------------------------------------------------------------- config files


def resolved(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status, out, err = run(capsys, "train", *argv, "--print-config")
    assert status == 0, err
    options: dict[str, object] = json.loads(out)
    return options


def test_print_config_shows_the_defaults_of_the_digits(capsys: pytest.CaptureFixture[str]) -> None:
    options = resolved(capsys, "simple_cnn")
    assert options["model"] == "simple_cnn"
    assert (options["data"], options["epochs"], options["lr"], options["optimizer"]) == ("digits", 10, 0.003, "adamw")
    assert options["out"] == str(Path("runs") / "simple_cnn-digits")
    assert (options["freeze"], options["channels_last"], options["seed"]) == ([], False, None)


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_config_file_gives_options_and_flags_override_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"model": "resnet20", "batch-size": 32, "lr": 0.01, "channels_last": True}))
    else:
        path.write_text('model = "resnet20"\nbatch-size = 32\nlr = 0.01\nchannels_last = true\n')
    from_file = resolved(capsys, "--config", str(path))
    assert (from_file["model"], from_file["batch_size"], from_file["lr"], from_file["channels_last"]) == (
        "resnet20",
        32,
        0.01,
        True,
    )
    overridden = resolved(capsys, "simple_cnn", "--config", str(path), "--lr", "0.5", "--no-channels-last")
    assert (overridden["model"], overridden["batch_size"], overridden["lr"]) == ("simple_cnn", 32, 0.5)
    assert overridden["channels_last"] is False
    assert overridden["out"] == str(Path("runs") / "simple_cnn-digits")


def test_config_optimizer_and_scheduler_may_be_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        'model = "simple_cnn"\nfreeze = "features.stage1.*"\n'
        '[optimizer]\nname = "sgd"\nmomentum = 0.9\n[scheduler]\nname = "cosine"\nwarmup_steps = 10\n'
    )
    options = resolved(capsys, "--config", str(path))
    assert options["optimizer"] == {"name": "sgd", "momentum": 0.9}
    assert options["scheduler"] == {"name": "cosine", "warmup_steps": 10}
    assert options["freeze"] == ["features.stage1.*"]
    assert resolved(capsys, "--config", str(path), "--freeze", "a.*", "--freeze", "b.*")["freeze"] == ["a.*", "b.*"]


def test_print_config_output_read_back_as_a_config_file_resolves_to_the_same_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = resolved(capsys, "resnet20", "--epochs", "3", "--scheduler", "onecycle", "--freeze", "features.*")
    path = tmp_path / "printed.json"
    path.write_text(json.dumps(first))
    assert resolved(capsys, "--config", str(path)) == first


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"lrr": 0.1}', ".json", "--config {path} does not take 'lrr'. Did you mean 'lr'?"),
        ('{"epochs": 0}', ".json", "--config {path}: epochs must be a positive int. Received: epochs=0"),
        ('{"epochs": 2.0}', ".json", "--config {path}: epochs must be a positive int. Received: epochs=2.0"),
        ('{"channels_last": 1}', ".json", "channels_last must be true or false. Received: channels_last=1"),
        ('{"model": "resnet"}', ".json", "Unknown model 'resnet'. Did you mean"),
        ('{"optimizer": {"momentum": 0.9}}', ".json", "optimizer as a table needs a 'name' key"),
        ('{"optimizer": {"name": "sgdd"}}', ".json", "Unknown optimizer 'sgdd'. Did you mean 'sgd'"),
        ('{"freeze": 3}', ".json", "freeze must be a glob string, a sequence of glob strings or None"),
        ('{"lr": 0.1, "lr": 0.2', ".json", "--config {path} could not be read: "),
        (
            '{"batch-size": 8, "batch_size": 16}',
            ".json",
            "--config {path} gives 'batch_size' twice (with dashes and with underscores). "
            "Received: batch-size=8, batch_size=16",
        ),
        ("[1, 2]", ".json", "--config {path} must hold a table of options. Received: list"),
        ("lr = ", ".toml", "--config {path} could not be read: "),
        ("lr: 0.1", ".yaml", "--config must be a .json or .toml file. Received: --config='{path}'"),
    ],
)
def test_bad_config_files_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"run{suffix}"
    path.write_text(content)
    assert message.format(path=path) in fails(capsys, "train", "simple_cnn", "--config", str(path))


def test_a_toml_config_before_python_3_11_is_refused_with_a_json_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "run.toml"
    path.write_text("lr = 0.1\n")
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    assert fails(capsys, "train", "simple_cnn", "--config", str(path)) == (
        "--config: TOML files need Python 3.11 or later (tomllib); use a JSON file with the same keys. "
        f"Received: --config={str(path)!r}"
    )


def test_a_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    assert fails(capsys, "train", "simple_cnn", "--config", str(missing)) == (
        f"--config names no file. Received: --config={str(missing)!r}"
    )


# ---------------------------------------------------------------- what train builds (fit replaced by a recorder)


class FitRecorder:
    """Stands in for ``blockzoo.train.fit``: records the call and writes ``config.json`` (and ``writes``) as fit does.

    Files are replaced as fit replaces them (a new file moved over the old one).
    """

    def __init__(
        self, error: BaseException | None = None, *, writes: tuple[str, ...] = (), history: History | None = None
    ) -> None:
        self.calls: list[tuple[torch.nn.Module, Any, dict[str, Any]]] = []
        self.error = error
        self.writes = writes
        default = History([{"epoch": 1, "train_loss": 0.5, "val_loss": 0.25, "val_accuracy": 0.75}])
        self.history = default if history is None else history

    def __call__(self, model: torch.nn.Module, train_data: Any, **kwargs: Any) -> History:
        self.calls.append((model, train_data, kwargs))
        out = Path(kwargs["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        for name, content in [("config.json", json.dumps({"run": kwargs["config"]})), *((n, "") for n in self.writes)]:
            (out / f".tmp-{name}").write_text(content)
            (out / f".tmp-{name}").replace(out / name)
        if self.error is not None:
            raise self.error
        for callback in kwargs["callbacks"]:
            callback.on_fit_start(None)  # fit's checks passed: the first batch is next
        return self.history


@pytest.fixture
def fit(monkeypatch: pytest.MonkeyPatch) -> FitRecorder:
    recorder = FitRecorder()
    monkeypatch.setattr(blockzoo.train, "fit", recorder)
    return recorder


@pytest.mark.parametrize(
    ("name", "image_shape", "model_config"),
    [
        # the builder takes img_size: the digits stay 8x8 and the model is built for them
        ("simple_cnn", (1, 8, 8), {"in_channels": 1, "num_classes": 10, "img_size": 8}),
        ("mlp", (1, 8, 8), {"in_channels": 1, "num_classes": 10, "img_size": 8}),
        # no img_size: the digits are resized to the model's input size, with its channels
        ("tutorial_cnn", blockzoo.model_info("tutorial_cnn").input_size, {"in_channels": 3, "num_classes": 10}),
        ("lenet5", blockzoo.model_info("lenet5").input_size, {"in_channels": 1, "num_classes": 10}),
        # a model for 224x224 images: the digits are enlarged to 64x64 at most
        ("resnet18", (3, 64, 64), {"in_channels": 3, "num_classes": 10}),
    ],
)
def test_train_builds_the_model_for_the_data(
    capsys: pytest.CaptureFixture[str],
    fit: FitRecorder,
    tmp_path: Path,
    name: str,
    image_shape: tuple[int, ...],
    model_config: dict[str, int],
) -> None:
    status, out, err = run(capsys, "train", name, "--out", str(tmp_path / "run"))
    assert status == 0, err
    ((model, train_data, kwargs),) = fit.calls
    assert model.model_name == name
    assert model.model_config == model_config
    assert tuple(train_data[0][0].shape) == tuple(image_shape)
    assert len(train_data) + len(kwargs["val_data"]) == 1797  # scikit-learn's digits
    assert "best: epoch 1 of 1: val_accuracy 0.7500, val_loss 0.2500, train_loss 0.5000" in out


#: The zoo's models whose builder takes no img_size: the digits are resized for them.
FIXED_SIZE_MODELS = [name for name in blockzoo.list_models() if "img_size" not in model_signature(name).parameters]


def test_the_digits_are_enlarged_to_a_models_input_size_and_64x64_at_most() -> None:
    for name in FIXED_SIZE_MODELS:
        channels, side, _ = blockzoo.model_info(name).input_size
        smallest = blockzoo.model_info(name).min_input_size or (1, 1)
        assert plan_for(name, "digits") == {"image_size": max(min(side, 64), smallest[0]), "channels": channels}, name
    assert plan_for("inception_v3", "digits") == {"image_size": 75, "channels": 3}  # it needs 75x75 at the least
    assert plan_for("simple_cnn", "digits") == {}  # it takes img_size: the digits stay 8x8
    assert plan_for("resnet18", "cifar10") == {}  # the torchvision sets keep their size


@pytest.mark.parametrize("name", [n for n in FIXED_SIZE_MODELS if blockzoo.model_info(n).input_size[1] > 64])
def test_every_model_for_larger_images_maps_a_64x64_batch_to_logits(name: str) -> None:
    side = plan_for(name, "digits")["image_size"]  # 64, or the model's min_input_size when larger
    with torch.device("meta"):
        model = blockzoo.create_model(name, in_channels=3, num_classes=10).eval()
        assert model(torch.empty(2, 3, side, side)).shape == (2, 10)


def test_train_passes_every_option_to_fit(capsys: pytest.CaptureFixture[str], fit: FitRecorder, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["simple_cnn", "--epochs", "3", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.1"]
    argv += ["--weight-decay", "1e-4", "--scheduler", "cosine", "--ema", "0.99", "--accumulate", "2"]
    argv += ["--label-smoothing", "0.1", "--grad-clip", "1", "--seed", "7", "--freeze", "features.stage1.*"]
    argv += ["--device", "cpu", "--channels-last", "--workers", "0", "--out", str(out)]
    assert run(capsys, "train", *argv)[0] == 0
    ((_, _, kwargs),) = fit.calls
    expected = {
        "epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4, "scheduler": "cosine",
        "ema": 0.99, "accumulate": 2, "label_smoothing": 0.1, "grad_clip": 1.0, "seed": 7,
        "freeze": ["features.stage1.*"], "device": "cpu", "channels_last": True, "compile": False, "amp": None,
        "num_workers": 0, "out_dir": str(out), "resume": None,
    }  # fmt: skip
    assert {k: kwargs[k] for k in expected} == expected
    assert kwargs["config"]["options"]["model"] == "simple_cnn"


def test_resume_calls_fit_as_the_first_run_did_and_refuses_other_options(
    capsys: pytest.CaptureFixture[str], fit: FitRecorder, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert run(capsys, "train", "tutorial_cnn", "--epochs", "3", "--lr", "0.01", "--out", str(out))[0] == 0
    assert run(capsys, "train", "--resume", str(out), "--device", "cpu")[0] == 0
    (first, first_data, before), (again, again_data, after) = fit.calls
    assert after["resume"] == str(out)
    assert after["out_dir"] == str(out)
    assert after["device"] == "cpu"
    assert {k: v for k, v in after.items() if k not in ("resume", "device", "config", "val_data", "callbacks")} == {
        k: v for k, v in before.items() if k not in ("resume", "device", "config", "val_data", "callbacks")
    }
    assert again.model_config == first.model_config
    assert type(again) is type(first)
    assert again_data[0][0].shape == first_data[0][0].shape
    # the same model name on the command line is fine; a change of what decides the run is not
    assert run(capsys, "train", "tutorial_cnn", "--resume", str(out))[0] == 0
    assert "only --data-dir, --download, --device may change. Received: --epochs=9, --lr=1.0" in fails(
        capsys, "train", "--resume", str(out), "--lr", "1", "--epochs", "9"
    )
    assert "continues a run of 'tutorial_cnn'; leave NAME out or give that. Received: NAME='simple_cnn'" in fails(
        capsys, "train", "simple_cnn", "--resume", str(out)
    )
    assert "--resume takes every option from" in fails(capsys, "train", "--resume", str(out), "--config", "x.json")


@pytest.mark.parametrize("leftover", ["config.json", "state.pt"])
def test_a_fresh_run_refuses_an_out_folder_that_holds_a_run(
    capsys: pytest.CaptureFixture[str], fit: FitRecorder, tmp_path: Path, leftover: str
) -> None:
    (tmp_path / leftover).write_text("{}")
    assert fails(capsys, "train", "simple_cnn", "--out", str(tmp_path)) == (
        f"--out {tmp_path} already holds a run ({leftover}): pass --resume {tmp_path} to continue it, or another "
        f"--out (or remove the folder). Received: --out={str(tmp_path)!r}"
    )
    assert fit.calls == []


def test_train_lists_only_the_files_that_it_wrote(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("not a run: the folder is accepted, and the file is not listed")
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(writes=("ema.safetensors", "state.pt")))
    status, stdout, _ = run(capsys, "train", "simple_cnn", "--out", str(out))
    assert status == 0
    assert stdout.splitlines()[-1] == f"wrote {out}: config.json, ema.safetensors, state.pt"
    # a resumed run rewrites some of the files; the others stay, and are not listed as written
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(writes=("state.pt",)))
    status, stdout, _ = run(capsys, "train", "--resume", str(out))
    assert status == 0
    assert stdout.splitlines()[-1] == f"wrote {out}: config.json, state.pt"
    assert {p.name for p in out.iterdir()} == {"config.json", "ema.safetensors", "notes.txt", "state.pt"}


def test_a_run_without_seed_draws_one_records_it_and_says_so(
    capsys: pytest.CaptureFixture[str], fit: FitRecorder, tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "train", "tutorial_cnn", "--out", str(tmp_path / "drawn"))
    assert status == 0
    ((drawn_model, _, drawn),) = fit.calls
    seed = drawn["seed"]
    assert isinstance(seed, int)
    assert 0 <= seed < 2**31
    assert drawn["config"]["options"]["seed"] == seed  # config.json records it, for --resume
    assert json.loads((tmp_path / "drawn" / "config.json").read_text())["run"]["options"]["seed"] == seed
    assert out.splitlines()[0] == f"seed {seed} (pass --seed to choose)"
    # the seed decides the initial weights: the same seed given with --seed gives the same ones
    status, out, _ = run(capsys, "train", "tutorial_cnn", "--seed", str(seed), "--out", str(tmp_path / "given"))
    assert status == 0
    assert out.splitlines()[0] == f"seed {seed}"
    given_model = fit.calls[1][0]
    for (key, a), b in zip(drawn_model.state_dict().items(), given_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    # a resumed run gets the recorded seed (the order of its batches depends on it)
    assert run(capsys, "train", "--resume", str(tmp_path / "drawn"))[0] == 0
    assert fit.calls[2][2]["seed"] == seed
    # another run draws another seed
    assert run(capsys, "train", "tutorial_cnn", "--out", str(tmp_path / "again"))[0] == 0
    assert fit.calls[3][2]["seed"] != seed


def test_resume_refuses_a_folder_whose_config_json_has_no_run_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model": {}}))
    assert f"--resume: {tmp_path / 'config.json'} does not describe a blockzoo train run" in fails(
        capsys, "train", "--resume", str(tmp_path)
    )


def test_init_weights_load_strictly(capsys: pytest.CaptureFixture[str], fit: FitRecorder, tmp_path: Path) -> None:
    source = blockzoo.create_model("simple_cnn", in_channels=1, num_classes=10, img_size=8)
    path = blockzoo.save_weights(source, tmp_path / "start.safetensors")
    assert run(capsys, "train", "simple_cnn", "--init-weights", str(path), "--out", str(tmp_path / "run"))[0] == 0
    ((model, _, _),) = fit.calls
    for (key, a), b in zip(source.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    # the same architecture for other inputs: the shapes do not fit, and nothing trains
    other = blockzoo.save_weights(blockzoo.create_model("simple_cnn"), tmp_path / "rgb32.safetensors")
    message = fails(capsys, "train", "simple_cnn", "--init-weights", str(other))
    assert message.startswith(f"--init-weights {other}: cannot load {other} into ZooModel; the model is unchanged.")
    assert (
        "shape mismatch(es): features.stage1.convs.0.conv.weight: checkpoint (32, 3, 3, 3), model (32, 1, 3, 3)"
        in message
    )
    resnet = blockzoo.save_weights(blockzoo.create_model("resnet20"), tmp_path / "resnet20.safetensors")
    assert fails(capsys, "train", "simple_cnn", "--init-weights", str(resnet)) == (
        f"--init-weights must be weights of 'simple_cnn'; {resnet} holds weights of 'resnet20' (its metadata "
        f"says so). Received: --init-weights={str(resnet)!r}"
    )
    missing = tmp_path / "none.safetensors"
    assert fails(capsys, "train", "simple_cnn", "--init-weights", str(missing)) == (
        f"--init-weights {missing}: no checkpoint at {missing}"
    )
    assert len(fit.calls) == 1


def test_pretrained_resets_the_classifier_for_the_datas_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(
        blockzoo.models._torchvision, "load_pretrained", lambda model, name, source: loaded.append(name)
    )
    model = build_model("resnet18", {"in_channels": 3, "num_classes": 10}, pretrained="torchvision")
    assert loaded == ["resnet18"]
    assert model.num_classes == 10
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.model_config == {"in_channels": 3, "num_classes": 10}


def test_a_missing_data_set_or_data_dir_or_an_unknown_data_set_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    message = fails(capsys, "train", "simple_cnn", "--data", "cifar10", "--data-dir", str(tmp_path))
    assert message.startswith(f"--data cifar10: Data set 'cifar10' not found: torchvision looks in {tmp_path}")
    # the folder and the files as the data floor names them; the hint and the value as the command line has them
    assert message.endswith(
        f"none of them is there. Add --download to download it into --data-dir. Received: --data-dir={str(tmp_path)!r}"
    )
    assert "download=True" not in message
    assert message.count("Received:") == 1
    assert fails(capsys, "train", "simple_cnn", "--data", "mnist") == (
        "--data mnist needs --data-dir DIR, the folder that holds it (add --download to fetch it there). "
        "Received: --data-dir=None"
    )
    message = fails(capsys, "train", "simple_cnn", "--data", "cifar")
    assert message.startswith("argument --data: Unknown data set 'cifar'. Did you mean 'cifar10', 'cifar100'?")


def test_a_data_set_not_found_names_the_download_flag_whatever_the_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def not_there(name: str, **kwargs: Any) -> None:
        raise DatasetNotFoundError(f"no {name} in {kwargs['root']}.")

    monkeypatch.setattr(blockzoo.data, "load_data", not_there)
    assert fails(capsys, "train", "simple_cnn", "--data", "mnist", "--data-dir", str(tmp_path)) == (
        f"--data mnist: no mnist in {tmp_path}. Add --download to download it into --data-dir. "
        f"Received: --data-dir={str(tmp_path)!r}"
    )


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (
            NonFiniteLossError("the loss became nan at epoch 2, batch 3 of 23", epoch=2, step=3),
            1,
            "the loss became nan",
        ),
        (InputError("the model takes 3 channels, the data have 1"), 2, "the model takes 3 channels"),
        (TypeError("SGD does not take 'betas'"), 2, "SGD does not take 'betas'"),
    ],
)
def test_errors_from_fit_are_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    error: Exception,
    status: int,
    message: str,
) -> None:
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(error))
    code, out, err = run(capsys, "train", "simple_cnn", "--out", str(tmp_path))
    assert (code, out, err) == (status, "", f"blockzoo: error: {error}\n")
    assert message in err


def test_a_run_without_a_best_epoch_reports_the_last_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nan = float("nan")
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": nan, "val_accuracy": nan} for e in (1, 2)]
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(history=History(rows)))
    status, out, err = run(capsys, "train", "simple_cnn", "--out", str(tmp_path))
    assert (status, err) == (0, "")
    assert out.splitlines()[-2] == (
        "best: none (no epoch recorded val_accuracy as a number); "
        "last: epoch 2 of 2: val_accuracy nan, val_loss nan, train_loss 0.5000"
    )
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(history=History([])))
    status, out, err = run(capsys, "train", "simple_cnn", "--out", str(tmp_path / "empty"))
    assert (status, err) == (0, "")
    assert out.splitlines()[-2] == "best: none (no epoch finished)"


def test_options_that_fit_refuses_exit_2_before_training(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = fails(capsys, "train", "simple_cnn", "--freeze", "nothing.*", "--out", str(tmp_path / "a"))
    assert message.startswith("freeze glob 'nothing.*' matches no parameter of the model.")
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"scheduler": {"name": "cosine", "warmup": 3}}))
    message = fails(capsys, "train", "simple_cnn", "--config", str(config), "--out", str(tmp_path / "b"))
    assert "schedule (CosineAnnealingLR) does not take 'warmup'" in message
    assert not (tmp_path / "a" / "last.safetensors").exists()
    assert not (tmp_path / "b" / "last.safetensors").exists()


def test_ctrl_c_in_fit_exits_130_and_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(blockzoo.train, "fit", FitRecorder(KeyboardInterrupt(), writes=("state.pt",)))
    code, _, err = run(capsys, "train", "simple_cnn", "--out", str(tmp_path))
    assert code == 130
    assert err == f"blockzoo: interrupted; continue with: blockzoo train --resume {tmp_path}\n"


# ---------------------------------------------------------------- evaluate


def test_evaluate_prints_loss_accuracy_and_the_confusion_matrix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = blockzoo.create_model("simple_cnn", in_channels=1, num_classes=10, img_size=8).eval()
    path = blockzoo.save_weights(model, tmp_path / "w.safetensors")
    _, _, x_val, y_val = digits(images=True)  # load_data's validation split: the same seed and fraction
    with torch.no_grad():
        logits = model(x_val)
    predicted = logits.argmax(1)
    status, out, err = run(capsys, "evaluate", "simple_cnn", "--weights", str(path))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"simple_cnn on digits, validation split ({len(y_val)} samples)"
    assert lines[1] == f"loss      {torch.nn.functional.cross_entropy(logits, y_val).item():.4f}"
    correct = int((predicted == y_val).sum())
    assert lines[2] == f"accuracy  {correct / len(y_val):.4f} ({correct} of {len(y_val)})"
    assert lines[4].split() == ["true", "\\", "predicted", *map(str, range(10))]
    for true, line in enumerate(lines[5:15]):
        counts = [int(c) for c in line.split()[1:]]
        assert counts == [int(((y_val == true) & (predicted == p)).sum()) for p in range(10)]


def test_a_confusion_matrix_of_many_classes_shows_the_most_frequent_confusions() -> None:
    classes = [f"c{i}" for i in range(30)]
    matrix = torch.diag(torch.full((30,), 50))
    matrix[3, 7], matrix[12, 0], matrix[29, 28] = 9, 4, 1
    lines = confusion_table(matrix, classes).splitlines()
    assert lines[0] == "30 classes; the most frequent confusions:"
    assert [line.split() for line in lines[2:]] == [["c3", "c7", "9"], ["c12", "c0", "4"], ["c29", "c28", "1"]]


def test_evaluate_refuses_weights_of_another_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = blockzoo.save_weights(blockzoo.create_model("lenet5"), tmp_path / "lenet5.safetensors")
    assert fails(capsys, "evaluate", "simple_cnn", "--weights", str(path)) == (
        f"--weights must be weights of 'simple_cnn'; {path} holds weights of 'lenet5' (its metadata says so). "
        f"Received: --weights={str(path)!r}"
    )


# ---------------------------------------------------------------- real processes


def blockzoo_process(*argv: str) -> list[str]:
    return [sys.executable, "-m", "blockzoo", *argv]


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    # `blockzoo list | head -1`: the reader closes the pipe; we close it before the command writes at all
    with subprocess.Popen(blockzoo_process("list"), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=120)
    assert status == 141, stderr
    assert stderr == ""  # no BrokenPipeError traceback


@pytest.mark.slow  # a fresh process imports torch and trains a full epoch
def test_python_m_blockzoo_trains_and_leaves_weights_that_give_the_reported_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        blockzoo_process("train", "simple_cnn", "--epochs", "1", "--seed", "0", "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} >= {
        "config.json", "history.json", "best.safetensors", "last.safetensors", "state.pt", "curves.png",
    }  # fmt: skip
    reported = re.search(r"best: epoch 1 of 1: val_accuracy (\d\.\d{4})", done.stdout)
    assert reported is not None, done.stdout
    history = json.loads((out / "history.json").read_text())
    model = blockzoo.create_model("simple_cnn", in_channels=1, num_classes=10, img_size=8)
    blockzoo.load_weights(model, out / "best.safetensors")
    # fit validates in batches of --batch-size (64): the same batches give the same sums, to the last bit
    accuracy = evaluate(model, load_data("digits").val, batch_size=64, device="cpu").accuracy
    assert f"{accuracy:.4f}" == reported.group(1)
    assert history["rows"][0]["val_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert json.loads((out / "config.json").read_text())["run"]["options"]["model"] == "simple_cnn"


@pytest.mark.slow  # a fresh process imports torch and trains a full epoch
def test_sigint_to_a_real_training_process_leaves_a_checkpoint_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        blockzoo_process("train", "simple_cnn", "--epochs", "1000", "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.safetensors").exists():  # the first epoch is over: the second is under way
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted at " in stderr
    assert f"blockzoo: interrupted; continue with: blockzoo train --resume {out}" in stderr
    model = blockzoo.create_model("simple_cnn", in_channels=1, num_classes=10, img_size=8)
    blockzoo.load_weights(model, out / "last.safetensors")
    state = torch.load(out / "state.pt", weights_only=True)
    assert isinstance(state, dict)


def test_an_error_once_training_has_begun_is_not_passed_off_as_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing_fit(model: torch.nn.Module, train_data: Any, **kwargs: Any) -> History:
        for callback in kwargs["callbacks"]:
            callback.on_fit_start(None)
        raise ValueError("a bug in the middle of an epoch")

    monkeypatch.setattr(blockzoo.train, "fit", failing_fit)
    with pytest.raises(ValueError, match="a bug in the middle of an epoch"):
        run(capsys, "train", "simple_cnn", "--out", str(tmp_path))
