"""Golden outputs of the model zoo: one small configuration per family, built and fed from seed 0.

``python tests/models/golden_outputs.py`` (from the repository root) writes
``tests/models/golden/<model>.safetensors`` for every case below; give model
names to write only those. ``tests/models/test_golden.py`` rebuilds each model
and compares. Rewrite a file only when a change of output is intended (or torch
changed its random number stream; the test's message tells the two apart), and
say why in the commit.

Each file holds the output logits (``output``, batch 2, float64) and the sum of
every state_dict tensor right after building (``state_sums``), which the test
uses only to say whether the parameters or the forward pass changed. Nothing is
pickled.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

import blockzoo

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: tests/ holds support.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import scale_branch_ends_

DIR = Path(__file__).with_name("golden")
WRITER = "python tests/models/golden_outputs.py"


@dataclass(frozen=True)
class Case:
    """A model, its options and the side of its square input.

    ``branch_scale`` (``None``: the model as built) scales the layer that ends each
    residual branch (what ``zero_init_last_`` zeroes) after building: a deep
    network whose every branch keeps its full initial size can amplify rounding
    so far that kernel order alone moves its output past any tolerance.
    """

    model: str
    side: int
    options: dict[str, object] = field(default_factory=lambda: {"num_classes": 10})
    branch_scale: float | None = None


#: One case per registry family, the smallest member of each, at a small input size
#: (the ImageNet families pool adaptively, so 64x64 still reaches every stage).
CASES: dict[str, Case] = {
    "cifar_resnet": Case("resnet20", 32),
    "resnet": Case("resnet18", 64),
    "resnext": Case("resnext50_32x4d", 64),
    "wide_resnet": Case("wide_resnet50_2", 64),
    "vgg": Case("vgg11_bn", 32),
    "mobilenet": Case("mobilenet_v2", 64),
    "mobilenet_v3": Case("mobilenet_v3_small", 64),
    "efficientnet": Case("efficientnet_b0", 64),
    # As built, 40 full-size residual branches in eval mode reach logits of 3e6 and float64 kernel order moves
    # them by 1.7e-5 of that; with each branch's end scaled to 0.2, by 2e-15.
    "efficientnet_v2": Case("efficientnet_v2_s", 64, branch_scale=0.2),
    "mnasnet": Case("mnasnet0_5", 64),
    "mlp": Case("mlp", 28),
    "lenet": Case("lenet5", 32),
    "tutorial_cnn": Case("tutorial_cnn", 32),
    "simple_cnn": Case("simple_cnn", 32),
    "convnext": Case("convnext_tiny", 64),
    "vit": Case("vit_b_32", 64),  # 2 x 2 patches, with its position embeddings resized
    "swin": Case("swin_t", 64),  # stages 1 and 2 padded to whole windows and shifted
    "alexnet": Case("alexnet", 64),
    "squeezenet": Case("squeezenet1_1", 64),
    "shufflenet_v2": Case("shufflenet_v2_x0_5", 64),
    "densenet": Case("densenet121", 64),
    "regnet_x": Case("regnet_x_400mf", 64),
    "regnet_y": Case("regnet_y_400mf", 64),
    "googlenet": Case("googlenet", 64),
    "inception_v3": Case("inception_v3", 75),  # its smallest input
    "maxvit": Case("maxvit_t", 221),  # its smallest input: every stage a multiple of the 7 x 7 partitions
}

BATCH = 2


def path_of(case: Case) -> Path:
    """Where the case's golden file lives."""
    return DIR / f"{case.model}.safetensors"


def build(case: Case) -> torch.nn.Module:
    """The case's model in float64 and eval mode, built right after ``torch.manual_seed(0)``, branches scaled."""
    torch.manual_seed(0)
    model = blockzoo.create_model(case.model, dtype=torch.float64, **case.options)  # type: ignore[arg-type]
    if case.branch_scale is not None:
        scale_branch_ends_(model, case.branch_scale)
    return model.eval()


def example_input(case: Case) -> torch.Tensor:
    """The case's input: float64 normal values from a generator of its own, seeded 0."""
    channels = blockzoo.model_info(case.model).input_size[0]
    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, channels, case.side, case.side, generator=generator, dtype=torch.float64)


def state_sums(model: torch.nn.Module) -> torch.Tensor:
    """The sum of each state_dict tensor, in state_dict order, as float64."""
    return torch.stack([t.detach().to(torch.float64).sum() for t in model.state_dict().values()])


def compute(case: Case, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The tensors a golden file holds, from ``model`` (built from the case when ``None``)."""
    model = build(case) if model is None else model
    sums = state_sums(model)
    with torch.no_grad():
        output = model(example_input(case))
    return {"output": output.contiguous(), "state_sums": sums}


def write(case: Case, path: Path | None = None) -> Path:
    """Write the case's golden file (to ``path_of(case)`` by default)."""
    from safetensors.torch import save_file

    out = path_of(case) if path is None else path
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"model": case.model, "side": str(case.side), "torch": torch.__version__, "writer": WRITER}
    save_file(compute(case), str(out), metadata=metadata)
    return out


def main(names: list[str]) -> None:
    """Write the golden files of the named models (all cases when none is named)."""
    cases = [c for c in CASES.values() if not names or c.model in names]
    unknown = sorted(set(names) - {c.model for c in cases})
    if unknown:
        known = ", ".join(c.model for c in CASES.values())
        raise SystemExit(f"no golden case for {', '.join(unknown)}; the cases are: {known}")
    for case in cases:
        print(f"wrote {write(case)}")


if __name__ == "__main__":
    main(sys.argv[1:])
