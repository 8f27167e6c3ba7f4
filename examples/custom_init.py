"""The course's custom initialisation: PyTorch's default, Kaiming and LSUV on a deep plain CNN.

A deep convolutional network without normalisation or shortcuts (eight 3x3
conv + ReLU layers, then a linear classifier) is written in plain ``torch.nn``,
so "default" is PyTorch's own initialisation. Three copies start from:

- ``default``: PyTorch's per-layer default (``kaiming_uniform_(a=sqrt(5))``),
  which shrinks the signal at every ReLU layer;
- ``kaiming``: ``blockzoo.init_weights(model)``, the activation-aware default
  (He normal for the ReLU layers, Glorot for the classifier);
- ``lsuv``: ``blockzoo.lsuv_(model, batch)``, orthogonal weights rescaled until
  each layer's output has unit variance on a batch.

Each is trained with the same SGD settings on scikit-learn's digits, and the
training-loss curves are plotted together. Needs the ``train`` extra.

Run it with ``python examples/custom_init.py --out init.png``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import blockzoo
from blockzoo.data import digits


def plain_cnn(depth: int = 8, width: int = 32) -> nn.Sequential:
    """``depth`` conv-ReLU layers on 1x8x8 digits, global average pooling and a linear classifier."""
    layers: list[nn.Module] = []
    channels = 1
    for _ in range(depth):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


def activation_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Std of each conv layer's output on ``x``: how the signal travels through the depth."""
    stds: list[float] = []
    handles = [
        m.register_forward_hook(lambda m, i, o: stds.append(o.std().item()))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return stds


def train(model: nn.Module, data: blockzoo.data.Split, *, epochs: int) -> tuple[list[float], float]:
    x_train, y_train, x_val, y_val = data
    opt = blockzoo.create_optimizer(model, "sgd", lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        curve.append(total / len(x_train))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return curve, accuracy


def main(epochs: int = 15, out: str | None = None) -> dict[str, dict[str, object]]:
    data = digits(images=True)
    batch = data.x_train[:256]
    models = {}
    for name in ("default", "kaiming", "lsuv"):
        torch.manual_seed(0)
        model = plain_cnn()
        if name == "kaiming":
            blockzoo.init_weights(model, seed=0)
        elif name == "lsuv":
            blockzoo.lsuv_(model, batch, generator=torch.Generator().manual_seed(0))
        models[name] = model
    print(blockzoo.init_report(models["kaiming"]))
    results: dict[str, dict[str, object]] = {}
    for name, model in models.items():
        stds = activation_stds(model, batch)
        curve, accuracy = train(model, data, epochs=epochs)
        results[name] = {"stds": stds, "curve": curve, "val_accuracy": accuracy}
        print(
            f"{name:<8} last conv output std {stds[-1]:.2e}   loss {curve[0]:.3f} -> {curve[-1]:.3f}   "
            f"validation accuracy {accuracy:.1%}"
        )
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name, result in results.items():
            stds, curve = result["stds"], result["curve"]
            left.plot(range(1, len(stds) + 1), stds, marker="o", markersize=3, label=name)  # type: ignore[arg-type]
            label = f"{name} (val acc {result['val_accuracy']:.1%})"
            right.plot(range(1, epochs + 1), curve, marker="o", markersize=3, label=label)  # type: ignore[arg-type]
        left.set(xlabel="conv layer", ylabel="output std at initialisation", yscale="log", title="Signal through depth")
        right.set(xlabel="epoch", ylabel="training loss", title="Training, same SGD settings")
        left.legend()
        right.legend()
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
