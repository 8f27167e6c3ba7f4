import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_compare_optimizers_trains_each_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    example = load("compare_optimizers")
    out = tmp_path / "curves.png"
    results = example.main(epochs=3, out=str(out))
    assert set(results) == {"sgd", "adam", "rmsprop", "adagrad"}
    for name, (curve, accuracy) in results.items():
        assert len(curve) == 3
        assert curve[-1] < curve[0], name
        assert accuracy > 0.8, name  # 10 classes: chance is 10%
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_transfer_learning_trains_only_the_head() -> None:
    pytest.importorskip("sklearn")
    result = load("transfer_learning").main(epochs=3)
    assert result["trainable_tensors"] == 2
    assert result["val_accuracy"] > 0.8


@pytest.mark.slow
def test_custom_init_default_fails_where_kaiming_and_lsuv_train(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "init.png"
    # SGD with momentum on this plain CNN is chaotic for the first epochs, and how long Kaiming takes to
    # leave the plateau differs between CPUs (float rounding); twelve epochs leave it on every one we ran
    results = load("custom_init").main(epochs=12, out=str(out))
    default, kaiming, lsuv = (results[name] for name in ("default", "kaiming", "lsuv"))
    # PyTorch's default init shrinks the signal through the ReLU layers; the other two keep it.
    assert default["stds"][-1] < 0.1 * kaiming["stds"][-1]
    assert all(abs(s - 1) < 0.1 for s in lsuv["stds"])
    assert kaiming["curve"][-1] < default["curve"][-1] - 0.3
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regularization_tutorial_narrows_the_generalization_gap(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "reg.png"
    results = load("regularization_digits").main(epochs=20, out=str(out))

    def gap(variant: str) -> float:
        return results[variant]["val_loss"][-1] - results[variant]["train_loss"][-1]

    # The plain MLP memorises the noisy labels; the penalty and dropout hold it back.
    assert results["none"]["train_loss"][-1] < results["L2"]["train_loss"][-1]
    assert results["none"]["train_loss"][-1] < results["dropout"]["train_loss"][-1]
    assert gap("none") > gap("L2 + dropout")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cifar10_tutorial_trains_the_course_cnn_with_fit_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    histories = load("cifar10_cnn").main(epochs=2, out=str(out), samples=256, progress=False, gpu=False)
    assert set(histories) == {"cpu"}
    cpu = histories["cpu"]
    assert len(cpu) == 2
    assert cpu["train_loss"][1] < cpu["train_loss"][0]
    assert cpu.best()["val_accuracy"] > 0.3  # 10 classes: chance is 10%
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
