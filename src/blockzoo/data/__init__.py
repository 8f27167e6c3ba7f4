"""Data sets: :func:`digits`, the embedded default (scikit-learn's 8x8 digits, no download).

Example:
    >>> from blockzoo.data import digits
    >>> digits().x_train.shape
    torch.Size([1438, 64])
"""

from blockzoo.data._digits import Split, digits

__all__ = ["Split", "digits"]
