"""One run of :class:`~blockzoo.train.Trainer`: set-up, the epochs, checkpoints, resume, Ctrl-C and the end."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sized
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from blockzoo._names import check_globs_match
from blockzoo._version import __version__
from blockzoo.errors import CheckpointError
from blockzoo.models import load_weights
from blockzoo.regularization import list_regularizers
from blockzoo.regularization._store import attachments  # their schedules' positions, which resume restores
from blockzoo.train._batches import Batches, seed_everything
from blockzoo.train._checkpoint import (
    capture_rng,
    load_state,
    replace_file,
    restore_rng,
    save_state,
    unwrap,
    write_full_state,
    write_json,
    write_weights,
)
from blockzoo.train._distributed import (
    check_distributed_run,
    check_world_size,
    convert_sync_batchnorm,
    describe_split,
    metric_reducer,
)
from blockzoo.train._history import History
from blockzoo.train._metrics import MetricState
from blockzoo.train._preflight import check_model_fits

if TYPE_CHECKING:
    from blockzoo.train._trainer import Trainer

__all__ = ["Run", "RunFiles", "interrupt_guard"]

#: Options that may differ when resuming: they do not change what the run computes.
_FREE_ON_RESUME = {"device"}


class RunFiles:
    """The files of a run in its ``out_dir``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.json"
        self.history = root / "history.json"
        self.state = root / "state.pt"
        self.last = root / "last.safetensors"
        self.best = root / "best.safetensors"
        self.ema = root / "ema.safetensors"
        self.curves = root / "curves.png"

    def has_checkpoint(self) -> bool:
        """Whether a training state has been written."""
        return self.state.is_file()


class _InterruptGuard:
    """Turns the first Ctrl-C during training into a request to stop at the next step boundary.

    Stopping in the middle of ``optimizer.step()`` would leave the weights half
    updated, so the handler only sets a flag that the loop reads after each
    step. A second Ctrl-C interrupts at once, as usual.
    """

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        self.requested = False
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: FrameType | None) -> None:
            self.requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("\nCtrl-C: stopping after this step (press it again to stop at once)", file=sys.stderr, flush=True)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self.requested = False


interrupt_guard = _InterruptGuard()


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the run only."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    # cuBLAS needs a fixed workspace for deterministic matmuls (torch's reproducibility notes); it reads this
    # when it makes its handle, so it takes effect unless CUDA already ran a matmul in this process
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


