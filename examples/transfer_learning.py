"""Transfer learning with blockzoo, offline, on scikit-learn's digits.

1. "Pre-train" a small CNN on the digits 0-4 and save its weights (safetensors).
2. Build a fresh model, load those weights, freeze the backbone by name pattern
   with ``blockzoo.select``, and reset the classifier for all ten digits.
3. Fine-tune only the head on the digits 0-9 and report validation accuracy.

With real pretrained weights, step 1 is ``create_model(name, pretrained=...)``
or ``load_weights(model, url, sha256=...)``. Needs the ``train`` extra.
Run it with ``python examples/transfer_learning.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

import blockzoo
from blockzoo.data import digits


def make_model(num_classes: int) -> nn.Module:
    return blockzoo.create_model("simple_cnn", in_channels=1, img_size=8, widths=(16, 32), num_classes=num_classes)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float) -> None:
    opt = blockzoo.create_optimizer(model, "adamw", lr=lr, weight_decay=1e-4)  # frozen parameters are left out
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main(epochs: int = 10) -> dict[str, float]:
    torch.manual_seed(0)
    x_train, y_train, x_val, y_val = digits(images=True)
    first = y_train < 5

    source = make_model(num_classes=5)  # 1. pre-train on 0-4 and save
    fit(source, x_train[first], y_train[first], epochs=epochs, lr=3e-3)
    path = blockzoo.save_weights(source, Path(tempfile.mkdtemp()) / "digits04.safetensors")

    model = make_model(num_classes=5)  # 2. load, freeze the backbone, new head
    blockzoo.load_weights(model, path)
    for _, p in blockzoo.select(model, include="features.*"):
        p.requires_grad_(False)
    model.reset_classifier(10)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]

    fit(model, x_train, y_train, epochs=epochs, lr=1e-2)  # 3. fine-tune the head on 0-9
    # Batch-norm statistics of a frozen backbone still adapt in train mode; freeze them with model.features.eval().
    result = {"val_accuracy": accuracy(model, x_val, y_val), "trainable_tensors": float(len(trainable))}
    print(f"trainable: {trainable}")
    print(f"validation accuracy on all ten digits, head only: {result['val_accuracy']:.1%}")
    return result


if __name__ == "__main__":
    main()
