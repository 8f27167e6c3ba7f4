"""One run of :class:`~blockzoo.train.Trainer`: set-up, the epochs and the end (checkpoints and resume: ``_resume``)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from blockzoo._names import check_globs_match
from blockzoo._version import __version__
from blockzoo.regularization import list_regularizers
from blockzoo.train._batches import Batches, seed_everything
from blockzoo.train._checkpoint import (
    capture_rng,
    is_main_process,
    ready,
    replace_file,
    restore_rng,
    unwrap,
    write_json,
)
from blockzoo.train._distributed import check_distributed_run, convert_sync_batchnorm, describe_split, metric_reducer
from blockzoo.train._guards import deterministic, interrupt_guard
from blockzoo.train._history import History
from blockzoo.train._metrics import MetricState
from blockzoo.train._preflight import check_model_fits
from blockzoo.train._resume import Checkpoints

if TYPE_CHECKING:
    from blockzoo.train._trainer import Trainer

__all__ = ["Run"]


class Run(Checkpoints):
    """Drives a :class:`Trainer` through its epochs."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer
        self.best_value: float | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.start_epoch = 0
        self.skip = 0
        self.resumed: dict[str, Any] | None = None
        self.partial: dict[str, Any] | None = None
        self.elapsed = 0.0
        self.epoch_start: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        t = self.t
        d = t.distributed
        if d is not None:
            d.start(t.device)
            if not d.is_main:
                t.progress.mute()
        if t.seed is not None:
            seed_everything(t.seed)
        sampler_seed = t.seed if t.seed is not None else int(torch.randint(0, 2**62, ()).item())
        if d is not None:  # one order of the batches for all: rank 0's
            sampler_seed = d.broadcast_int(sampler_seed)
            # and each process its own random numbers (dropout masks, augmentations), from the shared seed
            seed_everything(sampler_seed + d.rank)
        pin = t.device.type == "cuda"
        shares: dict[str, Any] = {"rank": d.rank, "world_size": d.world_size} if d is not None else {}
        self.train = Batches(
            t.train_data,
            batch_size=t.batch_size,
            shuffle=True,
            seed=sampler_seed,
            num_workers=t.num_workers,
            pin_memory=pin,
            **shares,
        )
        self.val = None
        if t.val_data is not None:
            self.val = Batches(
                t.val_data,
                batch_size=t.batch_size,
                shuffle=False,
                seed=0,
                num_workers=t.num_workers,
                pin_memory=pin,
                fill=True,
                **shares,
            )
        if d is not None:
            check_distributed_run(t, self.train, self.val)
            t.progress.message(describe_split(d, self.train))
        self._preflight()
        if t.resume is not None:
            self.resumed = self._read_resume()
        module = t.module
        if t.freeze is not None:
            self._freeze(t.freeze)
        module.to(t.device)
        if t.channels_last:
            module.to(memory_format=torch.channels_last)
        wrapped = module
        if d is not None:
            if d.sync_batchnorm:
                module = t.module = convert_sync_batchnorm(module)
            wrapped = d.wrap(module, t.device)
            t._shares = self.train if self.train.sampler is not None else None
            t._reduce = metric_reducer(d, list(t.metrics), t.device)
        t._trainable = [p for p in module.parameters() if p.requires_grad]
        self.steps_per_epoch = -(-self.train.num_batches() // t.accumulate)
        t._build_optimizer(self.steps_per_epoch)
        module.zero_grad(set_to_none=True)  # gradients left by the caller's own steps are not this run's
        t._setup_precision()
        if t.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            average = get_ema_multi_avg_fn(t.ema_decay)  # type: ignore[no-untyped-call]
            t.ema = AveragedModel(module, multi_avg_fn=average, use_buffers=True)
        t.model = torch.compile(wrapped) if t.compile else wrapped  # type: ignore[assignment]
        # validation runs the module itself: DDP's forward may broadcast buffers, and the processes' shares
        # of the validation set may differ by a batch (FSDP2's module is sharded in place, and is itself)
        self.eval_model = t.module if d is not None else t.model
        if self.resumed is not None:
            self._load_resume(self.resumed)
        elif t.files is not None:
            t.files.root.mkdir(parents=True, exist_ok=True)
        if t.files is not None and is_main_process():
            write_json(self._config(), t.files.config)

    def _preflight(self) -> None:
        """Check the model against a first batch; the order of the training batches is not touched."""
        train = self.train
        targets: Tensor | None = None
        if train.tensors is not None:
            x: Any = train.tensors[0][:2]
            targets = train.tensors[1] if len(train.tensors) > 1 else None
        elif train.dataset is not None:
            from torch.utils.data import default_collate

            first = default_collate([train.dataset[0]])
            x = first[0] if isinstance(first, (tuple, list)) else None
        else:  # a user's loader: collate its first sample, so that neither its workers nor its RNG move
            loader = ready(train.loader, "the loader")
            if isinstance(loader.dataset, Sized) and not len(loader.dataset):
                raise ValueError("train_data: the DataLoader's data set is empty. Received: an empty DataLoader")
            if not (isinstance(loader.dataset, Sized) and hasattr(loader.dataset, "__getitem__")):
                return  # an iterable data set: nothing to look at without drawing from it
            first = loader.collate_fn([loader.dataset[0]])
            x = first[0] if isinstance(first, (tuple, list)) else None
        data = train.dataset if train.dataset is not None else getattr(train.loader, "dataset", None)
        check_model_fits(self.t.module, x, targets, data)

    def _freeze(self, freeze: Any) -> None:
        patterns = [freeze] if isinstance(freeze, str) else list(freeze)
        names = [n for n, _ in self.t.module.named_parameters()]
        check_globs_match("freeze", patterns, names, what="parameter of the model", received=freeze)
        from blockzoo.roles import select

        for _, p in select(self.t.module, include=patterns):
            p.requires_grad_(False)

    def _config(self) -> dict[str, Any]:
        module = unwrap(self.t.module)
        return {
            "blockzoo_version": __version__,
            "model": {
                "name": getattr(module, "model_name", None),
                "options": getattr(module, "model_config", None),
                "class": f"{type(module).__module__}.{type(module).__qualname__}",
            },
            "fit": self.t.options(),
            "run": self.t.user_config,
        }

    # ------------------------------------------------------------------- epochs

    def execute(self) -> History:
        t = self.t
        d = t.distributed
        # one process cannot stop alone at a step: under torchrun Ctrl-C ends every process (resume from an epoch)
        guard = interrupt_guard.installed() if d is None else contextlib.nullcontext()
        with guard, deterministic(t.deterministic):
            try:
                self.setup()
                for cb in t.callbacks:
                    cb.on_fit_start(t)
                first = self.start_epoch if t.stop_reason is None else t.epochs  # a stopped run stays stopped
                for epoch in range(first, t.epochs):
                    self.one_epoch(epoch)
                    if t.stop_reason is not None:
                        t.progress.message(t.stop_reason)
                        break
                if d is not None:  # every process ends with rank 0's batch norm statistics, the ones saved
                    d.broadcast_tensors(t.module)
            finally:
                self.finish()  # a group that fit joined stays for the next fit, and is left at exit
            if d is not None:
                d.barrier()  # the files that finish writes (history.json, curves.png) are complete for every process
                d.ended()
        return t.history

    def one_epoch(self, epoch: int) -> None:
        t = self.t
        t.epoch = epoch + 1
        skip, self.skip = self.skip, 0
        if skip == 0:  # what the epoch's batches are drawn from, for a resumed run to draw them again
            self.epoch_start = {"rng": capture_rng(t.device), "batches": self.train.state_dict()}
        for cb in t.callbacks:
            cb.on_epoch_start(t, t.epoch)
        # regularization_loss is read at each step when anything is attached (callbacks may attach more)
        t._penalties = any(row.kind != "optimizer" for row in list_regularizers(t.module))
        total = self.train.num_batches()
        metrics = MetricState(t.metrics)
        if self.partial is not None:
            metrics.load_state_dict(self.partial, t.device)
            self.partial = None
        elapsed, self.elapsed = self.elapsed, 0.0
        started = time.perf_counter() - elapsed
        batches = self._epoch_batches(epoch, skip)
        t.progress.start_epoch(t.epoch, total, done=skip)
        from blockzoo.train._trainer import _Stop

        try:
            t._train_batches(batches, skip, total, metrics)
        except _Stop:
            position = t.batch_index
            self.checkpoint(epoch, position, metrics, time.perf_counter() - started)
            self._report_interrupt(f"epoch {t.epoch}, batch {position} of {total}")
        train_seconds = time.perf_counter() - started
        row = self._row(epoch, metrics, train_seconds, started)
        t.history.append(row)
        if t.schedule is not None:
            t.schedule.after_epoch(row.get(t.monitor, float("nan")))
        self._keep_best(row)
        for cb in t.callbacks:
            cb.on_epoch_end(t, t.epoch, row)
        if t.distributed is not None:  # whether to stop is rank 0's decision (EarlyStopping, trainer.stop())
            t.stop_reason = t.distributed.broadcast_object(t.stop_reason)
        t.progress.end_epoch(row)
        self.checkpoint(epoch + 1, 0, None, 0.0)
        if interrupt_guard.requested:
            self._report_interrupt(f"the end of epoch {t.epoch}")

    def _report_interrupt(self, where: str) -> None:
        t = self.t
        t.progress.close()
        saved = (
            f"the training state is saved in {t.files.root}; resume with resume={str(t.files.root)!r}"
            if t.files is not None
            else "nothing was saved (no out_dir)"
        )
        print(f"interrupted at {where}: {saved}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt from None

    def _epoch_batches(self, epoch: int, skip: int) -> Iterator[Any]:
        if not (skip and self.train.replays):
            return self.train.epoch(epoch, skip=skip)
        # a DataLoader draws its skipped batches again, from the states of the epoch's start; then the
        # states of the moment the run stopped come back
        now = {"rng": capture_rng(self.t.device), "batches": self.train.state_dict()}
        restore_rng(self.epoch_start["rng"])
        self.train.load_state_dict(self.epoch_start["batches"])
        batches = self.train.epoch(epoch, skip=skip)
        restore_rng(now["rng"])
        self.train.load_state_dict(now["batches"])
        return batches

    def _row(self, epoch: int, metrics: MetricState, train_seconds: float, started: float) -> dict[str, float]:
        t = self.t
        row: dict[str, float] = {"epoch": epoch + 1}
        if t._reduce is not None:
            t._reduce(metrics)
        row.update({f"train_{k}": v for k, v in metrics.compute().items()})
        if self.val is not None:
            row.update({f"val_{k}": v for k, v in self._validate(self.eval_model, epoch).items()})
            if t.ema is not None:
                row.update({f"ema_val_{k}": v for k, v in self._validate(t.ema.module, epoch).items()})
        row["lr"] = t.last_lr  # the lr of the epoch's last step (of the first param group)
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
        row["seconds"] = time.perf_counter() - started
        row["samples_per_second"] = metrics.count / train_seconds if train_seconds > 0 else float("nan")
        if t.distributed is not None:  # rank 0's row everywhere: the schedulers, callbacks and best epoch agree
            row = t.distributed.broadcast_object(row)
        return row

    def _validate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        t, val = self.t, ready(self.val, "the validation batches")
        reduce = t._reduce
        if val.sampler is None:  # a user's DataLoader: every process measures all of it, so nothing is added up
            t._reduce = None
        if t.distributed is not None:  # batch norm's running statistics differ by process; DDP's forward is not run
            t.distributed.broadcast_tensors(model)
        try:
            return t.evaluate_batches(model, val.epoch(epoch), fillers=val.fillers)
        finally:
            t._reduce = reduce

    def _keep_best(self, row: dict[str, float]) -> None:
        t = self.t
        value = row.get(t.monitor, float("nan"))
        better = t.history.is_better(value, self.best_value)
        if t.distributed is not None:  # rank 0 decides, so that every process keeps the same epoch
            better = bool(t.distributed.broadcast_int(int(better)))
        if not better:
            return
        self.best_value = value
        source = t.ema.module if t.ema is not None and t.monitor.startswith("ema_") else t.module
        if t.files is not None:
            self._write_weights(source, t.files.best)
        if t.restore_best:
            self.best_state = {k: v.detach().clone() for k, v in unwrap(source).state_dict().items()}

    # --------------------------------------------------------------------- end

    def finish(self) -> None:
        t = self.t
        t.progress.close()
        try:
            for cb in t.callbacks:
                cb.on_fit_end(t)
            if t.restore_best and self.best_state is not None:
                unwrap(t.module).load_state_dict(self.best_state)
            if t.files is not None and is_main_process() and len(t.history) and t.files.root.is_dir():
                replace_file(t.files.history, t.history.to_json)
                _plot(t.history, t.files.curves)
        finally:
            binding = getattr(t, "_binding", None)
            if binding is not None:
                binding.remove()
                t._binding = None


def _plot(history: History, path: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # curves need the train extra; the rest of the run is saved
        return
    replace_file(path, history.plot)
