"""A run's files, its checkpoints, and resuming from them: the part of ``Run`` (``_run``) that saves and restores."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from blockzoo.errors import CheckpointError
from blockzoo.models import load_weights
from blockzoo.regularization._store import attachments  # their schedules' positions, which resume restores
from blockzoo.train._checkpoint import (
    capture_rng,
    is_main_process,
    load_state,
    ready,
    replace_file,
    restore_rng,
    save_state,
    unwrap,
    write_full_state,
    write_weights,
)
from blockzoo.train._distributed import check_world_size
from blockzoo.train._history import History
from blockzoo.train._metrics import MetricState

if TYPE_CHECKING:
    from blockzoo.train._batches import Batches
    from blockzoo.train._trainer import Trainer

__all__ = ["Checkpoints", "RunFiles"]

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


class Checkpoints:
    """Writes a run's checkpoints and resumes from them; ``Run`` is one."""

    t: Trainer
    train: Batches
    best_value: float | None
    best_state: dict[str, Tensor] | None
    start_epoch: int
    skip: int
    partial: dict[str, Any] | None
    elapsed: float
    epoch_start: dict[str, Any]

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
