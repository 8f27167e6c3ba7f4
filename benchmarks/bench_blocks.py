"""Each block's eager (and compiled) time against the same layers written in plain torch.

Also against torchvision's ``Conv2dNormActivation``, ``MLP``, ``BasicBlock``,
``Bottleneck``, ``InvertedResidual``, ``StochasticDepth`` and ``DropBlock2d``
and timm's ``ConvNormAct`` where they are installed. Forward and
forward+backward, at a small shape (batch 1, 16 channels, 8x8) and a
realistic one (batch 32, 64 channels, 56x56); compiled rows (small shape,
full run only) compare ``torch.compile`` of each side. Each function is timed
in alternating rounds; the ratio is blockzoo's fastest round over the
reference's (interference only adds time). The A/A column times a second,
identical blockzoo block the same way: how far from 1.00 it lands is the
noise floor of this machine for that row.
Run alone: ``python -m benchmarks.bench_blocks``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

import blockzoo
from benchmarks._kernels import ops, runs_no_more
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import alternate

SHAPES = {"small": (1, 16, 8, 8), "realistic": (32, 64, 56, 56)}
#: The residual blocks' realistic shape: batch 8 keeps a forward+backward under a second on two cores.
RESIDUAL = {"realistic": (8, 64, 56, 56)}
#: The blocks with compiled rows: each row compiles both sides, seconds apiece, so one block of each kind.
COMPILED = ("ConvNormAct", "MLP", "BasicBlock", "InvertedResidual")


class TorchConvBnReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class TorchConvStage(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class TorchDepthwiseSeparable(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw, self.dw_bn = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c)
        self.pw, self.pw_bn = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.pw_bn(self.pw(self.relu(self.dw_bn(self.dw(x))))))


class TorchSqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)
        self.relu, self.gate = nn.ReLU(), nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class TorchMLP(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(c, 4 * c), nn.ReLU(), nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


class TorchHead(nn.Module):
    def __init__(self, c: int, classes: int) -> None:
        super().__init__()
        self.pool, self.flatten, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(x)))


class TorchBasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


class TorchBottleneck(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        m = c // 4
        self.conv1, self.bn1 = nn.Conv2d(c, m, 1, bias=False), nn.BatchNorm2d(m)
        self.conv2, self.bn2 = nn.Conv2d(m, m, 3, padding=1, bias=False), nn.BatchNorm2d(m)
        self.conv3, self.bn3 = nn.Conv2d(m, c, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + x)


class TorchInvertedResidual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        h = 6 * c
        self.expand, self.bn1 = nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h)
        self.dw, self.bn2 = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h)
        self.project, self.bn3 = nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.expand(x)))
        out = self.act(self.bn2(self.dw(out)))
        return x + self.bn3(self.project(out))


class TorchDropPath(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep.div_(1 - self.p)


Factory = Callable[[int], nn.Module]


@dataclass
class Block:
    """One block of blockzoo and the references that compute the same thing."""

    name: str
    ours: Factory
    refs: dict[str, Factory]
    to_input: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
    always_train: bool = False  # dropout-like blocks do nothing in eval mode
    shapes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # overrides SHAPES


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2).contiguous()  # [N, C, H, W] -> [N, H*W, C]


def blocks() -> list[Block]:
    """Every block and its references (torchvision's and timm's where installed)."""
    refs: dict[str, dict[str, Factory]] = {
        "ConvNormAct": {"torch": lambda c: TorchConvBnReLU(c, c)},
        "MLP": {"torch": TorchMLP},
        "BasicBlock": {"torch": TorchBasicBlock},
        "Bottleneck": {"torch": TorchBottleneck},
        "InvertedResidual": {"torch": TorchInvertedResidual},
        "DropPath": {"torch": lambda c: TorchDropPath(0.2)},
        "DropBlock": {},
    }
    if importlib.util.find_spec("torchvision"):
        from torchvision.models.mobilenetv2 import InvertedResidual as TvInvertedResidual
        from torchvision.models.resnet import BasicBlock as TvBasicBlock
        from torchvision.models.resnet import Bottleneck as TvBottleneck
        from torchvision.ops import MLP as TvMLP
        from torchvision.ops import Conv2dNormActivation, DropBlock2d, StochasticDepth

        # torchvision's defaults: Conv2dNormActivation's ReLU works in place (as blockzoo's does), MLP's does not
        refs["ConvNormAct"]["torchvision"] = lambda c: Conv2dNormActivation(c, c, 3)
        refs["MLP"]["torchvision"] = lambda c: TvMLP(c, [4 * c, c])
        refs["BasicBlock"]["torchvision"] = lambda c: TvBasicBlock(c, c)
        refs["Bottleneck"]["torchvision"] = lambda c: TvBottleneck(c, c // 4)
        refs["InvertedResidual"]["torchvision"] = lambda c: TvInvertedResidual(c, c, 1, 6)
        refs["DropPath"]["torchvision"] = lambda c: StochasticDepth(0.2, "row")
        refs["DropBlock"]["torchvision"] = lambda c: DropBlock2d(0.2, 3)
    if importlib.util.find_spec("timm"):
        from timm.layers import ConvNormAct as TimmConvNormAct
        from timm.layers import DropPath as TimmDropPath

        refs["ConvNormAct"]["timm"] = lambda c: TimmConvNormAct(c, c, 3, apply_act=True)
        refs["DropPath"]["timm"] = lambda c: TimmDropPath(0.2)
    return [
        Block("ConvNormAct", lambda c: blockzoo.ConvNormAct(c, c), refs["ConvNormAct"]),
        Block("ConvBlock", lambda c: blockzoo.ConvBlock(c, c), {"torch": lambda c: TorchConvStage(c, c)}),
        Block(
            "DepthwiseSeparableConv",
            lambda c: blockzoo.DepthwiseSeparableConv(c, c),
            {"torch": TorchDepthwiseSeparable},
        ),
        Block("SqueezeExcite", lambda c: blockzoo.SqueezeExcite(c), {"torch": TorchSqueezeExcite}),
        Block("MLP", lambda c: blockzoo.MLP(c, (4 * c,), c), refs["MLP"], _tokens),
        Block("ClassifierHead", lambda c: blockzoo.ClassifierHead(c, 1000), {"torch": lambda c: TorchHead(c, 1000)}),
        Block("BasicBlock", lambda c: blockzoo.BasicBlock(c, c), refs["BasicBlock"], shapes=RESIDUAL),
        Block("Bottleneck", lambda c: blockzoo.Bottleneck(c, c), refs["Bottleneck"], shapes=RESIDUAL),
        Block("InvertedResidual", lambda c: blockzoo.InvertedResidual(c, c), refs["InvertedResidual"], shapes=RESIDUAL),
        Block("DropPath", lambda c: blockzoo.DropPath(0.2), refs["DropPath"], always_train=True),
        Block("DropBlock", lambda c: blockzoo.DropBlock(0.2, 3), refs["DropBlock"], always_train=True),
    ]


def _copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Give ``dst`` the same weights as ``src`` where both have the same tensors in the same order.

    Where the layouts differ (another order of layers) the weights stay as
    initialised: the time of these kernels does not depend on the values.
    """
    ours, theirs = src.state_dict(), dst.state_dict()
    if [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]:
        dst.load_state_dict(dict(zip(theirs, ours.values(), strict=True)))


