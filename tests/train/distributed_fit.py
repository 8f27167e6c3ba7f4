"""``fit`` in each process that torchrun starts (``python -m torch.distributed.run ... distributed_fit.py MODE OUT``).

The tests in ``test_distributed.py`` launch it and compare what rank 0 saves with one process's run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from blockzoo.train import Callback, StepOutput, Trainer, fit

#: Samples: 29 for training (the last batch of 8 has 5, shared 3 + 2) and 13 for validation (odd).
TRAIN, VAL, BATCH = 29, 13, 8


def make_model() -> nn.Module:
    """A model without batch norm: each process's share of a batch then changes nothing but the gradient's sum."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


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
    model = make_model()
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


def main() -> None:
    torch.set_num_threads(1)
    mode, out = sys.argv[1], Path(sys.argv[2])
    strategy = "fsdp" if mode == "fsdp" else "ddp"
    if mode == "resume":  # stopped in epoch 2, then resumed from the checkpoint of epoch 1
        try:
            run(strategy, out, callbacks=(CrashInEpoch2(),))
        except RuntimeError as err:
            print(f"stopped: {err}", flush=True)
        model, rows = run(strategy, out, resume=out / "run")
    else:
        model, rows = run(strategy, out)
    # the group fit joined stays for a later fit in this process (it is left at exit)
    print(f"rank-done {dist.is_initialized()}", flush=True)
    if os.environ["RANK"] != "0":
        return
    if strategy == "ddp":
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "weights.pt")
    (out / "rows.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
