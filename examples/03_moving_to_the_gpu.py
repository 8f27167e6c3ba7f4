"""
Moving tensors and models to the GPU
====================================

A GPU trains and runs a network many times faster than a CPU, as long as
both the model's parameters and the data it reads are in the GPU's memory.
The course's answer is ``.to("cuda")`` for both. This page shows the code
path; it runs on whatever the machine has (the documentation is built on a
CPU, so the output below says ``cpu``), and the same lines use a GPU where
there is one.
"""

# %%
# Pick the device once
# --------------------
#
# ``torch.cuda.is_available()`` says whether PyTorch sees an NVIDIA (or AMD
# ROCm) GPU. Choose the device once, at the top, and pass it everywhere else.

import time

import torch
from torch import nn

import blockzoo
from blockzoo.data import digits
from blockzoo.train import fit

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"device: {device}")

# %%
# Move the model, then each batch
# -------------------------------
#
# ``model.to(device)`` moves every parameter and buffer, in place, and returns
# the model. For a tensor, ``.to(device)`` returns a *copy* on the device: the
# result must be kept. Every batch is moved in the training loop, after it
# leaves the DataLoader.

data = digits(images=True)
model = blockzoo.create_model("simple_cnn", in_channels=1, img_size=8, widths=(16, 32), num_classes=10)
model = model.to(device)
x = data.x_train[:64].to(device)  # x.to(device) alone would move nothing
print("parameters on", next(model.parameters()).device, "| batch on", x.device)
print("output on", model(x).device)

# %%
# Model and data on different devices
# ------------------------------------
#
# If one of them stays behind, the first layer fails with a message that
# names both devices. On a CPU-only machine the ``meta`` device (tensors
# without data) plays the GPU's part:

elsewhere = nn.Linear(64, 10, device="meta")
try:
    elsewhere(data.x_train[:4].flatten(1))
except (RuntimeError, NotImplementedError) as error:
    print(type(error).__name__, str(error).splitlines()[0])

# %%
# Timing on a GPU
# ---------------
#
# GPU work is asynchronous: a call returns before the GPU has finished.
# To time it, wait for the GPU with ``torch.cuda.synchronize()`` before
# reading the clock; otherwise the time measured is the time to queue the work.


def time_forward(model: nn.Module, x: torch.Tensor, repeats: int = 20) -> float:
    """Seconds per forward pass, waiting for the GPU when there is one."""
    with torch.inference_mode():
        model(x)  # the first call pays one-off costs (memory, kernel selection)
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


model.eval()
print(f"{time_forward(model, x) * 1e3:.2f} ms per batch of 64 on {device}")

# %%
# With ``fit``
# ------------
#
# :func:`blockzoo.train.fit` moves the model and every batch itself:
# ``device="auto"`` (the default) picks a GPU when there is one, and
# ``device="cuda"`` insists on one. On a GPU, ``amp="bf16"`` (autocast to
# bfloat16) and ``channels_last=True`` make convolutions faster still; the
# :doc:`CIFAR-10 page <11_cifar10_classifier>` compares the two paths.

history = fit(model, data, epochs=2, device=device, progress=False, seed=0)
print(f"trained on {device}: validation accuracy {history['val_accuracy'][-1]:.1%}")
