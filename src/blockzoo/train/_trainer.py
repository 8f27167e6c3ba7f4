"""The training loop: :class:`Trainer` and :func:`fit`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from blockzoo._checks import check_bool, check_choice, check_int, check_module, check_number
from blockzoo._names import GlobsLike, did_you_mean
from blockzoo.errors import NonFiniteLossError
from blockzoo.regularization import bind_optimizer, bound_optimizer, list_regularizers, regularization_loss
from blockzoo.train._batches import call_model, check_data, split_parts, to_device
from blockzoo.train._callbacks import Callback
from blockzoo.train._checkpoint import is_main_process, ready
from blockzoo.train._distributed import resolve_distributed
from blockzoo.train._guards import interrupt_guard
from blockzoo.train._history import History
from blockzoo.train._metrics import LossLike, MetricsLike, MetricState, resolve_loss, resolve_metrics
from blockzoo.train._progress import Progress
from blockzoo.train._resume import RunFiles
from blockzoo.train._run import Run
from blockzoo.train._setup import (
    Schedule,
    autocast,
    grad_scaler,
    resolve_device,
    resolve_optimizer,
    resolve_scheduler,
)

__all__ = ["StepOutput", "Trainer", "fit"]


class StepOutput(NamedTuple):
    """What a train or eval step returns: the batch's mean loss, and the outputs and targets its metrics read.

    ``output`` and ``target`` may be ``None`` (then only the loss is recorded).

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from blockzoo.train import StepOutput
        >>> def two_heads(trainer, batch):  # a train_step for a model with two outputs
        ...     x, y = batch
        ...     main, aux = trainer.model(x)
        ...     return StepOutput(F.cross_entropy(main, y) + 0.3 * F.cross_entropy(aux, y), main, y)
        >>> StepOutput(torch.tensor(0.5))._fields
        ('loss', 'output', 'target')
    """

    loss: Tensor
    output: Tensor | None = None
    target: Tensor | None = None


StepFn = Callable[["Trainer", Any], "StepOutput | Tensor"]


class _Stop(Exception):
    """Leaves the epoch loop at a step boundary (Ctrl-C)."""


class Trainer:
    """The loop behind :func:`fit`, for subclassing: override a step or how batches move.

    The methods to override are :meth:`~Trainer.train_step`,
    :meth:`~Trainer.eval_step` and :meth:`~Trainer.move_batch`. It takes :func:`fit`'s arguments; :meth:`fit` runs them and returns the
    :class:`~blockzoo.train.History`. During the run, ``trainer.model`` is the
    module that runs (compiled when ``compile=True``), ``trainer.module`` the
    model itself (whose weights are saved), and ``trainer.optimizer``,
    ``trainer.schedule``, ``trainer.ema``, ``trainer.history``, ``trainer.epoch``
    (from 1) and ``trainer.global_step`` (optimizer steps) what their names say.

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from blockzoo.train import StepOutput, Trainer
        >>> class Mixup(Trainer):  # mixes pairs of samples; soft targets for the accuracy
        ...     def train_step(self, batch):
        ...         x, y = batch
        ...         lam = 0.7
        ...         perm = torch.randperm(len(x))
        ...         out = self.model(lam * x + (1 - lam) * x[perm])
        ...         loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
        ...         return StepOutput(loss, out, y)
        >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        >>> history = Mixup(torch.nn.Linear(4, 3), (x, y), epochs=2, progress=False, seed=0).fit()
        >>> len(history), history.keys()[:3]
        (2, ['epoch', 'train_loss', 'train_accuracy'])
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        *,
        val_data: Any = None,
        epochs: int,
        batch_size: int = 64,
        optimizer: Any = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Any = None,
        scheduler_interval: str | None = None,
        loss: LossLike = "cross_entropy",
        metrics: MetricsLike = ("accuracy",),
        monitor: str | None = None,
        mode: str = "auto",
        restore_best: bool = False,
        ema: float | None = None,
        accumulate: int = 1,
        label_smoothing: float = 0.0,
        freeze: GlobsLike = None,
        grad_clip: float | None = None,
        device: str | torch.device = "auto",
        amp: str | None = None,
        channels_last: bool = False,
        compile: bool = False,
        deterministic: bool = False,
        num_workers: int = 0,
        callbacks: Sequence[Callback] = (),
        train_step: StepFn | None = None,
        eval_step: StepFn | None = None,
        progress: bool | str = True,
        log_every: int = 50,
        seed: int | None = None,
        out_dir: str | Path | None = None,
        resume: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        distributed: bool | None = None,
        strategy: str = "ddp",
        sync_batchnorm: bool = False,
    ) -> None:
        check_module("model", model)
        train_data, val_data = split_parts(train_data, val_data)
        self.train_data = check_data(train_data, "train_data")
        self.val_data = None if val_data is None else check_data(val_data, "val_data")
        self.epochs = check_int("epochs", epochs, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.lr = check_number("lr", lr, low=0, low_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0)
        if isinstance(optimizer, torch.optim.Optimizer) and (lr != 1e-3 or weight_decay != 0.0):
            raise ValueError(
                "lr and weight_decay are for the optimizer fit builds; the optimizer you passed has its own. "
                f"Received: optimizer={type(optimizer).__name__}, lr={lr}, weight_decay={weight_decay}"
            )
        self.optimizer_option = optimizer
        self.scheduler_option = scheduler
        self.scheduler_interval = scheduler_interval
        self.loss_option = loss
        self.loss_fn = resolve_loss(loss, label_smoothing=label_smoothing)
        self.label_smoothing = label_smoothing
        self.metrics = resolve_metrics(metrics)
        self.monitor = self._resolve_monitor(monitor, ema)
        self.history = History(monitor=self.monitor, mode=mode)
        self.restore_best = check_bool("restore_best", restore_best)
        self.ema_decay = None if ema is None else check_number("ema", ema, low=0, high=1, low_open=True, high_open=True)
        self.accumulate = check_int("accumulate", accumulate, low=1)
        self.freeze = freeze
        self.grad_clip = check_number("grad_clip", grad_clip, low=0, low_open=True, allow_none=True)
        self.device = resolve_device(device)
        self.distributed = resolve_distributed(
            distributed,
            strategy=strategy,
            sync_batchnorm=sync_batchnorm,
            # a DataLoader keeps its own batch size, per process: fit's does not have to split
            batch_size=None if isinstance(self.train_data, DataLoader) else self.batch_size,
            device=self.device,
        )
        if self.distributed is not None:
            self.device = self.distributed.device(self.device)
        self.amp = None if amp is None else check_choice("amp", amp, ("bf16", "fp16"))
        self.channels_last = check_bool("channels_last", channels_last)
        self.compile = check_bool("compile", compile)
        self.deterministic = check_bool("deterministic", deterministic)
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances. Received: {type(cb).__name__}")
        for name, step in (("train_step", train_step), ("eval_step", eval_step)):
            if step is not None and not callable(step):
                raise TypeError(f"{name} must be a callable (trainer, batch) -> StepOutput. Received: {step!r}")
        self._train_step_fn, self._eval_step_fn = train_step, eval_step
        self.progress = Progress(progress, epochs=self.epochs, show=is_main_process())
        self.log_every = check_int("log_every", log_every, low=1)
        self.seed = check_int("seed", seed, low=0, allow_none=True)
        self.files = None if out_dir is None else RunFiles(Path(out_dir))
        self.resume = None if resume is None else Path(resume)
        self.user_config = dict(config or {})
        self.module = model
        self.model: nn.Module = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: Schedule | None = None
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.epoch = 0
        self.global_step = 0
        self.batch_index = 0
        self.last_lr = math.nan
        #: read each step's loss on the host (free on a CPU); elsewhere only at log intervals, so no step syncs
        self.check_each_step = self.device.type == "cpu"
        self.stop_reason: str | None = None
        self._trainable: list[nn.Parameter] = []
        self._penalties = False
        #: the training batches when each process trains on a share of each batch (set by the run)
        self._shares: Any = None
        #: adds a MetricState's sums over the processes before it is read (set by a distributed run)
        self._reduce: Callable[[MetricState], None] | None = None
        self._binding: Any = None
        self._autocast_factory: Callable[[], Any] = autocast(None, self.device)

    # ----------------------------------------------------------------- options

    def _resolve_monitor(self, monitor: str | None, ema: float | None) -> str:
        validating = self.val_data is not None
        columns = [f"train_{m}" for m in ("loss", *self.metrics)]
        if validating:
            columns += [f"val_{m}" for m in ("loss", *self.metrics)]
            if ema is not None:
                columns += [f"ema_val_{m}" for m in ("loss", *self.metrics)]
        if monitor is None:
            for choice in ("val_accuracy", "val_loss", "train_loss"):
                if choice in columns:
                    return choice
        if monitor not in columns:
            raise ValueError(
                f"monitor must be a column of this run's history: {columns}.{did_you_mean(str(monitor), columns)} "
                f"Received: monitor={monitor!r}"
            )
        return monitor

    def options(self) -> dict[str, Any]:
        """The run's options as JSON-able values: what ``config.json`` records and ``resume`` compares."""

        def describe(value: Any) -> Any:
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            if isinstance(value, Mapping):
                return {str(k): describe(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [describe(v) for v in value]
            return f"<{getattr(value, '__qualname__', type(value).__qualname__)}>"

        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": describe(self.optimizer_option),
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "scheduler": describe(self.scheduler_option),
            "scheduler_interval": self.scheduler_interval,
            "loss": describe(self.loss_option),
            "metrics": list(self.metrics),
            "monitor": self.monitor,
            "mode": self.history.mode,
            "ema": self.ema_decay,
            "accumulate": self.accumulate,
            "label_smoothing": self.label_smoothing,
            "freeze": describe(self.freeze),
            "grad_clip": self.grad_clip,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "deterministic": self.deterministic,
            "num_workers": self.num_workers,
            "seed": self.seed,
            "device": str(self.device),
            # absent from one-process runs (and so from the runs recorded before they existed)
            **(
                {"strategy": self.distributed.strategy, "sync_batchnorm": self.distributed.sync_batchnorm}
                if self.distributed is not None
                else {}
            ),
        }

    # -------------------------------------------------------------- the steps

    def move_batch(self, batch: Any) -> Any:
        """``batch`` on the training device (its 4-D tensors in channels_last when asked)."""
        memory = torch.channels_last if self.channels_last else None
        return to_device(batch, self.device, non_blocking=self.device.type == "cuda", memory_format=memory)

    def forward(self, batch: Any) -> StepOutput:
        """The default step: ``(inputs, targets)``; several inputs as a tuple or dict of tensors."""
        inputs, target = batch[0], batch[1]
        with self._autocast():
            output = call_model(self.model, inputs)
            loss = self.loss_fn(output, target)
        return StepOutput(loss, output, target)

    def train_step(self, batch: Any) -> StepOutput:
        """The loss of a training batch (the loop adds the attached penalties, then runs backward and the step)."""
        return self.forward(batch)

    def eval_step(self, batch: Any) -> StepOutput:
        """The loss and outputs of a validation batch (under ``torch.no_grad`` and ``eval()``)."""
        return self.forward(batch)

    def stop(self, reason: str) -> None:
        """End training after the current batch; ``reason`` is shown and kept in ``stop_reason``."""
        self.stop_reason = reason

    # ---------------------------------------------------------------- running

    def _run_step(self, fn: StepFn | None, method: Callable[[Any], Any], batch: Any) -> StepOutput:
        result = method(batch) if fn is None else fn(self, batch)
        if isinstance(result, Tensor):
            result = StepOutput(result)
        if not isinstance(result, StepOutput):
            raise TypeError(f"a step must return a StepOutput or a loss tensor. Received: {type(result).__name__}")
        return result

    def fit(self) -> History:
        """Run the training; returns the :class:`~blockzoo.train.History`."""
        run = Run(self)
        return run.execute()

    def _autocast(self) -> Any:
        return self._autocast_factory()

    def _setup_precision(self) -> None:
        self._autocast_factory = autocast(self.amp, self.device)
        self.scaler = grad_scaler(self.amp, self.device)

    def _build_optimizer(self, steps_per_epoch: int) -> None:
        optimizer, _ = resolve_optimizer(self.optimizer_option, self.module, lr=self.lr, weight_decay=self.weight_decay)
        self.optimizer = optimizer
        self.schedule = resolve_scheduler(
            self.scheduler_option,
            optimizer,
            interval=self.scheduler_interval,
            epochs=self.epochs,
            steps_per_epoch=steps_per_epoch,
            mode=self.history.mode,
        )
        bound = bound_optimizer(self.module)
        self._binding = None
        if bound is None:
            if list_regularizers(self.module):  # with nothing attached, no walk over the model at each step
                self._binding = bind_optimizer(self.module, optimizer)
        elif bound is not optimizer:
            raise ValueError(
                f"the model's regularizers are bound to another optimizer ({type(bound).__name__}, by bind_optimizer "
                "or attach_constraint(optimizer=...)); pass that optimizer to fit, or remove() its binding. "
                f"Received: optimizer={type(optimizer).__name__}"
            )

    def _optimizer_step(self) -> None:
        optimizer = ready(self.optimizer, "the optimizer")
        if self.scaler is not None:
            if self.grad_clip is not None:
                self.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self._trainable, self.grad_clip)
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self._trainable, self.grad_clip)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.last_lr = float(optimizer.param_groups[0]["lr"])  # what this step used
        if self.schedule is not None:
            self.schedule.after_step()
        if self.ema is not None:
            self.ema.update_parameters(self.module)
        self.global_step += 1

    def _train_batches(self, batches: Iterator[Any], first: int, total: int, state: MetricState) -> None:
        """One epoch's training batches, from batch ``first`` of ``total``."""
        self.model.train()
        check_each = self.check_each_step
        self._first_bad: Tensor | None = None  # elsewhere: the first non-finite batch, read at log intervals
        shown = first
        for index, batch in enumerate(batches, start=first):
            batch = self.move_batch(batch)
            group_start = index - index % self.accumulate  # accumulation groups; the last one may be short
            group_end = min(group_start + self.accumulate, total)
            group_size = group_end - group_start
            result = self._run_step(self._train_step_fn, self.train_step, batch)
            loss = result.loss * self._share_weight(index, batch, result) if self._shares is not None else result.loss
            loss = loss + regularization_loss(self.module) if self._penalties else loss
            if check_each:
                self._check_finite(loss, index, total)  # before backward: no step takes a NaN
            else:
                self._mark_non_finite(loss, index)
            scaled = loss / group_size if group_size > 1 else loss
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()  # type: ignore[no-untyped-call]
            if index + 1 == group_end:
                self._optimizer_step()
            state.update(result.loss, result.output, result.target, self._batch_len(batch, result))
            for cb in self.callbacks:
                cb.on_batch_end(self, index, result)
            self.batch_index = index + 1
            stopping = index + 1 == group_end and (self._interrupted() or self.stop_reason is not None)
            if (index + 1) % self.log_every == 0 or index + 1 == total or stopping:
                self._raise_if_marked(total)  # before any checkpoint: never save what a NaN step made
                self.progress.advance(index + 1 - shown, float(result.loss.detach()))
                shown = index + 1
            if stopping:
                if self._interrupted():
                    raise _Stop
                break

    def _share_weight(self, index: int, batch: Any, result: StepOutput) -> float:
        """What this process's mean loss is multiplied by so that DDP's mean of the gradients is the batch's.

        Each process has ``n`` of the batch's ``size`` samples; the processes
        average their gradients, so ``world * n / size`` weighs each mean by its
        samples (1 for every batch but a short last one).
        """
        world: int = self._shares.world_size
        size: int = self._shares.global_size(index)
        return world * self._batch_len(batch, result) / size

    def _batch_len(self, batch: Any, result: StepOutput) -> int:
        for t in (result.target, result.output):
            if isinstance(t, Tensor) and t.ndim:
                return len(t)
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return len(first) if isinstance(first, Tensor) else 1

    def _mark_non_finite(self, loss: Tensor, index: int) -> None:
        """Remember, on the device and without a sync, the first batch whose loss is not finite."""
        mark = torch.where(torch.isfinite(loss.detach()), -1, index)
        self._first_bad = mark if self._first_bad is None else torch.where(self._first_bad >= 0, self._first_bad, mark)

    def _raise_if_marked(self, total: int) -> None:
        if self._first_bad is not None and (index := int(self._first_bad)) >= 0:
            self._non_finite("NaN or infinite", index, total)

    def _check_finite(self, loss: Tensor, index: int, total: int) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            self._non_finite(str(value), index, total)

    def _non_finite(self, value: str, index: int, total: int) -> None:
        raise NonFiniteLossError(
            f"the loss became {value} at epoch {self.epoch}, batch {index + 1} of {total}: training stopped. "
            + (
                f"The last good checkpoint is kept in {self.files.root}."
                if self.files is not None and self.files.has_checkpoint()
                else "No checkpoint was written before it."
            ),
            epoch=self.epoch,
            step=index + 1,
            history=self.history,
        )

    def evaluate_batches(
        self, model: nn.Module, batches: Iterator[Any], *, fillers: set[int] | None = None
    ) -> dict[str, float]:
        """The loss and metrics of ``model`` over ``batches`` (eval mode, no grad); used for validation.

        The batches at the positions in ``fillers`` run but are not counted
        (a process whose share of a batch is empty still joins FSDP2's gathers).
        """
        state = MetricState(self.metrics)
        running = self.model
        was_training = model.training
        model.eval()
        self.model = model
        try:
            with torch.no_grad():
                for position, batch in enumerate(batches):
                    batch = self.move_batch(batch)
                    result = self._run_step(self._eval_step_fn, self.eval_step, batch)
                    if fillers is None or position not in fillers:
                        state.update(result.loss, result.output, result.target, self._batch_len(batch, result))
        finally:
            self.model = running
            model.train(was_training)
        if self._reduce is not None:
            self._reduce(state)
        return state.compute()

    def _interrupted(self) -> bool:
        return interrupt_guard.requested


