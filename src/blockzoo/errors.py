"""Exception types raised by blockzoo.

Every blockzoo error derives from a built-in exception, so code that already
catches :class:`ValueError` or :class:`KeyError` keeps working.

Example:
    >>> from blockzoo.errors import InputError
    >>> issubclass(InputError, ValueError)
    True
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DatasetNotFoundError",
    "InputError",
    "NonFiniteLossError",
    "UnknownNameError",
    "UnsafeCheckpointError",
]


class InputError(ValueError):
    """A tensor given to a block does not have the layout the block expects.

    The message names the block, the expected layout, the received shape and a
    hint (for example that the tensor looks channels-last).

    Example:
        >>> import torch, blockzoo
        >>> block = blockzoo.ConvNormAct(3, 8)
        >>> try:
        ...     block(torch.zeros(1, 32, 32, 3))
        ... except blockzoo.InputError as err:
        ...     print(str(err).splitlines()[0])
        ConvNormAct expected input of shape [N, 3, H, W], received [1, 32, 32, 3] (torch.float32).
    """


class UnknownNameError(ValueError, KeyError):
    """A name was looked up in a registry that does not hold it.

    It is both a :class:`ValueError` and a :class:`KeyError`. The message names
    up to three close matches and the call that lists every registered name.

    Example:
        >>> import blockzoo
        >>> try:
        ...     blockzoo.resolve_layer("act", "relux")
        ... except blockzoo.UnknownNameError as err:
        ...     print(err)
        Unknown act layer 'relux'. Did you mean 'relu', 'relu6', 'prelu'? blockzoo.list_layers('act') lists them all.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes; show it as written.
        return str(self.args[0]) if self.args else ""


class CheckpointError(RuntimeError):
    """A checkpoint could not be loaded into a model; the model was left as it was.

    Example:
        >>> from blockzoo.errors import CheckpointError
        >>> issubclass(CheckpointError, RuntimeError)
        True
    """


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint needs globals outside torch's safe allow-list.

    blockzoo never falls back to unsafe unpickling; the message names the
    globals that the file asked for.

    Example:
        >>> from blockzoo.errors import CheckpointError, UnsafeCheckpointError
        >>> issubclass(UnsafeCheckpointError, CheckpointError)
        True
    """


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite.

    :func:`blockzoo.train.fit` raises it with a message naming the epoch and
    the step; ``history`` holds the epochs completed before it, and the
    checkpoints written before it are kept.

    Example:
        >>> from blockzoo.errors import NonFiniteLossError
        >>> issubclass(NonFiniteLossError, FloatingPointError)
        True
    """

    def __init__(self, message: str, *, epoch: int, step: int, history: object = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.history = history


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not where blockzoo was told to look, and it was not asked to download them.

    The message names the folder looked in, the files looked for (and which
    of them are missing) and says to pass ``download=True``. It is a
    :class:`FileNotFoundError`, so code that catches that keeps working.

    Example:
        >>> from blockzoo.errors import DatasetNotFoundError
        >>> issubclass(DatasetNotFoundError, FileNotFoundError)
        True
    """
