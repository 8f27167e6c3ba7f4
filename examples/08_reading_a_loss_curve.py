"""
Reading a loss curve, and validation accuracy
=============================================

The lab asks to interpret a plot of the loss against the training
iterations, a curve that first *rises* and then falls steadily, and
suggests adding the accuracy on a validation set. This page makes such a
curve on purpose, explains why it rises, and reads it next to a curve that
does not, and next to the validation accuracy.
"""

# %%
# Two runs, one with too large a first step
# -----------------------------------------
#
# The same multilayer perceptron trains twice with Adam, once with the
# learning rate ``1e-3`` and once with ``0.1``. The loss of every batch is
# kept (one point per iteration, as in the lab's plot), and after every
# epoch the model is measured on the validation images it never trains on.

import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import blockzoo
from blockzoo.data import digits

x_train, y_train, x_val, y_val = digits()
torch.manual_seed(0)
start = blockzoo.MLP(64, (128,), 10)


def train(lr: float, *, epochs: int = 8) -> dict[str, list[float]]:
    """Adam at ``lr``: the loss of every batch, and the validation accuracy after every epoch."""
    model = copy.deepcopy(start)
    optimizer = blockzoo.create_optimizer(model, "adam", lr=lr)
    generator = torch.Generator().manual_seed(1)
    curves: dict[str, list[float]] = {"loss": [], "val_accuracy": []}
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=generator).split(32):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            curves["loss"].append(loss.item())
        model.eval()
        with torch.no_grad():
            curves["val_accuracy"].append((model(x_val).argmax(1) == y_val).float().mean().item())
    return curves


runs = {lr: train(lr) for lr in (1e-3, 0.1)}
for lr, curves in runs.items():
    loss = curves["loss"]
    print(
        f"lr={lr:<6} loss at the start {loss[0]:.2f}, highest {max(loss[:20]):.2f} (iteration "
        f"{loss.index(max(loss[:20])) + 1}), last {loss[-1]:.2f}; validation accuracy "
        + " ".join(f"{a:.0%}" for a in curves["val_accuracy"])
    )

# %%
# The plots
# ---------
#
# The loss of a single batch jumps from one iteration to the next, because
# each batch holds different images; the thick line is a moving average over
# 20 iterations, the trend to read.


def moving_average(values: list[float], window: int = 20) -> list[float]:
    return [sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for (lr, curves), color in zip(runs.items(), ("C0", "C3"), strict=True):
    left.plot(curves["loss"], color=color, linewidth=0.5, alpha=0.4)
    left.plot(moving_average(curves["loss"]), color=color, linewidth=2, label=f"lr={lr}")
    epochs = range(1, len(curves["val_accuracy"]) + 1)
    right.plot(epochs, curves["val_accuracy"], color=color, marker="o", label=f"lr={lr}")
left.set(xlabel="iteration", ylabel="training loss", yscale="log", title="Training loss of each batch")
right.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy after each epoch")
left.legend()
right.legend()
fig.tight_layout()

# %%
# How to read them
# ----------------
#
# **Where it starts.** Both runs start near ``ln 10 ≈ 2.30``, the loss of a
# network that gives the ten classes equal probability: a first loss far
# from it points to the initialisation or to the labels.
#
# **The rise.** With ``lr=0.1`` the loss doubles in the first iterations
# before it falls. Adam's first steps move every weight by about the learning
# rate, whatever the size of its gradient; at ``0.1`` that is a large jump
# for every weight at once, and the network becomes confidently wrong. Within
# a few iterations Adam's running estimates of the gradients grow and its
# steps shrink, and the loss falls. A loss that rises at the start and then
# falls steadily, as in the lab, most often comes from such a first step: a
# learning rate too large for the initial weights. A warm-up (a learning rate
# that grows over the first iterations, ``warmup_steps`` in
# :func:`blockzoo.create_scheduler`) removes it. A loss that keeps rising, or
# becomes ``nan``, is a learning rate too large outright.
#
# **The trend and the noise.** After the rise both curves fall fast, then
# slowly; the spread of the thin line is the difference between batches, not
# a sign of trouble.
#
# **Validation accuracy** answers the question the loss does not: how often
# the network is right on images it has not trained on. Here both runs end
# above 90%; the ``lr=1e-3`` run climbs more steadily. A training loss that
# keeps falling while the validation accuracy stalls, or the validation loss
# rises, is overfitting: :doc:`06_improving_a_network` shows it and what to
# do, and the :doc:`CIFAR-10 page <11_cifar10_classifier>` reads the curves
# that :func:`blockzoo.train.fit` records.
