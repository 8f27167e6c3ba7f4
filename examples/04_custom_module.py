"""
The parts of a custom ``nn.Module``: initialisation, activation, regularization
===============================================================================

A model that subclasses ``nn.Module`` needs only ``__init__`` (the layers)
and ``forward`` (their order). The course lists what a more advanced model
adds: its own way to initialise the parameters, its choice of activation
functions, and regularization. This page adds each of the three to a deep
network, with blockzoo's tools, and measures what the initialisation changes.
"""

# %%
# A deep network without help
# ---------------------------
#
# Twelve fully connected layers with ReLU, and no normalisation or
# shortcuts: the kind of network where the initialisation decides whether
# training starts at all. ``init`` is the first of the three parts: a method
# that sets the parameters, called at the end of ``__init__``.

import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import blockzoo
from blockzoo.data import digits
from blockzoo.regularization import L2, attach_penalty, regularization_loss


class DeepMLP(nn.Module):
    def __init__(self, depth: int = 12, width: int = 64, *, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_features = 64  # 8x8 pixels
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), act_layer()]
            in_features = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, 10)

    def init(self, how: str, batch: torch.Tensor) -> None:
        """Set the weights: PyTorch's default, blockzoo's activation-aware default, or LSUV."""
        if how == "kaiming":
            blockzoo.init_weights(self, seed=0)
        elif how == "lsuv":
            blockzoo.lsuv_(self, batch, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# %%
# Initialisation
# --------------
#
# Three copies start from the same random numbers:
#
# - ``default``: PyTorch's own initialisation of each layer
#   (``kaiming_uniform_`` with ``a=sqrt(5)``, a gain meant for no
#   activation);
# - ``kaiming``: :func:`blockzoo.init_weights`, which reads the activation
#   that follows each layer and picks He initialisation for ReLU (and Glorot
#   for the classifier);
# - ``lsuv``: :func:`blockzoo.lsuv_`, orthogonal weights rescaled until each
#   layer's output has unit variance on a batch of data.
#
# :func:`blockzoo.init_report` tells, for each parameter, which initializer
# applied and the standard deviation it expects and measures (the first and
# last lines here).

data = digits()
batch = data.x_train[:256]
models = {}
for how in ("default", "kaiming", "lsuv"):
    torch.manual_seed(0)
    models[how] = DeepMLP()
    models[how].init(how, batch)
report = str(blockzoo.init_report(models["kaiming"])).splitlines()
print("\n".join([*report[:5], "...", *report[-2:]]))


# %%
# How the signal travels through the depth: the standard deviation of each
# layer's output on the batch. PyTorch's default loses part of the variance
# at every ReLU layer; after twelve layers little is left.


def output_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """The std of each linear layer's output on ``x``, in order."""
    stds: list[float] = []
    hooks = [
        m.register_forward_hook(lambda m, i, out: stds.append(out.std().item()))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return stds


stds = {how: output_stds(model, batch) for how, model in models.items()}
for how, values in stds.items():
    print(f"{how:<8} output std of the last hidden layer {values[-2]:.3f}")

# %%
# Then each copy trains with the same SGD settings (built by
# :func:`blockzoo.create_optimizer`) for ten epochs.


def train(model: nn.Module, *, epochs: int = 10) -> tuple[list[float], float]:
    """Train with SGD; the training loss of each epoch and the final validation accuracy."""
    x, y, x_val, y_val = data
    optimizer = blockzoo.create_optimizer(model, "sgd", lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + regularization_loss(model)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        curve.append(total / len(x))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return curve, accuracy


results = {how: train(copy.deepcopy(model)) for how, model in models.items()}
for how, (curve, accuracy) in results.items():
    print(f"{how:<8} loss {curve[0]:.3f} -> {curve[-1]:.3f}   validation accuracy {accuracy:.1%}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for how, (curve, accuracy) in results.items():
    left.plot(range(1, len(stds[how]) + 1), stds[how], marker="o", markersize=3, label=how)
    right.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=f"{how} (val acc {accuracy:.1%})")
left.set(xlabel="layer", ylabel="output std at initialisation", yscale="log", title="Signal through depth")
right.set(xlabel="epoch", ylabel="training loss", title="Training, same SGD settings")
left.legend()
right.legend()
fig.tight_layout()

# %%
# With PyTorch's default the loss stays at chance (``ln 10 ≈ 2.30``): the
# signal that reaches the classifier, and the gradient that comes back, are
# too small to learn from. Kaiming keeps the variance and trains; LSUV sets
# it to one at every layer and starts fastest.
#
# Activation
# ----------
#
# The second part: the activation is an argument of the model, not a line
# hidden in ``forward``. ``init_weights`` reads it and adapts the
# initializer: He for ReLU and its smooth cousins (GELU, SiLU), Glorot with
# tanh's gain of 5/3 for tanh, LeCun for SELU. The same network with
# ``act_layer=nn.Tanh``:

tanh = DeepMLP(depth=2, act_layer=nn.Tanh)
blockzoo.init_weights(tanh, seed=0)
print(blockzoo.init_report(tanh))

# %%
# Regularization
# --------------
#
# The third part: a penalty on the weights, added to the loss. With
# :func:`~blockzoo.regularization.attach_penalty` the penalty is stored on
# the model it belongs to, and
# :func:`~blockzoo.regularization.regularization_loss` adds up whatever is
# attached to a model (zero when nothing is): the ``train`` function above
# already adds it to the loss, so attaching is the only change. By default an
# L2 penalty goes on the weights of every layer, not on the biases.
# :doc:`06_improving_a_network` measures what L2 and dropout do.

regularized = copy.deepcopy(models["kaiming"])
print(f"before: {regularization_loss(regularized).item():.4f}")
attach_penalty(regularized, L2(1e-4))
print(f"after attach_penalty: {regularization_loss(regularized).item():.4f}")
