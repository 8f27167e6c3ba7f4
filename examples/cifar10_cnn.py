"""The course's CIFAR-10 tutorial with blockzoo: build the CNN, train it on the CPU, then on a GPU.

The course's network is three conv -> batch-norm -> ReLU -> max-pool stages
and a fully connected head ending in LogSoftmax (for NLLLoss). Here it trains
with ``blockzoo.train.fit`` on scikit-learn's digits enlarged to 32x32 with
three channels (``digits(image_size=32, channels=3)``): CIFAR-10's shape,
nothing to download, a few seconds per epoch on a CPU. The script traces the
shapes layer by layer, trains on the CPU, saves the loss and accuracy curves,
and then, when a GPU is there, trains the same network again on it with bf16
autocast and the channels_last memory format. Needs the ``train`` extra.

For CIFAR-10 itself, ``load_data("cifar10", root="data", download=True)``
gives the training and test sets as Datasets, normalised and augmented;
``fit`` takes them as they are.

Run it with ``python examples/cifar10_cnn.py --out curves.png``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from blockzoo import ClassifierHead, ConvBlock, trace_shapes
from blockzoo.data import Split, digits
from blockzoo.train import History, fit


def build_cnn(num_classes: int = 10) -> nn.Sequential:
    """Three conv stages (32x32 -> 4x4) and a flattening classifier head."""
    return nn.Sequential(
        ConvBlock(3, 32),
        ConvBlock(32, 64),
        ConvBlock(64, 128),
        ClassifierHead(128 * 4 * 4, num_classes, pool_layer=None, drop_rate=0.25, log_probs=True),
    )


def train(
    data: Split, *, epochs: int, device: str, progress: bool, amp: str | None = None, channels_last: bool = False
) -> History:
    """Train a fresh network (the same initial weights every time) and return its history."""
    torch.manual_seed(0)
    model = build_cnn()
    return fit(
        model,
        data,  # a digits() split: its validation part is measured after every epoch
        epochs=epochs,
        batch_size=64,
        optimizer="adamw",
        lr=3e-3,
        loss="nll",  # the head ends in LogSoftmax
        device=device,
        progress=progress,
        amp=amp,  # None: float32; "bf16": autocast to bfloat16 (on a GPU)
        channels_last=channels_last,  # NHWC memory, which GPU convolutions prefer
        seed=0,
    )


def main(
    epochs: int = 8, out: str | None = None, *, samples: int | None = None, progress: bool = True, gpu: bool = True
) -> dict[str, History]:
    data = digits(image_size=32, channels=3)  # [N, 3, 32, 32] in [0, 1], like CIFAR-10
    if samples is not None:  # a quick look: the first samples only
        data = Split(data.x_train[:samples], data.y_train[:samples], data.x_val[:samples], data.y_val[:samples])
    print(f"training images {tuple(data.x_train.shape)}, validation images {tuple(data.x_val.shape)}")
    trace_shapes(build_cnn(), data.x_train[:8])

    # On the CPU first, as the course does.
    histories = {"cpu": train(data, epochs=epochs, device="cpu", progress=progress)}
    if out:
        figure = histories["cpu"].plot()  # loss and accuracy, train and validation, best epoch marked
        figure.axes[0].set_yscale("log")  # on a log scale the late gap between the two losses shows
        figure.savefig(out, dpi=120)
        print(f"saved {out}")

    # On a GPU: the same call with device="cuda"; bf16 autocast and channels_last make it faster.
    if gpu and torch.cuda.is_available():
        histories["cuda"] = train(data, epochs=epochs, device="cuda", progress=progress, amp="bf16", channels_last=True)

    for device, history in histories.items():
        best = history.best()
        print(
            f"{device}: best validation accuracy {best['val_accuracy']:.1%} at epoch {int(best['epoch'])}, "
            f"{history['samples_per_second'][-1]:,.0f} training images/s in the last epoch"
        )
    return histories


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=None, help="where to save the curves (PNG)")
    parser.add_argument("--samples", type=int, default=None, help="use only the first N samples (a quick look)")
    parser.add_argument("--no-progress", action="store_true", help="print nothing while training")
    args = parser.parse_args()
    main(args.epochs, args.out, samples=args.samples, progress=not args.no_progress)