def _step(model: nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], object]:
    if not backward:

        def forward() -> object:
            with torch.no_grad():
                return model(x)

        return forward
    xg = x.clone().requires_grad_(True)

    def forward_backward() -> object:
        model(xg).sum().backward()
        return None

    return forward_backward


def target(reference: str, shape: str) -> str:
    """The issue's targets: 1.05 at small shapes, 1.02 at realistic ones, 1.0 against torchvision and timm."""
    if reference != "torch":
        return "<= 1.0"
    return "<= 1.05" if shape == "small" else "<= 1.02"


def measure(
    block: Block,
    *,
    shape: str,
    backward: bool,
    rounds: int,
    min_run_time: float,
    compiled: bool = False,
    warmup: int = 3,
) -> list[Record | Skip]:
    """The rows of one block at one shape and pass: blockzoo against each reference, with the A/A noise floor."""
    dims = block.shapes.get(shape, SHAPES[shape])
    torch.manual_seed(0)
    x = block.to_input(torch.randn(dims))
    train = backward or block.always_train
    ours = block.ours(dims[1]).train(train)
    models: dict[str, nn.Module] = {"ours": ours}
    if not compiled:  # a compiled twin would measure a second compile of the same code: no noise floor there
        models["twin"] = block.ours(dims[1]).train(train)
        models["twin"].load_state_dict(ours.state_dict())
    refs = {"torch": block.refs["torch"]} if compiled and "torch" in block.refs else block.refs
    for name, make in refs.items():
        models[name] = make(dims[1]).train(train)
        _copy_state(ours, models[name])
    if compiled:
        torch.compiler.reset()  # each row compiles from scratch, and no cache limit carries over between rows
        models = {k: torch.compile(m) for k, m in models.items()}
    fns = {k: _step(m, x, backward) for k, m in models.items()}
    times = alternate(fns, rounds=rounds, min_run_time=min_run_time, warmup=warmup)
    same: dict[str, bool | None] = dict.fromkeys(refs)
    if shape != "small" and not compiled:  # where the kernels are the time, which ops ran (benchmarks._kernels)
        ours_ops = ops(fns["ours"])
        same = {name: runs_no_more(ours_ops, ops(fns[name])) for name in refs}
    mode = "fwd+bwd" if backward else "fwd"
    kind = "compiled vs " if compiled else "vs "
    return [
        dataclasses.replace(
            Record.from_samples(
                f"blocks/{block.name}/{shape}/{mode}/{kind}{name}",
                times["ours"],
                times[name],
                twin=times.get("twin"),
                target=target(name, shape),
            ),
            same_kernels=same[name],
        )
        for name in refs
    ]


