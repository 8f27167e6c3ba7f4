"""``fit`` in each process that torchrun starts (``python -m torch.distributed.run ... distributed_fit.py MODE OUT``).

The tests in ``test_distributed.py`` launch it and compare what rank 0 saves with one process's run.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from blockzoo.train import Callback, StepOutput, Trainer, fit

#: Samples: 29 for training (the last batch of 8 has 5, shared 3 + 2) and 17 for validation (odd; the last
#: batch has 1 sample, so rank 1 runs a filler it does not count).
TRAIN, VAL, BATCH = 29, 17, 8


def make_model(seed: int = 0) -> nn.Module:
    """A model without batch norm: each process's share of a batch then changes nothing but the gradient's sum."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def make_bn_model(seed: int = 0) -> nn.Module:
    """A model with batch norm, whose running statistics each process updates from its own share."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def make_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(TRAIN + VAL, 6, generator=gen), torch.randint(0, 3, (TRAIN + VAL,), generator=gen)
    return (x[:TRAIN], y[:TRAIN]), (x[TRAIN:], y[TRAIN:])


class CrashInEpoch2(Callback):
    """Fails after the first step of epoch 2, as a killed run would; the checkpoint of epoch 1 is on disk."""

    def on_batch_end(self, trainer: Trainer, index: int, result: StepOutput) -> None:
        if trainer.epoch == 2:
            raise RuntimeError("crash")


def run(
    strategy: str, out: Path, *, callbacks: tuple[Callback, ...] = (), resume: Path | None = None
) -> tuple[nn.Module, list[dict[str, float]]]:
    # each process builds its model from its own seed, as a script that seeds nothing would: fit starts them
    # all from rank 0's weights, which are those of one process (seed 0)
    model = make_model(seed=100 * rank())
    train, val = make_data()
    history = fit(
        model,
        train,
        val_data=val,
        epochs=2,
        batch_size=BATCH,
        optimizer="sgd",
        lr=0.5,
        seed=0,
        progress="lines",
        device="cpu",
        out_dir=out / "run",
        strategy=strategy,
        callbacks=callbacks,
        resume=resume,
    )
    return model, history.rows


class CrashInRank1(Callback):
    """Fails in rank 1 alone, after its first step: rank 0 goes on into the epoch's next collective."""

    def on_batch_end(self, trainer: Trainer, index: int, result: StepOutput) -> None:
        if rank() == 1:
            raise RuntimeError("crash in rank 1")


class StopInRank1(Callback):
    """Asks to stop after epoch 1 in rank 1 only; rank 0's decision (go on) is the one taken."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, float]) -> None:
        if rank() == 1:
            trainer.stop("rank 1 alone")


class DrawAfterFirstStep(Callback):
    """Records a number drawn from torch's RNG after the first step: each process has its own stream."""

    def __init__(self) -> None:
        self.drawn: float | None = None

    def on_batch_end(self, trainer: Trainer, index: int, result: StepOutput) -> None:
        if self.drawn is None:
            self.drawn = float(torch.rand(()))


def other_runs(out: Path) -> None:
    """Batch norm, a validation loader that differs by process, and the processes' RNGs; each rank writes what it saw.

    The batch norm run validates on the shared tensors; the other reads a DataLoader whose targets differ by
    process, so only rank 0's figures, and its decisions (the best epoch, stopping), keep the processes together.
    """
    from torch.utils.data import DataLoader, TensorDataset

    train, val = make_data()
    bn = make_bn_model(seed=rank())
    options: dict[str, Any] = {"batch_size": BATCH, "optimizer": "sgd", "lr": 0.5, "seed": 0, "device": "cpu"}
    bn_rows = fit(bn, train, val_data=val, epochs=2, progress=False, out_dir=out / "bn", **options).rows
    own_val = DataLoader(TensorDataset(val[0], (val[1] + rank()) % 3), batch_size=4)
    model, draw = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3)), DrawAfterFirstStep()
    history = fit(
        model, train, val_data=own_val, epochs=2, progress=False, restore_best=True,
        callbacks=[StopInRank1(), draw], **options,
    )  # fmt: skip
    seen = {"bn_rows": bn_rows, "bn_state": {k: v.tolist() for k, v in bn.state_dict().items()}}
    seen |= {"rows": history.rows, "drawn": draw.drawn, "weights": [p.tolist() for p in model.parameters()]}
    (out / f"rank{rank()}.json").write_text(json.dumps(seen))


def note_exit(out: Path) -> None:
    """Write when this process finished exiting: runs after fit's exit handler (handlers run last in, first out)."""
    atexit.register(lambda: (out / f"exit{rank()}.txt").write_text(repr(time.time())))


def main() -> None:
    torch.set_num_threads(1)
    mode, out = sys.argv[1], Path(sys.argv[2])
    strategy = "fsdp" if mode == "fsdp" else "ddp"
    note_exit(out)
    if mode == "crash1":
        run(strategy, out, callbacks=(CrashInRank1(),))
        return
    if mode == "raise0":  # fit ends in both; then rank 0 fails in its own code while rank 1 starts another fit
        run(strategy, out)
        if rank() == 0:
            raise RuntimeError("rank 0 failed after fit")
        run(strategy, out / "again")
        return
    if mode == "resume":  # stopped in epoch 2, then resumed from the checkpoint of epoch 1
        try:
            run(strategy, out, callbacks=(CrashInEpoch2(),))
        except RuntimeError as err:
            print(f"stopped: {err}", flush=True)
        model, rows = run(strategy, out, resume=out / "run")
    else:
        model, rows = run(strategy, out)
        if mode == "ddp":
            other_runs(out)
    # the group fit joined stays for a later fit in this process (it is left at exit)
    print(f"rank-done {dist.is_initialized()}", flush=True)
    if os.environ["RANK"] != "0":
        return
    if strategy == "ddp":
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "weights.pt")
    (out / "rows.json").write_text(json.dumps(rows))
    # rank 1 has left already: it waits at the exit barrier while rank 0 still works
    time.sleep(0.5)
    (out / "end0.txt").write_text(repr(time.time()))


if __name__ == "__main__":
    main()
