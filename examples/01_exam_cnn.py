"""
The exam's CNN and its forward pass
===================================

The course's exam shows a small convolutional network written as a subclass
of ``nn.Module`` and asks what happens to an input ``x`` in its ``forward()``.
The answer: ``x`` goes through convolutions, each followed by batch
normalisation, a ReLU and max pooling, and at the end through a fully
connected layer that gives one score per class. This page writes that
network, runs its forward pass on a few images and follows the tensor's
shape from layer to layer.
"""

# %%
# The network, written by hand
# ----------------------------
#
# ``__init__`` creates the layers, and with them the parameters that training
# will adjust. ``forward`` says in which order the input goes through them.
# Calling the model, ``model(x)``, runs ``forward`` (never call it directly:
# the call also runs the hooks that tools rely on), and autograd records each
# operation so that ``loss.backward()`` can compute the gradients.

import matplotlib.pyplot as plt
import torch
from torch import nn

import blockzoo
from blockzoo import ClassifierHead, ConvBlock
from blockzoo.data import digits


class ExamCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 8 * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))  # [N, 16, 16, 16]
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))  # [N, 32, 8, 8]
        x = torch.flatten(x, 1)  # [N, 2048]: one vector per image
        return self.fc(x)  # [N, 10]: one score (logit) per class


# %%
# A forward pass
# --------------
#
# The images are scikit-learn's handwritten digits, enlarged to CIFAR-10's
# shape (3 channels, 32x32 pixels) so that a network written for CIFAR-10
# takes them as they are. A batch of eight goes in; eight rows of ten scores
# come out. The scores are *logits*: any real number, the largest one the
# network's guess. An untrained network guesses at random.

data = digits(image_size=32, channels=3)
x = data.x_train[:8]
torch.manual_seed(0)
model = ExamCNN()
logits = model(x)
print(f"input {tuple(x.shape)} -> output {tuple(logits.shape)}")
print("guesses:", logits.argmax(dim=1).tolist())
print("labels: ", data.y_train[:8].tolist())

# %%
# :func:`blockzoo.trace_shapes` runs the forward pass once and prints the
# output of every layer, in the order in which they ran: each convolution
# keeps the image's size and changes the number of channels, each pooling
# halves the size, and ``flatten`` turns the ``32 x 8 x 8`` map into one
# vector per image for the fully connected layer. ``torch.relu`` is a
# function, not a layer, so it has no line of its own.

_ = blockzoo.trace_shapes(model, x)

# %%
# What the first stage sees
# -------------------------
#
# The sixteen filters of the first convolution, after batch norm, ReLU and
# pooling, give sixteen 16x16 maps per image. Before training the filters are
# random, yet each map already keeps the digit's outline: a convolution is a
# local weighted sum, and pooling keeps the strongest response of each 2x2
# square.

with torch.no_grad():
    maps = model.pool(torch.relu(model.bn1(model.conv1(x[:1]))))[0]
fig, axes = plt.subplots(2, 9, figsize=(9, 2.4))
axes[0, 0].imshow(x[0, 0].numpy(), cmap="gray_r")
axes[0, 0].set_title("input")
for ax, fmap in zip(axes.flat[1:], maps, strict=False):
    ax.imshow(fmap.numpy(), cmap="viridis")
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle("The first stage's feature maps, before training")
fig.tight_layout()

# %%
# The same network from blocks
# ----------------------------
#
# Each *conv → batch norm → ReLU → max pool* stage is one
# :class:`~blockzoo.ConvBlock`, and the flattening fully connected layer a
# :class:`~blockzoo.ClassifierHead` without pooling. The blocks check their
# input and initialise their weights for the activation that follows them.
# :func:`blockzoo.summary` counts the parameters of each layer without a
# dataset: 464 in the first block (16 filters of 3x3x3 weights, and a scale
# and a shift per channel in the batch norm), most of them in the fully
# connected layer (2,048 inputs times 10 outputs, and 10 biases).

blocks = nn.Sequential(
    ConvBlock(3, 16),
    ConvBlock(16, 32),
    ClassifierHead(32 * 8 * 8, 10, pool_layer=None),
)
print(blockzoo.summary(blocks, (8, 3, 32, 32), depth=2))
print(f"the hand-written network has {blockzoo.count_params(model):,} parameters")

# %%
# The block version has fewer parameters than the hand-written one: its
# convolutions have no bias, because the batch norm that follows subtracts
# the mean and adds its own shift.
