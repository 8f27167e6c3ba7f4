"""The course's regularization exercise: an MLP that overfits digits, then L2 and dropout.

A wide MLP trains with SGD on a small slice of scikit-learn's digits (300
images) in which 30% of the labels have been replaced by random ones, so
memorising the training set hurts: its training loss falls towards zero while
the validation loss turns and rises. Three more copies start from the same
weights: with an L2 penalty attached by ``blockzoo.regularization``, with
dropout (``MLP(drop_rate=0.5)``), and with both. Train and validation curves
go into one plot. Needs the ``train`` extra.

Run it with ``python examples/regularization_digits.py --out regularization.png``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import blockzoo
from blockzoo.data import digits
from blockzoo.regularization import L2, attach_penalty, regularization_loss

VARIANTS = ("none", "L2", "dropout", "L2 + dropout")


def make_model(drop_rate: float) -> nn.Module:
    torch.manual_seed(0)  # every variant starts from the same weights
    return blockzoo.MLP(64, (512, 512), 10, drop_rate=drop_rate)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def train(variant: str, data: blockzoo.data.Split, *, epochs: int, l2: float) -> dict[str, list[float]]:
    x_train, y_train, x_val, y_val = data
    model = make_model(0.5 if "dropout" in variant else 0.0)
    if "L2" in variant:
        attach_penalty(model, L2(l2))  # every linear weight; biases stay free
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(32):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]) + regularization_loss(model)
            loss.backward()
            opt.step()
        train_loss, _ = evaluate(model, x_train, y_train)  # the data term only (noisy labels), comparable
        val_loss, val_acc = evaluate(model, x_val, y_val)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
    return history


def noisy_labels(y: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """``y`` with a ``fraction`` of its labels replaced by random classes."""
    gen = torch.Generator().manual_seed(seed)
    y = y.clone()
    flip = torch.rand(len(y), generator=gen) < fraction
    y[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=gen)
    return y


def main(
    epochs: int = 80, out: str | None = None, *, train_size: int = 300, label_noise: float = 0.3, l2: float = 1e-3
) -> dict[str, dict[str, list[float]]]:
    full = digits()
    y_train = noisy_labels(full.y_train[:train_size], label_noise)
    data = blockzoo.data.Split(full.x_train[:train_size], y_train, full.x_val, full.y_val)
    results = {variant: train(variant, data, epochs=epochs, l2=l2) for variant in VARIANTS}
    for variant, h in results.items():
        print(
            f"{variant:<13} train loss {h['train_loss'][-1]:.3f}   validation loss {h['val_loss'][-1]:.3f} "
            f"(best {min(h['val_loss']):.3f})   validation accuracy {h['val_acc'][-1]:.1%}"
        )
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        epochs_axis = range(1, epochs + 1)
        for (variant, h), color in zip(results.items(), ("C0", "C1", "C2", "C3"), strict=True):
            ax.plot(epochs_axis, h["train_loss"], color=color, linestyle="--", linewidth=1)
            ax.plot(epochs_axis, h["val_loss"], color=color, label=f"{variant} (val acc {h['val_acc'][-1]:.1%})")
        ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Train (dashed) and validation (solid) loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        print(f"saved {out}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--out", default=None, help="where to save the plot (PNG)")
    args = parser.parse_args()
    main(args.epochs, args.out)
