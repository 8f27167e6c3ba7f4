"""The course's CIFAR-10 CNN, built from blockzoo blocks.

Three conv -> batch-norm -> ReLU -> max-pool stages and a fully connected head
ending in LogSoftmax (for NLLLoss). The script traces the shapes layer by layer,
then runs one forward and backward pass on a CIFAR-10-shaped batch, on the GPU
when there is one. The batch is random: nothing is downloaded.

Run it with ``python examples/cifar10_cnn.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from blockzoo import ClassifierHead, ConvBlock, trace_shapes


def build_cnn(num_classes: int = 10) -> nn.Sequential:
    """Three conv stages (32x32 -> 4x4) and a flattening classifier head."""
    return nn.Sequential(
        ConvBlock(3, 32),
        ConvBlock(32, 64),
        ConvBlock(64, 128),
        ClassifierHead(128 * 4 * 4, num_classes, pool_layer=None, drop_rate=0.25, log_probs=True),
    )


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_cnn().to(device)
    images = torch.randn(8, 3, 32, 32, device=device)  # a CIFAR-10-shaped batch
    labels = torch.randint(0, 10, (8,), device=device)

    print(f"device: {device}; parameters: {sum(p.numel() for p in model.parameters()):,}")
    trace_shapes(model, images)

    model.train()
    loss = nn.NLLLoss()(model(images), labels)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    print(f"loss {loss.item():.4f}; gradients on {sum(g is not None for g in grads)} of {len(grads)} parameters")


if __name__ == "__main__":
    main()
