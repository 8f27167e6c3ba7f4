"""
Multi-class training and inference
==================================

The course's practicum: train a network to put each input in one of several
classes, then use it, once trained, on new inputs. Here the inputs are
scikit-learn's handwritten digits and the classes the ten digits. Training
is one call to :func:`blockzoo.train.fit`; inference is a forward pass in
evaluation mode, and softmax turns its scores into probabilities.
"""

# %%
# The problem
# -----------
#
# Each input is an 8x8 image, flattened to 64 numbers; each target is the
# index of its class, 0 to 9. :func:`~blockzoo.data.digits` sets 20% of the
# images apart for validation, in the same proportion for every class.

import matplotlib.pyplot as plt
import torch

import blockzoo
from blockzoo.data import digits
from blockzoo.train import evaluate, fit, predict

data = digits()
print(f"train {tuple(data.x_train.shape)}, validation {tuple(data.x_val.shape)}")
print("images per class in training:", torch.bincount(data.y_train).tolist())

# %%
# Training
# --------
#
# A multi-class network ends in one output per class. Its loss is the
# cross-entropy of those scores with the right class, ``fit``'s default. The
# network: a multilayer perceptron with two hidden layers and dropout.

torch.manual_seed(0)
model = blockzoo.MLP(64, (128, 64), 10, drop_rate=0.1)
history = fit(model, data, epochs=15, lr=3e-3, progress=False, seed=0)
print(history.keys())
print(f"validation accuracy after {len(history)} epochs: {history['val_accuracy'][-1]:.1%}")

# %%
# Inference
# ---------
#
# Once trained, the network is used in evaluation mode (``model.eval()``:
# dropout off, batch norm with its learned statistics) and without recording
# gradients (``torch.inference_mode()``). :func:`~blockzoo.train.predict`
# does both, in batches, and returns the scores; softmax gives the
# probabilities, and their largest one is the prediction.

logits = predict(model, data.x_val)
probabilities = torch.softmax(logits, dim=1)
confidence, predicted = probabilities.max(dim=1)
for i in range(5):
    print(f"image {i}: true {data.y_val[i].item()}, predicted {predicted[i].item()} with p={confidence[i]:.3f}")

# %%
# By hand, for one new image, the same steps are:

model.eval()
with torch.inference_mode():
    scores = model(data.x_val[:1])  # a batch of one: [1, 64] -> [1, 10]
print("predicted class:", scores.argmax(dim=1).item())

# %%
# Where it goes wrong
# -------------------
#
# :func:`~blockzoo.train.evaluate` measures loss and accuracy, and counts the
# confusion matrix: row = true class, column = prediction, so the diagonal
# holds the right answers. Below it, the validation images that the network
# got wrong, with what it answered.

result = evaluate(model, data, confusion_matrix=True)
print(result)
matrix = result.confusion_matrix
wrong = (predicted != data.y_val).nonzero().flatten()

fig = plt.figure(figsize=(10, 4.5))
ax = fig.add_subplot(1, 2, 1)
ax.imshow(matrix.numpy(), cmap="Blues")
for true, guess in matrix.nonzero().tolist():
    ax.text(guess, true, str(matrix[true, guess].item()), ha="center", va="center", fontsize=7)
ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix", xticks=range(10), yticks=range(10))
for k, i in enumerate(wrong[:8].tolist()):
    ax = fig.add_subplot(2, 8, 5 + (k // 4) * 8 + k % 4)
    ax.imshow(data.x_val[i].reshape(8, 8).numpy(), cmap="gray_r")
    ax.set_title(f"{data.y_val[i].item()} → {predicted[i].item()}", fontsize=9)
    ax.set_axis_off()
fig.suptitle("Validation images: true class → prediction")
fig.tight_layout()

# %%
# The mistakes are few and mostly between digits that look alike at 8x8
# pixels. Probabilities also tell when the network is unsure: the wrong
# answers tend to come with a lower ``p`` than the right ones.

print(f"mean p when right: {confidence[predicted == data.y_val].mean():.3f}")
print(f"mean p when wrong: {confidence[wrong].mean():.3f}")
