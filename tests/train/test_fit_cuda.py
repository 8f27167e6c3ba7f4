"""fit on a CUDA GPU: bf16 autocast, channels_last, compile, fp16 with a grad scaler, resume; skipped without one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import blockzoo
from blockzoo.data import digits
from blockzoo.train import evaluate, fit
from support import CUDA

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]


def test_resnet18_trains_on_cuda_in_bf16_channels_last_compiled(tmp_path: Path) -> None:
    data = digits(image_size=32, channels=3)
    model = blockzoo.create_model("resnet18", num_classes=10)
    history = fit(
        model,
        data,
        epochs=3,
        lr=3e-3,
        device="cuda",
        amp="bf16",
        channels_last=True,
        compile=True,
        progress=False,
        seed=0,
        out_dir=tmp_path,
    )
    assert next(model.parameters()).device.type == "cuda"
    assert history.best()["val_accuracy"] > 0.9
    fresh = blockzoo.load_weights(blockzoo.create_model("resnet18", num_classes=10), tmp_path / "best.safetensors")
    result = evaluate(fresh, data, device="cuda", amp="bf16")
    assert result.accuracy == pytest.approx(history.best()["val_accuracy"], abs=1 / len(data.x_val))


def test_fp16_with_a_grad_scaler_trains_and_saves_the_scaler_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = blockzoo.create_model("simple_cnn", in_channels=1, img_size=8)
    history = fit(model, digits(images=True), epochs=2, amp="fp16", device="cuda", progress=False, out_dir=tmp_path)
    assert history.best()["val_accuracy"] > 0.8
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
