"""The course's optimizer comparison: SGD, Adam, RMSprop and Adagrad on digits.

Trains the same MLP (same initial weights) with each optimizer, built by
``blockzoo.create_optimizer``, on scikit-learn's 8x8 digits, and plots the
training-loss curves in one figure with the validation accuracy in the legend.
Needs the ``train`` extra (scikit-learn, matplotlib).

Run it with ``python examples/compare_optimizers.py --out optimizers.png``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

import blockzoo
from blockzoo.data import digits

OPTIMIZERS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 1e-3},
    "rmsprop": {"lr": 1e-3},
    "adagrad": {"lr": 0.05},
}


def train(
    model: nn.Module, name: str, data: tuple[torch.Tensor, ...], *, epochs: int, batch_size: int = 32
) -> tuple[list[float], float]:
    """Train with one optimizer; return the loss after each epoch and the final validation accuracy."""
    x_train, y_train, x_val, y_val = data
    opt = blockzoo.create_optimizer(model, name, weight_decay=1e-4, **OPTIMIZERS[name])
    loss_fn = nn.NLLLoss()  # the model ends in LogSoftmax
    gen = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(batch_size):
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        curve.append(total / len(x_train))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return curve, accuracy


def main(epochs: int = 15, out: str | None = None) -> dict[str, tuple[list[float], float]]:
    torch.manual_seed(0)
    data = digits()
    start = nn.Sequential(blockzoo.MLP(64, (128, 64), 10), nn.LogSoftmax(dim=1))
    results = {name: train(copy.deepcopy(start), name, data, epochs=epochs) for name in OPTIMIZERS}
    for name, (curve, accuracy) in results.items():
        print(f"{name:<8} loss {curve[0]:.3f} -> {curve[-1]:.3f}   validation accuracy {accuracy:.1%}")
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, (curve, accuracy) in results.items():
            ax.plot(range(1, epochs + 1), curve, marker="o", markersize=3, label=f"{name} (val acc {accuracy:.1%})")
        ax.set(xlabel="epoch", ylabel="training loss (NLL)", yscale="log", title="Optimizers on digits, same MLP")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        print(f"saved {out}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default=None, help="where to save the plot (PNG)")
    args = parser.parse_args()
    main(args.epochs, args.out)
