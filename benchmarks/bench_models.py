"""Models against torchvision's same architecture, with the same weights: forward, train step, peak memory.

The three models (blockzoo's, torchvision's, and a second blockzoo copy for
an A/A column: the noise floor) take turns call by call; the ratios are
blockzoo's fastest call and median call over torchvision's. Peak memory is
the peak of the bytes of live tensors during one resnet50 forward.
"""

from __future__ import annotations

import argparse
import weakref
from collections.abc import Callable

import torch
import torchvision
from _timing import best_ratio, interleave, median_ratio
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import blockzoo

NAMES = ("resnet18", "resnet50", "mobilenet_v2")


def _pair(name: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)()
    ours = blockzoo.models.load_torchvision_weights(blockzoo.create_model(name), theirs.state_dict())
    return ours, theirs


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.eval()

    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    y = torch.randint(0, 1000, (x.shape[0],))

    def run() -> object:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return None

    return run


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensors that ops create and that are still alive, and their peak.

    CPU allocators keep no statistics torch exposes (``torch.cuda.max_memory_allocated`` is CUDA
    only), so the peak is tracked from the ops' outputs, freed through weakref finalizers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _free(self, ptr: int, nbytes: int) -> None:
        self.live -= nbytes
        self.seen.discard(ptr)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and (ptr := t.untyped_storage().data_ptr()) not in self.seen:
                nbytes = t.untyped_storage().nbytes()
                self.seen.add(ptr)
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t.untyped_storage(), self._free, ptr, nbytes)
        return out


def _peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of live intermediate tensors during one forward."""
    mode = _LiveBytes()
    with mode, torch.no_grad():
        model(x)
    return mode.peak


def peak_memory(batch: int, side: int) -> tuple[int, int]:
    ours, theirs = _pair("resnet50")
    x = torch.randn(batch, 3, side, side)
    return _peak_bytes(ours.eval(), x), _peak_bytes(theirs.eval(), x)


def run(*, batch: int, side: int, calls: int) -> None:
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {batch}, {side}x{side}, {calls} calls each"
    )
    print(f"{'model':<14}{'pass':<12}{'fastest':>8} {'median':>7} {'A/A':>7}   target")
    for name in NAMES:
        ours, theirs = _pair(name)
        x = torch.randn(batch, 3, side, side)
        for label, make in (("forward", _forward), ("train step", _train_step)):
            twin = blockzoo.create_model(name)
            twin.load_state_dict(ours.state_dict())
            fns = {"ours": make(ours, x), "theirs": make(theirs, x), "twin": make(twin, x)}
            times = interleave(fns, calls=calls)
            ratio = best_ratio(times["ours"], times["theirs"])
            median = median_ratio(times["ours"], times["theirs"])
            noise = best_ratio(times["twin"], times["ours"])
            print(f"{name:<14}{label:<12}{ratio:>7.3f}x {median:>6.3f}x {noise:>6.3f}x   <= 1.02")
    ours_peak, theirs_peak = peak_memory(batch, side)
    print(
        f"{'resnet50':<14}{'peak memory':<12}{ours_peak / theirs_peak:>7.3f}x {'':>15}   within 2% "
        f"({ours_peak / 2**20:.0f} MiB vs {theirs_peak / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    run(batch=args.batch, side=args.side, calls=args.calls)
