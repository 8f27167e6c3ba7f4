"""What surrounds a run of :class:`~blockzoo.train.Trainer`: Ctrl-C at a step boundary, and deterministic algorithms."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import torch

__all__ = ["deterministic", "interrupt_guard"]


class _InterruptGuard:
    """Turns the first Ctrl-C during training into a request to stop at the next step boundary.

    Stopping in the middle of ``optimizer.step()`` would leave the weights half
    updated, so the handler only sets a flag that the loop reads after each
    step. A second Ctrl-C interrupts at once, as usual.
    """

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        self.requested = False
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: FrameType | None) -> None:
            self.requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("\nCtrl-C: stopping after this step (press it again to stop at once)", file=sys.stderr, flush=True)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self.requested = False


interrupt_guard = _InterruptGuard()


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the run only."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    # cuBLAS needs a fixed workspace for deterministic matmuls (torch's reproducibility notes); it reads this
    # when it makes its handle, so it takes effect unless CUDA already ran a matmul in this process
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
