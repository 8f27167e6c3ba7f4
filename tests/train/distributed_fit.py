"""``fit`` in each process that torchrun starts (``python -m torch.distributed.run ... distributed_fit.py MODE OUT``).

The tests in ``test_distributed.py`` launch it and compare what rank 0 saves with one process's run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from blockzoo.train import fit

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


def run(strategy: str, out: Path, epochs: int = 2) -> tuple[nn.Module, list[dict[str, float]]]:
    model = make_model()
    train, val = make_data()
    history = fit(
        model,
        train,
        val_data=val,
        epochs=epochs,
        batch_size=BATCH,
        optimizer="sgd",
        lr=0.5,
        seed=0,
        progress="lines",
        device="cpu",
        out_dir=out / "run",
        strategy=strategy,
    )
    return model, history.rows


def main() -> None:
    torch.set_num_threads(1)
    strategy, out = sys.argv[1], Path(sys.argv[2])
    model, rows = run(strategy, out)
    # fit left the group it created: a check here that it did, then the saved weights
    print(f"rank-done {dist.is_initialized()}", flush=True)
    if strategy == "ddp":
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "weights.pt")
    (out / "rows.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
