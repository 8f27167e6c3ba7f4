"""
Debugging a tensor's shape and dtype
====================================

Most errors during training are about a tensor that is not what the next
operation expects: the wrong shape (a missing batch dimension, an image where
a vector was expected) or the wrong type of number (``float64`` where the
weights are ``float32``, floats where class indices are expected). The
course's advice is the right first step: print ``tensor.shape`` and
``tensor.dtype``. This page provokes the three most common errors, reads
their messages and fixes them.
"""

# %%
# What the data looks like
# ------------------------
#
# A batch of images has four dimensions, ``[N, C, H, W]``: images, channels,
# height, width. Labels are one integer class index per image, ``int64``
# (``torch.long``).

import numpy as np
import torch
from torch import nn

import blockzoo
from blockzoo.data import digits

data = digits(images=True)
images, labels = data.x_train[:32], data.y_train[:32]
print("images:", images.shape, images.dtype)
print("labels:", labels.shape, labels.dtype)

# %%
# An image where a vector was expected
# ------------------------------------
#
# A fully connected layer (``nn.Linear``) multiplies the *last* dimension of
# its input by its weights: it expects ``[N, in_features]``. Given the images
# as they are, ``[32, 1, 8, 8]``, it multiplies rows of 8 pixels by a
# ``64 x 10`` matrix, and PyTorch says so in terms of matrices:

linear = nn.Linear(64, 10)
try:
    linear(images)
except RuntimeError as error:
    print("RuntimeError:", error)

# %%
# ``mat1`` is the input seen as a matrix (32 x 1 x 8 rows of 8 values) and
# ``mat2`` the transposed weights. Printing ``images.shape`` shows the cause;
# ``flatten`` keeps the batch dimension and joins the others:

flat = images.flatten(start_dim=1)
print(flat.shape, "->", linear(flat).shape)

# %%
# ``float64`` where the weights are ``float32``
# ---------------------------------------------
#
# NumPy's default floating type is ``float64``, and ``torch.from_numpy``
# keeps it; PyTorch's layers are created in ``float32``. Mixing the two in one
# multiplication is an error:

features = torch.from_numpy(np.random.default_rng(0).random((32, 64)))
print("features:", features.dtype, " weights:", linear.weight.dtype)
try:
    linear(features)
except RuntimeError as error:
    print("RuntimeError:", error)

# %%
# Convert the data once, where it is loaded, with ``.float()`` (or
# ``torch.as_tensor(array, dtype=torch.float32)``):

print(linear(features.float()).dtype)

# %%
# Labels of the wrong kind
# ------------------------
#
# ``nn.CrossEntropyLoss`` takes the logits ``[N, C]`` and, as targets, one
# class index per sample: ``[N]`` integers (``int64``). Labels that became
# floats on the way (read from a CSV file, or divided by something) are an
# error; floating-point targets are only accepted with the logits' shape
# ``[N, C]``, as probabilities for each class:

logits = linear(flat)
try:
    nn.functional.cross_entropy(logits, labels.float())
except RuntimeError as error:
    print("RuntimeError:", error)
print("with int64 class indices:", nn.functional.cross_entropy(logits, labels).shape)

# %%
# blockzoo's blocks explain the problem
# -------------------------------------
#
# blockzoo's blocks check their input and say what they expected, what they
# received and what to change. A :class:`~blockzoo.ConvBlock` built for
# three-channel images, given the one-channel digits:

block = blockzoo.ConvBlock(3, 16)
try:
    block(images)
except blockzoo.InputError as error:  # a ValueError
    print(error)

# %%
# Finding the layer at fault
# --------------------------
#
# In a deep network the message names one operation, not the layer. Two tools
# locate it. :func:`blockzoo.infer_shape` computes the output shape without
# computing anything (on the ``meta`` device), so it is also the quickest way
# to choose ``in_features`` for a classifier. :func:`blockzoo.trace_shapes`
# runs the model and prints each layer's output shape and dtype as it goes:
# when a layer fails, the last printed line is the one before it.

model = nn.Sequential(blockzoo.ConvBlock(1, 16), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
print(blockzoo.infer_shape(model, (32, 1, 8, 8)))
_ = blockzoo.trace_shapes(model, images)