# The keywords are Trainer's, written out again so that type checkers, IDEs and help() show them.
def fit(
    model: nn.Module,
    train_data: Any,
    *,
    val_data: Any = None,
    epochs: int,
    batch_size: int = 64,
    optimizer: Any = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    scheduler: Any = None,
    scheduler_interval: str | None = None,
    loss: LossLike = "cross_entropy",
    metrics: MetricsLike = ("accuracy",),
    monitor: str | None = None,
    mode: str = "auto",
    restore_best: bool = False,
    ema: float | None = None,
    accumulate: int = 1,
    label_smoothing: float = 0.0,
    freeze: GlobsLike = None,
    grad_clip: float | None = None,
    device: str | torch.device = "auto",
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    deterministic: bool = False,
    num_workers: int = 0,
    callbacks: Sequence[Callback] = (),
    train_step: StepFn | None = None,
    eval_step: StepFn | None = None,
    progress: bool | str = True,
    log_every: int = 50,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    distributed: bool | None = None,
    strategy: str = "ddp",
    sync_batchnorm: bool = False,
) -> History:
    """Train ``model`` on ``train_data`` and return its :class:`~blockzoo.train.History`.

    Each epoch trains on every batch once, then measures the validation data;
    the history gets a row per epoch (train and validation loss and metrics,
    the lr, seconds and samples per second). Attached regularizers are honoured:
    loss-mode and activity penalties through :func:`~blockzoo.regularization.regularization_loss`,
    and, when anything is attached as it starts, the optimizer ``fit`` builds is bound
    (:func:`~blockzoo.regularization.bind_optimizer`) so that projection constraints and
    schedules follow its steps.

    Args:
        model: Any ``nn.Module`` (a compiled one too: weights are saved from the module inside); under
            torchrun the unwrapped model, which ``fit`` wraps (an FSDP2 run shards it in place).
        train_data: An ``(inputs, targets)`` pair of tensors, a ``Dataset``, a
            ``DataLoader``, or a :func:`~blockzoo.data.digits` split (whose
            validation part is the ``val_data`` when none is given).
        val_data: The same kinds, measured after each epoch.
        epochs: Passes over ``train_data``.
        batch_size: Samples per batch (a ``DataLoader`` keeps its own).
        optimizer: A name for :func:`~blockzoo.create_optimizer`, a dict of
            its arguments (``{"name": "sgd", "momentum": 0.9}``), or an ``Optimizer``.
        lr: The learning rate of the optimizer ``fit`` builds.
        weight_decay: Its weight decay (biases and norms get none; see ``create_optimizer``).
        scheduler: A name for :func:`~blockzoo.create_scheduler`, a dict of its
            arguments, or a scheduler. Named ones step per optimizer step
            (``cosine``, ``onecycle``, ``constant``, and any with warm-up) or per
            epoch (``step``, ``multistep``, ``exponential``, and ``plateau``,
            which reads the monitored metric); ``fit`` gives their ``total_steps``.
        scheduler_interval: ``"step"`` or ``"epoch"`` to override that
            (a scheduler object steps per epoch, ``OneCycleLR`` per step).
        loss: ``"cross_entropy"``, ``"nll"`` (for heads that end in ``LogSoftmax``) or ``fn(output, target)``.
        metrics: Names (``"accuracy"``, ``"top5_accuracy"``) or callables ``(output, target) -> batch mean``.
        monitor: The history column that decides the best epoch (default
            ``"val_accuracy"``, else ``"val_loss"``, else ``"train_loss"``).
        mode: ``"min"``, ``"max"``, or ``"auto"`` (losses are minimised).
        restore_best: Put the best epoch's weights back at the end, however training ended.
        ema: Keep an exponential moving average of the weights with this decay
            (``torch.optim.swa_utils.AveragedModel``); it is validated
            (``ema_val_*`` columns) and saved as ``ema.safetensors``.
        accumulate: Batches whose gradients add up before each optimizer step.
        label_smoothing: For the named losses.
        freeze: Name globs of parameters to freeze (``requires_grad=False``) before training; they stay frozen.
        grad_clip: Clip the gradients' global norm to this value.
        device: ``"auto"`` (cuda, then mps, then cpu) or a device; the model is moved there.
        amp: ``None``, ``"bf16"``, or ``"fp16"`` (with a gradient scaler).
        channels_last: Train in the channels_last memory format.
        compile: Train through ``torch.compile(model)``.
        deterministic: ``torch.use_deterministic_algorithms(True)`` for the run (CPU runs with ``seed`` repeat bit for bit anyway).
        num_workers: DataLoader worker processes for a ``Dataset``.
        callbacks: :class:`~blockzoo.train.Callback` instances.
        train_step: ``fn(trainer, batch) -> StepOutput or loss`` in place of :meth:`Trainer.train_step`.
        eval_step: The same for validation.
        progress: ``True``: a tqdm bar per epoch in a terminal, a line per epoch
            otherwise; ``False``: nothing; ``"bar"`` or ``"lines"`` to choose.
        log_every: Steps between progress updates (and, on a GPU, loss checks: the only device syncs).
        seed: Seed torch, ``random`` and numpy, and the order of the batches.
        out_dir: Folder for ``config.json``, ``history.json``, ``last.safetensors``,
            ``best.safetensors``, ``ema.safetensors``, ``state.pt`` and ``curves.png``.
        resume: The ``out_dir`` of an interrupted run with the same options: it
            continues from the batch where that run stopped and ends as it would have.
        config: Extra JSON-able facts for ``config.json`` (the command line records its options there).
        distributed: Train in the processes that ``torchrun`` started, joined by
            ``torch.distributed`` (gloo on CPU, nccl on CUDA): ``None`` does so when
            torchrun set ``WORLD_SIZE`` above 1, ``True`` demands it, ``False``
            never. ``batch_size`` is then the global batch, split evenly over the
            processes; the metrics are summed over them; rank 0 alone prints and
            writes files. See the "Distributed training" page.
        strategy: ``"ddp"`` (``DistributedDataParallel``, a replica per process)
            or ``"fsdp"`` (FSDP2's ``fully_shard``: parameters, gradients and
            optimizer state sharded over the processes).
        sync_batchnorm: Turn every batch norm into ``SyncBatchNorm`` (statistics
            over the global batch); CUDA only, as torch's SyncBatchNorm is.

    Returns:
        The :class:`~blockzoo.train.History`.

    Raises:
        InputError: the model does not fit the data (channels, input size, classes), before any step.
        NonFiniteLossError: the loss became NaN or infinite (the message names the epoch and batch).
        KeyboardInterrupt: Ctrl-C, after saving the state at the current step in ``out_dir``.
        ValueError, TypeError: a bad option, named with what was received (a
            batch that does not split over the processes is an ``InputError``).

    Example:
        >>> import torch
        >>> from blockzoo import create_model
        >>> from blockzoo.data import digits
        >>> from blockzoo.train import fit
        >>> model = create_model("simple_cnn", in_channels=1, img_size=8)
        >>> history = fit(model, digits(images=True), epochs=2, lr=3e-3, progress=False, seed=0)
        >>> len(history), history.best()["val_accuracy"] > 0.9
        (2, True)
    """
    return Trainer(
        model,
        train_data,
        val_data=val_data,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        loss=loss,
        metrics=metrics,
        monitor=monitor,
        mode=mode,
        restore_best=restore_best,
        ema=ema,
        accumulate=accumulate,
        label_smoothing=label_smoothing,
        freeze=freeze,
        grad_clip=grad_clip,
        device=device,
        amp=amp,
        channels_last=channels_last,
        compile=compile,
        deterministic=deterministic,
        num_workers=num_workers,
        callbacks=callbacks,
        train_step=train_step,
        eval_step=eval_step,
        progress=progress,
        log_every=log_every,
        seed=seed,
        out_dir=out_dir,
        resume=resume,
        config=config,
        distributed=distributed,
        strategy=strategy,
        sync_batchnorm=sync_batchnorm,
    ).fit()
