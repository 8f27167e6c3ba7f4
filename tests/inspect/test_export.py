"""export_model (torch.export, dynamic batch) for every registered model; export_onnx checked with onnxruntime.

Each model is exported once: its torch.export case and its ONNX case run one
after the other and share the program (the ONNX exporter would otherwise
trace the model again). ONNX conversion decomposes the whole program, a few
seconds for the deepest models; those cases are marked slow.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import export_model, export_onnx
from deploy_cases import CNNS, build, small_input
from support import representatives

#: Cases over 3 s on one CPU thread (measured with --durations): ONNX conversion retraces and decomposes the
#: whole program and serialises every weight (VGG's are half a gigabyte).
QUICK_ONNX = {"lenet5", "simple_cnn", "tutorial_cnn", "resnet18", "resnet20", "resnet32"}
SLOW = {("resnet101", "torch.export"), ("resnet110", "torch.export"), ("resnet152", "torch.export")} | {
    (name, "onnx") for name in CNNS if name not in QUICK_ONNX
}
CASES = [
    pytest.param(name, step, id=f"{name}-{step}", marks=[pytest.mark.slow] if (name, step) in SLOW else [])
    for name in representatives()
    for step in ("torch.export", "onnx")
    if step == "torch.export" or name in CNNS
]


@functools.lru_cache(maxsize=1)  # the model and its program, for the next case of the same model
def exported(name: str) -> tuple[nn.Module, torch.export.ExportedProgram]:
    model = build(name)
    return model, export_model(model, small_input(name, 2))


def assert_close_to(got: torch.Tensor, want: torch.Tensor, relative: float) -> None:
    """Within ``relative`` of the output's scale: random weights give logits from 1 to 1e9 across the zoo."""
    assert got.shape == want.shape
    assert (got - want).abs().max() <= relative * want.abs().max()


@pytest.mark.parametrize(("name", "step"), CASES)
def test_every_model_exports_with_a_dynamic_batch(name: str, step: str, tmp_path: Path) -> None:
    model, program = exported(name)
    x = small_input(name, 3)  # traced with 2: the batch is symbolic
    with torch.no_grad():
        want = model(x)
    if step == "torch.export":
        assert_close_to(program.module()(x), want, 1e-5)
        assert program.module()(x[:1]).shape[0] == 1
        return
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'blockzoo[onnx]'")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed: pip install 'blockzoo[onnx]'")
    path = export_onnx(program, x, tmp_path / f"{name}.onnx")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    finally:
        path.unlink()  # a VGG is half a gigabyte
    assert_close_to(torch.from_numpy(got), want, 1e-4)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.conv(image).mean((2, 3)) * scale


def test_every_input_shares_one_batch_dimension() -> None:
    model = TwoInputs().eval()
    program = export_model(model, (torch.randn(2, 3, 8, 8), torch.randn(2, 4)))
    args = (torch.randn(5, 3, 8, 8), torch.randn(5, 4))
    torch.testing.assert_close(program.module()(*args), model(*args))


def test_a_static_export_fixes_the_batch() -> None:
    model = blockzoo.create_model("tutorial_cnn").eval()
    program = export_model(model, torch.randn(1, 3, 32, 32), dynamic_batch=False)
    assert program.module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(Exception):  # noqa: B017, PT011 - torch's guard on the traced batch; its type and text vary
        program.module()(torch.randn(2, 3, 32, 32))


def test_a_dynamic_batch_needs_two_examples() -> None:
    with pytest.raises(ValueError, match=r"batch of at least 2 .*Received: example_input of shape \(1, 3, 32, 32\)"):
        export_model(nn.Identity(), torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"Received: example_input of shape \(\)"):
        export_model(nn.Identity(), (torch.randn(2, 3), torch.tensor(1.0)))


@pytest.mark.parametrize("example", [[torch.ones(2)], (), 3.0])
def test_an_example_that_is_not_tensors_is_refused(example: object) -> None:
    with pytest.raises(
        TypeError, match=f"a non-empty tuple of tensors .*Received: example_input={type(example).__name__}"
    ):
        export_model(nn.Identity(), example)  # type: ignore[arg-type]


def test_onnx_without_onnxscript_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'blockzoo\[onnx\]'"):
        export_onnx(nn.Identity(), torch.randn(2, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_fused_model_exports_with_the_originals_outputs(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'blockzoo[onnx]'")
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'blockzoo[onnx]'")
    model = build("simple_cnn")
    fused = blockzoo.fuse_conv_bn(model)
    path = export_onnx(fused, torch.randn(2, 3, 32, 32), tmp_path / "fused.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(4, 3, 32, 32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert_close_to(torch.from_numpy(got), model(x), 1e-4)
    assert not any(node.op_type == "BatchNormalization" for node in onnx.load(str(path)).graph.node)
