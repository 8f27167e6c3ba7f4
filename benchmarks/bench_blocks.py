"""Each block's eager time against the same layers written in plain torch.

Also against torchvision's ``Conv2dNormActivation`` and ``MLP`` and timm's
``ConvNormAct`` where they are installed. Forward and forward+backward, at a
small shape (batch 1, 16 channels, 8x8) and a realistic one (batch 32, 64
channels, 56x56). Each function is timed in alternating rounds; the ratio is
blockzoo's fastest round over the reference's (interference only adds time).
The A/A column times a second, identical blockzoo block the same way: how far
from 1.00 it lands is the noise floor of this machine for that row.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _timing import alternate, best_ratio
from torch import nn

import blockzoo

SHAPES = {"small": (1, 16, 8, 8), "realistic": (32, 64, 56, 56)}


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


@dataclass
class Case:
    name: str
    ours: Callable[[int], nn.Module]
    refs: dict[str, Callable[[int], nn.Module]]
    to_input: Callable[[torch.Tensor], torch.Tensor] = lambda x: x


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2).contiguous()  # [N, C, H, W] -> [N, H*W, C]


def cases() -> list[Case]:
    conv_refs: dict[str, Callable[[int], nn.Module]] = {"torch": lambda c: TorchConvBnReLU(c, c)}
    mlp_refs: dict[str, Callable[[int], nn.Module]] = {"torch": TorchMLP}
    if importlib.util.find_spec("torchvision"):
        from torchvision.ops import MLP as TvMLP
        from torchvision.ops import Conv2dNormActivation

        conv_refs["torchvision"] = lambda c: Conv2dNormActivation(c, c, 3, inplace=False)
        mlp_refs["torchvision"] = lambda c: TvMLP(c, [4 * c, c], inplace=False)
    if importlib.util.find_spec("timm"):
        from timm.layers import ConvNormAct as TimmConvNormAct

        conv_refs["timm"] = lambda c: TimmConvNormAct(c, c, 3, apply_act=True)
    return [
        Case("ConvNormAct", lambda c: blockzoo.ConvNormAct(c, c), conv_refs),
        Case("ConvBlock", lambda c: blockzoo.ConvBlock(c, c), {"torch": lambda c: TorchConvStage(c, c)}),
        Case(
            "DepthwiseSeparableConv",
            lambda c: blockzoo.DepthwiseSeparableConv(c, c),
            {"torch": TorchDepthwiseSeparable},
        ),
        Case("SqueezeExcite", lambda c: blockzoo.SqueezeExcite(c), {"torch": TorchSqueezeExcite}),
        Case("MLP", lambda c: blockzoo.MLP(c, (4 * c,), c), mlp_refs, _tokens),
        Case("ClassifierHead", lambda c: blockzoo.ClassifierHead(c, 1000), {"torch": lambda c: TorchHead(c, 1000)}),
    ]


def _copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Give ``dst`` the same weights as ``src`` (same layers in the same order), so both compute the same values."""
    theirs = dst.state_dict()
    if [v.shape for v in src.state_dict().values()] != [v.shape for v in theirs.values()]:
        raise RuntimeError(f"{type(dst).__name__} does not have the same layers as {type(src).__name__}")
    dst.load_state_dict(dict(zip(theirs, src.state_dict().values(), strict=True)))


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


def run(*, rounds: int, min_run_time: float, shapes: list[str]) -> list[tuple[str, str, str, str, float]]:
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ratio = blockzoo / reference (best rounds)")
    print(f"{'block':<24}{'shape':<11}{'pass':<10}{'reference':<13}{'ratio':>7} {'A/A':>7}   target")
    for case in cases():
        for shape_name in shapes:
            shape = SHAPES[shape_name]
            torch.manual_seed(0)
            x = case.to_input(torch.randn(shape))
            channels = shape[1]
            for backward in (False, True):
                ours = case.ours(channels).train(backward)
                twin = case.ours(channels).train(backward)
                twin.load_state_dict(ours.state_dict())
                fns = {"ours": _step(ours, x, backward), "twin": _step(twin, x, backward)}
                for ref_name, make in case.refs.items():
                    ref = make(channels).train(backward)
                    _copy_state(ours, ref)
                    fns[ref_name] = _step(ref, x, backward)
                times = alternate(fns, rounds=rounds, min_run_time=min_run_time)
                target = 1.05 if shape_name == "small" else 1.02
                noise = best_ratio(times["twin"], times["ours"])
                for ref_name in case.refs:
                    ratio = best_ratio(times["ours"], times[ref_name])
                    mode = "fwd+bwd" if backward else "fwd"
                    flag = "" if ref_name != "torch" or ratio <= target else "  over"
                    print(
                        f"{case.name:<24}{shape_name:<11}{mode:<10}{ref_name:<13}{ratio:>6.3f}x {noise:>6.3f}x"
                        f"   <= {target}{flag}"
                    )
                    rows.append((case.name, shape_name, mode, ref_name, ratio))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    run(rounds=args.rounds, min_run_time=args.min_run_time, shapes=args.shapes)
