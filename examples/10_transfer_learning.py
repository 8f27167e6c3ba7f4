"""
Transfer learning
=================

Transfer learning passes what one model has learned to another: a network
trained on a large data set already knows edges, strokes and shapes, and a
new task only has to learn how to combine them. In practice: load the
trained weights, freeze the part of the network that extracts features (the
*backbone*), replace the classifier (the *head*) for the new classes, and
train the head.

This page runs offline, so it downloads no weights. It "pre-trains" a small
CNN in the script, on the digits 0 to 4, and transfers it to all ten
digits. With real pretrained weights only the first step changes: see the
last section.
"""

# %%
# 1. Pre-train on the digits 0-4 and save the weights
# ---------------------------------------------------
#
# The zoo's ``simple_cnn`` (conv → batch norm → ReLU → max pool stages and a
# classifier head), sized for 8x8 images, with five classes.
# :func:`blockzoo.save_weights` writes a safetensors file.

import tempfile
from pathlib import Path

import torch
import torchvision

import blockzoo
from blockzoo.data import digits
from blockzoo.train import fit


def make_model(num_classes: int) -> torch.nn.Module:
    return blockzoo.create_model("simple_cnn", in_channels=1, img_size=8, widths=(16, 32), num_classes=num_classes)


data = digits(images=True)
first = data.y_train < 5
torch.manual_seed(0)
source = make_model(num_classes=5)
fit(source, (data.x_train[first], data.y_train[first]), epochs=5, lr=3e-3, progress=False, seed=0)
path = blockzoo.save_weights(source, Path(tempfile.mkdtemp()) / "digits04.safetensors")
print(f"saved {path.name}")

# %%
# 2. Load, freeze the backbone, replace the head
# ----------------------------------------------
#
# A fresh model of the same architecture takes the saved weights.
# :func:`blockzoo.select` picks parameters by name pattern (here everything
# under ``features``), and ``requires_grad_(False)`` freezes them. Then
# ``reset_classifier(10)`` puts a new, untrained head for ten classes in
# place of the old one.

model = make_model(num_classes=5)
blockzoo.load_weights(model, path)
for _, parameter in blockzoo.select(model, include="features.*"):
    parameter.requires_grad_(False)
model.reset_classifier(10)
print("trainable:", [name for name, p in model.named_parameters() if p.requires_grad])
print(blockzoo.summary(model, (1, 1, 8, 8), depth=1))

# %%
# 3. Train the head on all ten digits
# -----------------------------------
#
# The optimizer that ``fit`` builds leaves the frozen parameters out, so
# only the head's weights move. ``fit(..., freeze="features.*")`` would do
# the freezing of step 2 itself. The backbone's batch-norm statistics still
# adapt in training mode; ``model.features.eval()`` would freeze them too.

history = fit(model, data, epochs=5, lr=1e-2, progress=False, seed=0)
print(f"validation accuracy on all ten digits, head only: {history['val_accuracy'][-1]:.1%}")

# %%
# The backbone has never seen a 5, 6, 7, 8 or 9, yet the features it learned
# on the first five digits are enough for a linear head to tell all ten
# apart.
#
# With real pretrained weights
# ----------------------------
#
# For photographs, the backbone comes from a model trained on ImageNet. The
# architectures of torchvision need no download; only their weights do.
# Here is ResNet-18 *without* weights (``weights=None``), with its head
# replaced for ten classes and everything else frozen:

resnet = torchvision.models.resnet18(weights=None)  # weights="DEFAULT" downloads ImageNet's
resnet.fc = torch.nn.Linear(resnet.fc.in_features, 10)
for _, parameter in blockzoo.select(resnet, exclude="fc.*"):
    parameter.requires_grad_(False)
print(f"{blockzoo.count_params(resnet):,} parameters, of which trainable:")
print([name for name, p in resnet.named_parameters() if p.requires_grad])

# %%
# blockzoo's zoo has the same architectures:
# ``create_model("resnet18", pretrained="torchvision")`` downloads
# torchvision's weights into them, and
# :func:`~blockzoo.load_weights` reads a local file or a URL with its
# checksum.
