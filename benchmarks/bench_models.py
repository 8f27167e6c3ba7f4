"""Models against torchvision's same architecture, with the same weights: forward, train step, peak memory.

resnet18, resnet50, vgg11_bn and mobilenet_v2, and the modern families'
convnext_tiny, efficientnet_b0, mobilenet_v3_large and vit_b_16 (built for
the benchmark's image size), in contiguous and in
channels_last memory. The three models (blockzoo's, torchvision's, and a
second blockzoo copy for an A/A column: the noise floor) take turns call by
call; the ratio is blockzoo's fastest call over torchvision's.

Peak memory: on CPU, the peak of the bytes of live tensors during one eval
forward, counted from the outputs of every op by a ``TorchDispatchMode`` and
freed through weakref finalizers (CPU allocators keep no statistics torch
exposes, ``tracemalloc`` does not see torch's allocations, and a process's
RSS also moves with the allocator's caching). An output that shares its
storage with one of the op's inputs (a view, an in-place result) allocated
nothing and is not counted: the transposed weight that every ``F.linear``
takes is a view of the parameter, not memory the forward holds. On CUDA,
``torch.cuda.max_memory_allocated`` around the same forward.
Run alone: ``python -m benchmarks.bench_models``.
"""

from __future__ import annotations

import argparse
import weakref
from collections.abc import Callable

import torch
from torch import nn

# TorchDispatchMode is documented (the "extending torch" notes) but lives in a private module, and tree_leaves
# comes with it: torch offers no public way to see every op's output, which the CPU peak-memory count needs.
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import interleave

NAMES = (
    "resnet18", "resnet50", "vgg11_bn", "mobilenet_v2",
    "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large", "vit_b_16",
)  # fmt: skip


def _options(name: str, side: int) -> dict[str, int]:
    """A ViT's position embedding is built for one image size: both sides are built for the benchmark's."""
    return {"image_size": side} if name.startswith("vit_") else {}


def _pair(name: str, side: int) -> tuple[nn.Module, nn.Module]:
    import torchvision

    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(**_options(name, side))
    ours = blockzoo.create_model(name, **_options(name, side))
    return blockzoo.models.load_torchvision_weights(ours, theirs.state_dict()), theirs


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
    only), so the peak is tracked from the ops' outputs, freed through weakref finalizers. An output
    on the storage one of the op's inputs had before it ran is a view or an in-place result: no new
    memory (an ``out=`` or ``resize_`` op that allocates gives its output a new storage, counted). Counting
    it would count the storage it views, such as a weight that ``F.linear`` transposes, as allocated by
    the forward and never freed (a parameter outlives the forward).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _free(self, ptr: int, nbytes: int) -> None:
        self.live -= nbytes
        self.seen.discard(ptr)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        # The inputs' storages before the op: an out= or resize_ op that allocates moves its output's storage.
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if (
                isinstance(t, torch.Tensor)
                and (ptr := t.untyped_storage().data_ptr()) not in self.seen
                and ptr not in inputs
            ):
                nbytes = t.untyped_storage().nbytes()
                self.seen.add(ptr)
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t.untyped_storage(), self._free, ptr, nbytes)
        return out


def peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of live tensors during one forward without gradients (see the module's docstring)."""
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    mode = _LiveBytes()
    with mode, torch.no_grad():
        model(x)
    return mode.peak


def measure(name: str, *, batch: int, side: int, calls: int, warmup: int = 2) -> list[Record | Skip]:
    """Forward and train step in both memory formats, and the forward's peak memory, of one model."""
    ours, theirs = _pair(name, side)
    twin = blockzoo.create_model(name, **_options(name, side))
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 3, side, side)
    rows: list[Record | Skip] = []
    for memory in ("contiguous", "channels_last"):
        fmt = torch.channels_last if memory == "channels_last" else torch.contiguous_format
        xm = x.contiguous(memory_format=fmt)
        models = {k: m.to(memory_format=fmt) for k, m in (("ours", ours), ("theirs", theirs), ("twin", twin))}
        for label, make in (("forward", _forward), ("train step", _train_step)):
            times = interleave({k: make(m, xm) for k, m in models.items()}, calls=calls, warmup=warmup)
            rows.append(
                Record.from_samples(
                    f"models/{name}/{label}/{memory}/vs torchvision",
                    times["ours"],
                    times["theirs"],
                    twin=times["twin"],
                    target="<= 1.02",
                    note=f"batch {batch}, {side}x{side}" if label == "forward" and memory == "contiguous" else "",
                )
            )
    ours, theirs = ours.to(memory_format=torch.contiguous_format), theirs.to(memory_format=torch.contiguous_format)
    ours_peak, theirs_peak = peak_bytes(ours.eval(), x), peak_bytes(theirs.eval(), x)
    rows.append(
        Record(
            f"models/{name}/peak memory/vs torchvision",
            ours_peak,
            theirs_peak,
            "B",
            ours_peak / theirs_peak,
            (ours_peak / theirs_peak,) * 2,
            target="<= 1.02",
        ).explain()
    )
    return rows


def cases(settings: Settings) -> list[Case]:
    batch, side, calls, warmup = (2, 32, 1, 0) if settings.quick else (8, 112, 8, 2)
    return [
        Case(f"models/{name}", lambda n=name: measure(n, batch=batch, side=side, calls=calls, warmup=warmup))
        for name in NAMES
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=112)
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    for model_name in NAMES:
        print_rows(measure(model_name, batch=args.batch, side=args.side, calls=args.calls))
