"""optimize_for_inference: fold, channels_last, compile with freezing once; same predictions; a report."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import optimize_for_inference
from deploy_cases import build

NO_CXX = not any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.mark.slow  # inductor compiles the model: several seconds
@pytest.mark.skipif(NO_CXX, reason="inductor needs a C++ compiler on CPU")
def test_it_compiles_once_and_predicts_what_the_model_predicts() -> None:
    model = build("simple_cnn")
    fast = optimize_for_inference(model, torch.randn(8, 3, 32, 32))
    report = fast.report
    assert report.compiled, report.compile_error
    assert report.compile_seconds is not None
    assert report.compile_seconds > 0
    assert len(report.fusion.folded) == 3
    assert report.channels_last
    assert report.same_predictions
    assert "compiled with torch.compile(options={'freezing': True})" in str(report)

    x = torch.randn(8, 3, 32, 32)
    with torch.compiler.set_stance("fail_on_recompile"):  # the program compiled above is reused
        got = fast(x)
    with torch.no_grad():
        want = model(x)
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert isinstance(model.features.stage1.convs[0].norm, nn.BatchNorm2d)  # the original is untouched


def test_without_compiling_it_folds_and_uses_channels_last() -> None:
    model = build("resnet20")
    fast = optimize_for_inference(model, torch.randn(4, 3, 32, 32), compile=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.module.modules())
    assert fast.module.features.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    report = fast.report
    assert (report.compiled, report.compile_seconds, report.compile_error) == (False, None, None)
    assert report.same_predictions
    assert report.max_abs_difference is not None
    assert str(report).splitlines()[1:3] == [
        "weights and inputs in channels_last memory",
        "not compiled (compile=False); runs eagerly",
    ]
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fast(x).argmax(1), model(x).argmax(1))
    assert repr(fast) == "InferenceModel(ZooModel, compiled=False)"


def test_a_compile_failure_falls_back_to_eager_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(module: nn.Module, **options: object) -> object:
        def run(*args: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no compiler here\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = build("simple_cnn")
    fast = optimize_for_inference(model, torch.randn(2, 3, 32, 32))
    assert not fast.report.compiled
    assert fast.report.compile_error == "RuntimeError: no compiler here"
    assert "not compiled (RuntimeError: no compiler here); runs eagerly" in str(fast.report)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fast(x).argmax(1), model(x).argmax(1))


def test_a_model_without_maps_keeps_its_memory_format() -> None:
    fast = optimize_for_inference(build("mlp"), torch.randn(2, 1, 28, 28), compile=False)
    assert not fast.report.channels_last
    assert "memory format unchanged" in str(fast.report)
    assert fast(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_it_refuses_a_model_in_training_mode_and_a_bad_example() -> None:
    with pytest.raises(ValueError, match="must be in eval mode"):
        optimize_for_inference(blockzoo.create_model("simple_cnn"), torch.randn(2, 3, 32, 32))
    with pytest.raises(TypeError, match="Received: example_input=list"):
        optimize_for_inference(build("simple_cnn"), [torch.randn(2, 3, 32, 32)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"compile must be True or False\. Received: compile='no'"):
        optimize_for_inference(build("simple_cnn"), torch.randn(2, 3, 32, 32), compile="no")  # type: ignore[arg-type]