class Run:
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

    # ------------------------------------------------------------------- resume

    def _read_resume(self) -> dict[str, Any]:
        t = self.t
        files = RunFiles(ready(t.resume, "resume"))
        state = load_state(files.state)
        check_world_size(state.get("world_size", 1), t.distributed, t.resume)
        before, now = state["options"], t.options()
        changed = sorted(k for k in set(before) | set(now) if k not in _FREE_ON_RESUME and before.get(k) != now.get(k))
        if changed:
            shown = ", ".join(f"{k}={before.get(k)!r} (now {now.get(k)!r})" for k in changed[:4])
            raise ValueError(
                f"resume: the run in {t.resume} was started with other options, so it could not end as it would "
                f"have; pass the same ones (they are in {files.config}). Received: {shown}"
            )
        if t.files is None:
            t.files = files
        elif t.files.root.resolve() != files.root.resolve():
            raise ValueError(f"resume: out_dir must be the run's folder or None. Received: out_dir={t.files.root}")
        return state

    def _load_resume(self, state: dict[str, Any]) -> None:
        t = self.t
        files = ready(t.files, "the run's folder")
        optimizer = ready(t.optimizer, "the optimizer")
        try:
            load_weights(unwrap(t.module), files.last)
        except CheckpointError as err:
            raise CheckpointError(f"resume: the last weights in {files.root} do not fit the model: {err}") from err
        optimizer.load_state_dict(state["optimizer"])
        if t.schedule is not None:
            t.schedule.scheduler.load_state_dict(state["scheduler"])
        if t.scaler is not None and "scaler" in state:
            t.scaler.load_state_dict(state["scaler"])
        if t.ema is not None:
            t.ema.load_state_dict(state["ema"])
        stateful = [cb for cb in t.callbacks if cb.state_dict()]  # the ones with something to resume
        kinds = [type(cb).__qualname__ for cb in stateful]
        saved = [entry["kind"] for entry in state["callbacks"]]
        if kinds != saved:
            raise ValueError(
                f"resume: the run in {files.root} kept the state of the callbacks {saved}; pass the same ones, in "
                f"the same order (callbacks without state may change). Received: callbacks with state {kinds}"
            )
        for cb, entry in zip(stateful, state["callbacks"], strict=True):
            cb.load_state_dict(entry["state"])
        steps = [a for a in attachments(unwrap(t.module)) if a.kind != "optimizer"]
        if [a.kind for a in steps] != [entry["kind"] for entry in state["attachments"]]:
            raise ValueError(
                f"resume: the run in {files.root} had the attachments {[e['kind'] for e in state['attachments']]} "
                "(their schedules resume where they were); attach the same ones before resuming. "
                f"Received: a model with {[a.kind for a in steps]}"
            )
        for attachment, entry in zip(steps, state["attachments"], strict=True):
            attachment.step = int(entry["step"])
        t.history = History.from_state_dict(state["history"])
        self.best_value = state["best_value"]
        if t.restore_best and files.best.is_file():
            best = load_weights(copy.deepcopy(unwrap(t.module)), files.best)
            self.best_state = {k: v.detach() for k, v in best.state_dict().items()}
        position = state["position"]
        self.start_epoch, self.skip = int(position["epoch"]), int(position["batch"])
        t.global_step = int(position["global_step"])
        t.last_lr = float(position["last_lr"])
        t.stop_reason = state["stop_reason"]
        self.partial = state.get("metrics")
        self.elapsed = float(position["elapsed"])
        d = t.distributed
        own = state["ranks"][d.rank] if d is not None and "ranks" in state else state  # this process's draws
        self.train.load_state_dict(own["batches"])
        self.epoch_start = own["epoch_start"]
        restore_rng(own["rng"])

    def _state(
        self, epoch: int, batch: int, metrics: MetricState | None, elapsed: float, ranks: list[Any] | None
    ) -> dict[str, Any]:
        t = self.t
        state: dict[str, Any] = {
            "options": t.options(),
            "world_size": 1 if t.distributed is None else t.distributed.world_size,
            "position": {
                "epoch": epoch,
                "batch": batch,
                "global_step": t.global_step,
                "elapsed": elapsed,
                "last_lr": t.last_lr,
            },
            "stop_reason": t.stop_reason,
            "optimizer": ready(t.optimizer, "the optimizer").state_dict(),
            "callbacks": [
                {"kind": type(cb).__qualname__, "state": cb_state}
                for cb in t.callbacks
                if (cb_state := cb.state_dict())
            ],
            "history": t.history.state_dict(),
            # where each attachment's schedule is: it lives on the model, but not in its state_dict
            "attachments": [
                {"kind": a.kind, "step": a.step} for a in attachments(unwrap(t.module)) if a.kind != "optimizer"
            ],
            "batches": self.train.state_dict(),
            "best_value": self.best_value,
            "rng": capture_rng(t.device),
            "epoch_start": self.epoch_start,
        }
        if t.schedule is not None:
            state["scheduler"] = t.schedule.scheduler.state_dict()
        if t.scaler is not None:
            state["scaler"] = t.scaler.state_dict()
        if t.ema is not None:
            state["ema"] = t.ema.state_dict()
        if metrics is not None:
            state["metrics"] = metrics.state_dict()
        if ranks is not None:  # each process draws from its own generators: each gets its own back
            state["ranks"] = ranks
        return state

    def checkpoint(self, epoch: int, batch: int, metrics: MetricState | None, elapsed: float) -> None:
        """Write the last weights, the EMA's, the history and the training state (each file atomically).

        In a distributed run every process calls it: rank 0 writes (with every
        process's RNG states, or FSDP2's gathered weights), and the others wait
        until the files are complete.
        """
        t = self.t
        files, d = t.files, t.distributed
        if files is None:
            return
        if d is not None and d.strategy == "fsdp":  # no state.pt: resuming a sharded run is refused (see docs)
            self._write_weights(t.module, files.last)
            if d.is_main:
                replace_file(files.history, t.history.to_json)
            d.barrier()
            return
        ranks = d.gather_objects(self._own_random_state()) if d is not None else None
        if is_main_process():
            write_weights(t.module, files.last)
            if t.ema is not None:
                write_weights(t.ema.module, files.ema)
            replace_file(files.history, t.history.to_json)
            save_state(self._state(epoch, batch, metrics, elapsed, ranks), files.state)
        if d is not None:
            d.barrier()

    def _own_random_state(self) -> dict[str, Any]:
        """What this process draws from: its RNGs, its batches' generators, and both as its epoch began."""
        return {"rng": capture_rng(self.t.device), "batches": self.train.state_dict(), "epoch_start": self.epoch_start}

    def _write_weights(self, module: nn.Module, path: Path) -> None:
        """Rank 0 writes ``module``'s weights; FSDP2's shards are gathered first, by every process."""
        d = self.t.distributed
        if d is not None and d.strategy == "fsdp":
            state = d.full_state_dict(unwrap(module))
            if d.is_main:
                write_full_state(unwrap(module), state, path)
        elif is_main_process():
            write_weights(module, path)

    # ------------------------------------------------------------------- epochs

    def execute(self) -> History:
        t = self.t
        d = t.distributed
        # one process cannot stop alone at a step: under torchrun Ctrl-C ends every process (resume from an epoch)
        guard = interrupt_guard.installed() if d is None else contextlib.nullcontext()
        with guard, _deterministic(t.deterministic):
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


T = TypeVar("T")


def is_main_process() -> bool:
    """Whether this process writes the run's files: the only one, or rank 0 of a torch.distributed group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def ready(value: T | None, what: str) -> T:
    """``value``, which set-up has made by now (a RuntimeError names it otherwise)."""
    if value is None:
        raise RuntimeError(f"{what} is used before the run set it up")
    return value


def _plot(history: History, path: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # curves need the train extra; the rest of the run is saved
        return
    replace_file(path, history.plot)
