"""Training: :func:`fit` with progress, curves, checkpoints and resume; :func:`evaluate`, :func:`predict`, :func:`find_lr`.

Importing it stays light: tqdm and matplotlib load when a run shows a bar or draws its curves.

Example:
    >>> from blockzoo import create_model
    >>> from blockzoo.data import digits
    >>> from blockzoo.train import evaluate, fit
    >>> model = create_model("simple_cnn", in_channels=1, img_size=8)
    >>> history = fit(model, digits(images=True), epochs=1, progress=False, seed=0)
    >>> history.keys()
    ['epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds', 'samples_per_second']
"""

from blockzoo.train._callbacks import Callback, EarlyStopping
from blockzoo.train._evaluate import Evaluation, evaluate, predict
from blockzoo.train._history import History
from blockzoo.train._lr_find import LRFinderResult, find_lr
from blockzoo.train._metrics import list_metrics
from blockzoo.train._trainer import StepOutput, Trainer, fit

__all__ = [
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "History",
    "LRFinderResult",
    "StepOutput",
    "Trainer",
    "evaluate",
    "find_lr",
    "fit",
    "list_metrics",
    "predict",
]
