"""
The CIFAR-10 classifier end to end, on the CPU and then on a GPU
================================================================

The course's workshop follows PyTorch's "Training a classifier": load
CIFAR-10, define a convolutional network, a loss and an optimizer, train on
the CPU, measure on the validation images, then move the same code to a
GPU. This page does the same with blockzoo: the network is built from
blocks, :func:`~blockzoo.train.fit` is the training loop, and
:meth:`~blockzoo.train.History.plot` draws the curves.
"""

# %%
# The data
# --------
#
# CIFAR-10 is 60,000 32x32 colour images in 10 classes, a download of
# 170 MB. So that this page runs anywhere in seconds, it trains on
# scikit-learn's handwritten digits enlarged to the same shape: 1,797
# images, 8x8 pixels made 32x32 by bilinear interpolation, the grey channel
# repeated as red, green and blue. A network written for CIFAR-10 takes them
# unchanged. The last section swaps in CIFAR-10 itself.

import torch
from torch import nn

from blockzoo import ClassifierHead, ConvBlock, trace_shapes
from blockzoo.data import digits
from blockzoo.train import History, fit

data = digits(image_size=32, channels=3)  # [N, 3, 32, 32] in [0, 1], like CIFAR-10
print(f"training images {tuple(data.x_train.shape)}, validation images {tuple(data.x_val.shape)}")

# %%
# The network
# -----------
#
# The course's CNN is three stages of convolution, batch norm, ReLU and max
# pooling (32x32 → 16x16 → 8x8 → 4x4), then a fully connected layer on the
# flattened ``128 x 4 x 4`` map. Each stage is a :class:`~blockzoo.ConvBlock`,
# and the head a :class:`~blockzoo.ClassifierHead` that ends in
# ``LogSoftmax`` for the course's ``NLLLoss`` (see
# :doc:`07_sgd_nllloss_logsoftmax`). The zoo has the same network as
# ``create_model("simple_cnn")``, ending in logits for cross-entropy.


def build_cnn(num_classes: int = 10) -> nn.Sequential:
    """Three conv stages (32x32 -> 4x4) and a flattening classifier head."""
    return nn.Sequential(
        ConvBlock(3, 32),
        ConvBlock(32, 64),
        ConvBlock(64, 128),
        ClassifierHead(128 * 4 * 4, num_classes, pool_layer=None, drop_rate=0.25, log_probs=True),
    )


_ = trace_shapes(build_cnn(), data.x_train[:8])

# %%
# Training on the CPU
# -------------------
#
# The course's loop (batches, forward, loss, ``backward()``, ``step()``,
# validation) is one call. ``loss="nll"`` matches the ``LogSoftmax`` head,
# and a :func:`~blockzoo.data.digits` split brings its own validation part,
# measured after every epoch.


def train(*, epochs: int, device: str, amp: str | None = None, channels_last: bool = False) -> History:
    """Train a fresh network (the same initial weights every time) and return its history."""
    torch.manual_seed(0)
    return fit(
        build_cnn(),
        data,
        epochs=epochs,
        batch_size=64,
        optimizer="adamw",
        lr=3e-3,
        loss="nll",  # the head ends in LogSoftmax
        device=device,
        amp=amp,  # None: float32; "bf16": autocast to bfloat16 (on a GPU)
        channels_last=channels_last,  # NHWC memory, which GPU convolutions prefer
        progress="lines",
        seed=0,
    )


histories = {"cpu": train(epochs=5, device="cpu")}

# %%
# Reading the curves
# ------------------
#
# :meth:`~blockzoo.train.History.plot` draws the loss and the accuracy, on
# the training and the validation images, and marks the best epoch; here
# the loss is on a log scale, where the small late values stay apart.

figure = histories["cpu"].plot()
figure.axes[0].set_yscale("log")

# %%
# **The loss falls**, fast in the first two epochs, then more slowly. The
# first epoch's training loss sits *above* the validation loss, which looks
# wrong and is not: the training loss is the mean over the epoch's batches,
# most of them seen by a network that had barely started learning, with
# dropout on; the validation loss is measured once, after the epoch, in
# evaluation mode. The training curve lags about half an epoch behind.
#
# **Validation accuracy** is the figure that matters. The dotted line marks
# the best epoch by the monitored metric (``val_accuracy``, ``fit``'s default
# ``monitor``); with ``out_dir`` its weights are saved in
# ``best.safetensors``, and ``restore_best=True`` puts them back into the
# model at the end. 359 validation images make each image worth 0.28 points,
# so differences of a point or less between epochs are noise.
#
# **A gap that opens is overfitting.** When the training loss keeps falling
# and the validation loss stops following it, or rises, the network is
# learning things about its training images that do not hold for others.
# The remedies: stop there (:class:`~blockzoo.train.EarlyStopping` on
# ``val_loss`` with ``restore_best=True``), regularize (see
# :doc:`06_improving_a_network`), or give the network more varied data (the
# random crops and flips that ``load_data("cifar10")`` applies by default).
#
# On a GPU
# --------
#
# The course moves the model and every batch to the GPU with
# ``.to("cuda")`` (see :doc:`03_moving_to_the_gpu`). With ``fit`` that is
# ``device="cuda"``. Two more options make a GPU much faster:
# ``amp="bf16"`` runs the forward pass in bfloat16 under autocast (tensor
# cores, and no gradient scaler needed), and ``channels_last=True`` stores
# images and convolution weights in the NHWC layout that GPU convolutions
# prefer. This part runs only where there is a GPU; the documentation is
# built on a CPU.

if torch.cuda.is_available():
    histories["cuda"] = train(epochs=5, device="cuda", amp="bf16", channels_last=True)

for device, history in histories.items():
    best = history.best()
    print(
        f"{device}: best validation accuracy {best['val_accuracy']:.1%} at epoch {int(best['epoch'])}, "
        f"{history['samples_per_second'][-1]:,.0f} training images/s in the last epoch"
    )

# %%
# With CIFAR-10 itself
# --------------------
#
# :func:`~blockzoo.data.load_data` gives CIFAR-10's training and test sets
# as datasets, normalised with its per-channel mean and standard deviation,
# with random crops and flips on the training set; ``fit`` reads them
# through DataLoaders with worker processes. This downloads 170 MB, so it is
# not run here:
#
# .. code-block:: python
#
#     from blockzoo import create_model
#     from blockzoo.data import load_data
#
#     train_set, test_set, info = load_data("cifar10", root="~/data", download=True)
#     model = create_model("simple_cnn", num_classes=info.num_classes)
#     history = fit(model, train_set, val_data=test_set, epochs=30, scheduler="onecycle", num_workers=4,
#                   device="cuda", amp="bf16", channels_last=True, out_dir="runs/cifar10")
#     history.plot("curves.png")
#
# The command line does the same with
# ``blockzoo train simple_cnn --data cifar10 --data-dir ~/data``.
