"""
Choosing an optimizer: SGD, Adam, RMSprop and Adagrad
=====================================================

``torch.optim`` holds the algorithms that adjust a network's weights and
biases from their gradients. The course names SGD, Adam and RMSprop; the lab
adds Adagrad. This page trains the same network, from the same initial
weights, with each of the four and draws their loss curves on one plot.
"""

# %%
# One network, four copies
# ------------------------
#
# A multilayer perceptron (64 → 128 → 64 → 10) on scikit-learn's 8x8
# digits, ending in ``LogSoftmax`` for ``NLLLoss``. ``copy.deepcopy`` gives
# each optimizer the same starting point, so that the curves differ only by
# the algorithm and its settings.

import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import blockzoo
from blockzoo.data import digits

torch.manual_seed(0)
data = digits()
start = nn.Sequential(blockzoo.MLP(64, (128, 64), 10), nn.LogSoftmax(dim=1))

# %%
# The optimizers and their learning rates
# ---------------------------------------
#
# :func:`blockzoo.create_optimizer` builds any ``torch.optim`` optimizer by
# name. It also leaves biases and normalisation weights out of the weight
# decay, which should only shrink the weights that multiply the input. Each
# algorithm has its own scale of learning rate: SGD with momentum works at
# 0.1 here, Adam and RMSprop, which divide each step by a running estimate of
# the gradient's size, at 0.001.

OPTIMIZERS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 1e-3},
    "rmsprop": {"lr": 1e-3},
    "adagrad": {"lr": 0.05},
}


def train(model: nn.Module, name: str, *, epochs: int = 10, batch_size: int = 32) -> tuple[list[float], float]:
    """Train with one optimizer; the loss of each epoch and the final validation accuracy."""
    x_train, y_train, x_val, y_val = data
    optimizer = blockzoo.create_optimizer(model, name, weight_decay=1e-4, **OPTIMIZERS[name])
    loss_fn = nn.NLLLoss()  # the model ends in LogSoftmax
    generator = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=generator).split(batch_size):
            optimizer.zero_grad()  # gradients add up until they are reset
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()  # the gradient of the loss with respect to every parameter
            optimizer.step()  # the optimizer's update of every parameter
            total += loss.item() * len(idx)
        curve.append(total / len(x_train))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return curve, accuracy


results = {name: train(copy.deepcopy(start), name) for name in OPTIMIZERS}
for name, (curve, accuracy) in results.items():
    print(f"{name:<8} loss {curve[0]:.3f} -> {curve[-1]:.3f}   validation accuracy {accuracy:.1%}")

# %%
# The curves
# ----------
#
# On a log scale, where the small late values stay apart:

fig, ax = plt.subplots(figsize=(6, 4))
for name, (curve, accuracy) in results.items():
    ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=f"{name} (val acc {accuracy:.1%})")
ax.set(xlabel="epoch", ylabel="training loss (NLL)", yscale="log", title="Optimizers on digits, same MLP")
ax.legend()
fig.tight_layout()

# %%
# All four reach a high validation accuracy on this small problem; they
# differ in how fast the training loss falls. The learning rate matters more
# than the choice of algorithm: ten times too small, any of them crawls, and
# ten times too large, it diverges. :func:`blockzoo.train.find_lr` sweeps the
# learning rate to choose one, and :func:`blockzoo.list_optimizers` lists the
# names that ``create_optimizer`` knows:

print(blockzoo.list_optimizers())
