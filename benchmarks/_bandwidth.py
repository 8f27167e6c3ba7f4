"""The memory-bandwidth bound of an optimizer step, measured with torch ops.

An elementwise optimizer step over tens of millions of parameters does a few
floating-point operations per byte it touches, so on a CPU it is bound by memory
traffic, not by arithmetic: no implementation can take less time than the bytes
it must move divided by the bandwidth of the machine. This module measures that
bandwidth with the same kind of torch ops the steps use, and says how many bytes
each optimizer moves per parameter, so a report can state the bound next to the
measured step.

Bytes per parameter, for float32 parameters (4 bytes each) updated in one pass,
every tensor read once and written at most once:

- AdamW reads the parameter, its gradient and the two moment buffers
  ``exp_avg`` and ``exp_avg_sq`` (4 reads) and writes back the parameter and
  both moments (3 writes): 7 x 4 = 28 bytes.
- SGD with momentum reads the parameter, its gradient and the momentum buffer
  (3 reads) and writes the parameter and the buffer (2 writes): 5 x 4 = 20 bytes.

Weight decay, bias correction and the learning rate are per-element arithmetic
or per-tensor scalars: they add no traffic to a fused pass. A foreach or
for-loop implementation makes several passes and moves more, which is why it is
slower than the bound by more than the fused one.

Example:
    >>> ADAMW_BYTES_PER_PARAM, SGD_MOMENTUM_BYTES_PER_PARAM
    (28, 20)
    >>> round(bound_seconds(25_557_032, ADAMW_BYTES_PER_PARAM, 42e9) * 1e3, 1)  # resnet50 at 42 GB/s, in ms
    17.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "ADAMW_BYTES_PER_PARAM",
    "SGD_MOMENTUM_BYTES_PER_PARAM",
    "Bandwidth",
    "bound_seconds",
    "measure_bandwidth",
]

FLOAT32_BYTES = 4
ADAMW_BYTES_PER_PARAM = 7 * FLOAT32_BYTES  # read param, grad, exp_avg, exp_avg_sq; write param, exp_avg, exp_avg_sq
SGD_MOMENTUM_BYTES_PER_PARAM = 5 * FLOAT32_BYTES  # read param, grad, momentum buffer; write param, buffer


@dataclass(frozen=True)
class Bandwidth:
    """Memory bandwidth in bytes per second, from the fastest of several passes.

    Attributes:
        copy: ``dst.copy_(src)``: one read and one write per element.
        read_read_write: ``torch.add(a, b, out=c)``: two reads and one write per
            element, the mix closest to an optimizer step.
        nbytes: Size of each tensor the passes ran over.
    """

    copy: float
    read_read_write: float
    nbytes: int


def _fastest(fn: Callable[[], object], repeats: int) -> float:
    fn()  # touch every page first: the first pass pays for page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_bandwidth(*, nbytes: int = 128 * 2**20, repeats: int = 5) -> Bandwidth:
    """Measure copy and read-read-write bandwidth over float32 tensors of ``nbytes`` each.

    ``nbytes`` should be several times the last-level cache (32 MiB here) so the
    passes go to memory. The fastest of ``repeats`` passes counts: interference
    from other processes only ever adds time. Runs with torch's current thread
    count, like the optimizer steps it bounds.
    """
    numel = nbytes // FLOAT32_BYTES
    a, b, c = (torch.rand(numel) for _ in range(3))
    copy = _fastest(lambda: c.copy_(a), repeats)
    rrw = _fastest(lambda: torch.add(a, b, out=c), repeats)
    moved = numel * FLOAT32_BYTES
    return Bandwidth(copy=2 * moved / copy, read_read_write=3 * moved / rrw, nbytes=moved)


def bound_seconds(num_params: int, bytes_per_param: int, bandwidth: float) -> float:
    """The least time one step can take: the bytes it must move over the bandwidth (bytes per second)."""
    return num_params * bytes_per_param / bandwidth


if __name__ == "__main__":
    bw = measure_bandwidth()
    print(
        f"{torch.get_num_threads()} threads, {bw.nbytes / 2**20:.0f} MiB tensors: copy {bw.copy / 1e9:.1f} GB/s, "
        f"read-read-write {bw.read_read_write / 1e9:.1f} GB/s"
    )
