"""Golden outputs: each model family, built and fed from seed 0, gives the output committed under golden/.

What keeps these outputs stable across torch versions and CPU kernels:

* float64 parameters and input. Kernels differ in summation order (oneDNN or
  torch's own convolution, SIMD width, threads, memory format); in float64 that
  moves the logits by about 1e-15 of their size (measured here: at most 6.4e-15
  over threads, oneDNN on and off, channels_last and batch splitting), while a
  real change in architecture, initialisation or forward moves them by far more
  than 1e-6. The tolerances sit between the two.
* eval mode and ``no_grad``: dropout and drop path are off and batch norm uses
  its running statistics, so the forward pass draws no random numbers and does
  not depend on the batch.
* the model is built right after ``torch.manual_seed(0)`` on the CPU, as a user
  builds one, so the files pin blockzoo's initialisation too. That leans on
  torch's CPU generator (Mersenne Twister and its normal and uniform transforms),
  which torch keeps stable but does not promise; when a failure says that the
  initial parameters changed, first check whether torch changed its stream.
* the input comes from a generator of its own, so it does not depend on how many
  numbers the initialisation drew.

``python tests/models/golden_outputs.py [MODEL ...]`` rewrites the files.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import blockzoo


def _load_golden_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_outputs", Path(__file__).with_name("golden_outputs.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


golden = _load_golden_module()

#: Allowed ``max|output - golden|`` as a fraction of ``max|golden|``, per family. Kernel-order rounding
#: measured 2e-15 or less on the shallow models and 6.4e-15 or less on the deep ones; the bounds leave a
#: factor of 500 or more for other CPUs (AVX2, AVX-512, Arm) and torch versions, and rounding grows with
#: depth and with the length of the dot products: so 1e-12 for models of five layers or fewer, 1e-11 for
#: the deep ones (18 to 50 layers, VGG's 25088-long classifier rows, MobileNet's depthwise kernels).
TOLERANCES: dict[str, float] = {
    "mlp": 1e-12,
    "lenet": 1e-12,
    "tutorial_cnn": 1e-12,
    "simple_cnn": 1e-12,
    "cifar_resnet": 1e-11,
    "resnet": 1e-11,
    "resnext": 1e-11,
    "wide_resnet": 1e-11,
    "vgg": 1e-11,
    "mobilenet": 1e-11,
    "convnext": 1e-11,
    "vit": 1e-11,
    "swin": 1e-11,
    "mobilenet_v3": 1e-11,
    "efficientnet": 1e-11,
    "efficientnet_v2": 1e-11,
    "mnasnet": 1e-11,
    "alexnet": 1e-11,
    "squeezenet": 1e-11,
    "shufflenet_v2": 1e-11,
    "densenet": 1e-11,
    "regnet_x": 1e-11,
    "regnet_y": 1e-11,
    "googlenet": 1e-11,
    "inception_v3": 1e-11,
    "maxvit": 1e-11,
}


def problem(family: str, path: Path, model: torch.nn.Module | None = None) -> str | None:
    """What is wrong with ``model``'s output (the family's case when ``None``) against ``path``, or ``None``."""
    from safetensors.torch import load_file

    case = golden.CASES[family]
    if not path.exists():
        return (
            f"the golden file {path} is missing. Write it with `{golden.WRITER} {case.model}` from the "
            "repository root, check the change that needs it, and commit it."
        )
    expected = load_file(str(path))
    now = golden.compute(case, model)
    want, got = expected["output"], now["output"]
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"{case.model}: output {tuple(got.shape)} {got.dtype}, golden {tuple(want.shape)} {want.dtype}"
    error = ((got - want).abs().max() / want.abs().max()).item()
    if error <= TOLERANCES[family]:
        return None
    sums = expected["state_sums"]
    same_init = now["state_sums"].shape == sums.shape and torch.allclose(now["state_sums"], sums, rtol=1e-9, atol=1e-12)
    cause = (
        "the initial parameters match, so the forward pass changed"
        if same_init
        else "the initial parameters changed too (blockzoo's initialisation, or torch's random stream)"
    )
    return (
        f"{case.model}: output differs from {path.name} by {error:.3g} of its size "
        f"(tolerance {TOLERANCES[family]:g}); {cause}. If the change is intended, rewrite it with "
        f"`{golden.WRITER} {case.model}` and say why in the commit."
    )


def test_every_family_has_a_case_and_a_tolerance() -> None:
    families = {blockzoo.model_info(name).family for name in blockzoo.list_models()}
    assert set(golden.CASES) == families
    assert set(TOLERANCES) == families
    for family, case in golden.CASES.items():
        assert blockzoo.model_info(case.model).family == family


def test_golden_files_stay_small() -> None:
    total = sum(p.stat().st_size for p in golden.DIR.glob("*.safetensors"))
    assert total < 100_000


@pytest.mark.parametrize("family", sorted(golden.CASES))
def test_output_matches_the_golden_file(family: str) -> None:
    found = problem(family, golden.path_of(golden.CASES[family]))
    if found is not None:
        pytest.fail(found)  # a missing file fails too: it is never skipped


#: How far below its tolerance each case's own rounding must stay (the kernel-order spread it is checked on).
MARGIN = 100
#: The conditioning check builds each case a second time; the cases over this many parameters (VGG, AlexNet,
#: ViT-B, WideResNet: a few seconds each to initialise, and 8 to 25 layers deep) are left out.
CONDITIONING_MAX_PARAMS = 30_000_000
CONDITIONED = [f for f, c in golden.CASES.items() if blockzoo.model_info(c.model).num_params < CONDITIONING_MAX_PARAMS]


@pytest.mark.parametrize("family", sorted(CONDITIONED))
def test_each_case_is_well_conditioned(family: str) -> None:
    # Kernel order alone (here channels_last against contiguous) must move the output by far less than the
    # tolerance; an ill-conditioned case (deep random branches amplify rounding) cannot tell a real change
    # from another CPU. Golden_outputs.Case's branch_scale is the cure.
    case = golden.CASES[family]
    model, x = golden.build(case), golden.example_input(case)
    with torch.no_grad():
        want = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    error = ((got - want).abs().max() / want.abs().max()).item()
    assert error * MARGIN <= TOLERANCES[family], f"{case.model}: channels_last moves the output by {error:.3g}"


# The comparison itself, on the cheapest family, so that it is shown to fail.


def test_a_missing_file_names_the_command_that_writes_it(tmp_path: Path) -> None:
    found = problem("lenet", tmp_path / "lenet5.safetensors")
    assert found is not None
    assert "is missing. Write it with `python tests/models/golden_outputs.py lenet5`" in found


def test_a_changed_forward_is_caught_and_told_apart_from_a_changed_init(tmp_path: Path) -> None:
    case = golden.CASES["lenet"]
    path = golden.write(case, tmp_path / "lenet5.safetensors")
    assert problem("lenet", path) is None
    model = golden.build(case)
    model.features.c1.conv.act = torch.nn.ReLU()  # same parameters, another forward
    found = problem("lenet", path, model)
    assert found is not None
    assert "the initial parameters match, so the forward pass changed" in found


def test_a_tiny_change_of_one_weight_is_caught(tmp_path: Path) -> None:
    case = golden.CASES["lenet"]
    path = golden.write(case, tmp_path / "lenet5.safetensors")
    model = golden.build(case)
    with torch.no_grad():
        weight = model.features.c1.conv.conv.weight
        weight[0, 0, 0, 0] *= 1 + 1e-6
    found = problem("lenet", path, model)
    assert found is not None
    assert "the initial parameters changed too" in found
