"""
SGD with NLLLoss and LogSoftmax; softmax against log-softmax
============================================================

The lab's second part trains its network with ``optim.SGD`` and
``nn.NLLLoss`` after a ``LogSoftmax`` layer, and asks what each of them is.
This page takes them one at a time: softmax turns scores into
probabilities, log-softmax computes their logarithms without going through
the probabilities, NLLLoss picks the log-probability of the right class,
and SGD moves every parameter against its gradient.
"""

# %%
# Softmax and log-softmax
# -----------------------
#
# A classifier's last layer gives one score (logit) per class. Softmax makes
# them positive and adds them up to one: ``softmax(z)_i = exp(z_i) / sum_j
# exp(z_j)``. The largest score gets the largest probability, and adding the
# same number to every score changes nothing.

import matplotlib.pyplot as plt
import torch
from torch import nn

import blockzoo
from blockzoo.data import digits

scores = torch.tensor([[2.0, 1.0, -1.0]])
print("softmax:      ", torch.softmax(scores, dim=1))
print("softmax(z+10):", torch.softmax(scores + 10, dim=1))
print("log-softmax:  ", torch.log_softmax(scores, dim=1))

# %%
# Training wants the *logarithm* of the probability of the right class. With
# scores far apart, as those of a confident network are, the probabilities
# of the other classes are smaller than the smallest ``float32`` number and
# round to zero (or, just above it, lose most of their digits), and their
# logarithm becomes ``-inf``; a single ``-inf`` in
# the loss makes every gradient ``nan``. ``log_softmax`` computes
# ``z_i - log(sum_j exp(z_j))`` directly, subtracting the largest score
# first, and stays finite:

confident = torch.tensor([[100.0, 0.0, -100.0]])
print("log(softmax): ", torch.log(torch.softmax(confident, dim=1)))
print("log_softmax:  ", torch.log_softmax(confident, dim=1))

# %%
# NLLLoss
# -------
#
# The negative log-likelihood loss takes log-probabilities and, for each
# sample, the index of its class; it returns minus the log-probability of the
# right class, averaged over the batch. It is zero when the network gives the
# right class probability one, and large when it is sure of a wrong class.
# ``LogSoftmax`` followed by ``NLLLoss`` is exactly ``CrossEntropyLoss`` on
# the raw scores, which is why a network trained with ``CrossEntropyLoss``
# ends in a plain linear layer:

logits = torch.tensor([[2.0, 1.0, -1.0], [0.5, 2.5, 0.0]])
target = torch.tensor([0, 1])
log_probs = nn.LogSoftmax(dim=1)(logits)
print("by hand:         ", -(log_probs[0, 0] + log_probs[1, 1]).item() / 2)
print("NLLLoss:         ", nn.NLLLoss()(log_probs, target).item())
print("CrossEntropyLoss:", nn.CrossEntropyLoss()(logits, target).item())

# %%
# The lab's network, trained with SGD
# -----------------------------------
#
# A multilayer perceptron ending in ``LogSoftmax``, so that its outputs are
# log-probabilities, trained with ``NLLLoss``. ``optim.SGD`` (stochastic
# gradient descent) updates each parameter ``p`` with ``p -= lr * p.grad``
# after each batch: "stochastic" because the gradient comes from a batch of
# 64 images, not from the whole data set, which makes each step cheap and
# noisy. With ``momentum=0.9`` the step follows a running average of the
# gradients instead, which smooths out the noise.

torch.manual_seed(0)
x_train, y_train, x_val, y_val = digits()
model = nn.Sequential(blockzoo.MLP(64, (64,), 10), nn.LogSoftmax(dim=1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.NLLLoss()
generator = torch.Generator().manual_seed(1)

losses = []
for epoch in range(1, 6):
    model.train()
    for idx in torch.randperm(len(x_train), generator=generator).split(64):
        optimizer.zero_grad()
        loss = criterion(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    print(f"epoch {epoch}: last batch loss {losses[-1]:.3f}, validation accuracy {accuracy:.1%}")

# %%
# The outputs are log-probabilities: ``exp`` turns them back into
# probabilities, which add up to one for each image.

with torch.no_grad():
    probabilities = model(x_val[:3]).exp()
print(probabilities.sum(dim=1))
print("predicted:", probabilities.argmax(dim=1).tolist(), " true:", y_val[:3].tolist())

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(losses, linewidth=0.8)
ax.set(xlabel="batch", ylabel="NLL loss", yscale="log", title="SGD with momentum, one point per batch")
fig.tight_layout()