def cases(settings: Settings) -> list[Case]:
    shapes = ["small"] if settings.quick else list(SHAPES)
    out = []
    for block in blocks():

        def eager(block: Block = block) -> list[Record | Skip]:
            rows: list[Record | Skip] = []
            for shape in shapes:
                # realistic calls take tenths of a second each, so a round is one call: nine of them, one warm-up
                # (wall time decides the realistic rows whose kernels differ from the reference's, and the fastest
                # of more calls lands nearer the undisturbed time)
                rounds, min_run_time, warmup = (
                    (1, 0.01, 1) if settings.quick else ((7, 0.1, 3) if shape == "small" else (9, 0.1, 1))
                )
                for backward in (False, True):
                    rows += measure(
                        block,
                        shape=shape,
                        backward=backward,
                        rounds=rounds,
                        min_run_time=min_run_time,
                        warmup=warmup,
                    )
            return rows

        out.append(Case(f"blocks/{block.name}", eager))
    if not settings.quick:  # compiling costs seconds per row: the full run only, small shape, some blocks
        for block in blocks():
            if block.name not in COMPILED:
                continue

            def compiled(block: Block = block) -> list[Record | Skip]:
                rows: list[Record | Skip] = []
                for backward in (False, True):
                    rows += measure(block, shape="small", backward=backward, rounds=5, min_run_time=0.1, compiled=True)
                return rows

            out.append(Case(f"blocks-compiled/{block.name}", compiled))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-run-time", type=float, default=0.1)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--compile", action="store_true", help="compare torch.compile of each side instead")
    args = parser.parse_args()
    for b in blocks():
        for shape in args.shapes:
            for bwd in (False, True):
                print_rows(
                    measure(
                        b,
                        shape=shape,
                        backward=bwd,
                        rounds=args.rounds,
                        min_run_time=args.min_run_time,
                        compiled=args.compile,
                    )
                )
