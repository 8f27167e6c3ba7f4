"""``fit`` on several processes: torch.distributed's process group from torchrun's environment, DDP or FSDP2.

blockzoo has no launcher and no communication layer of its own: ``torchrun``
starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; ``fit`` joins the group they describe,
wraps the model, gives each process its share of every batch and adds up the
metrics' sums over the processes.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from blockzoo._checks import check_bool, check_choice
from blockzoo.errors import InputError

if TYPE_CHECKING:
    from blockzoo.train._batches import Batches
    from blockzoo.train._metrics import MetricState
    from blockzoo.train._trainer import Trainer

__all__ = [
    "STRATEGIES",
    "TORCHRUN_VARIABLES",
    "Distributed",
    "check_distributed_run",
    "check_world_size",
    "convert_sync_batchnorm",
    "describe_split",
    "metric_reducer",
    "process_group",
    "resolve_distributed",
    "torchrun_world_size",
]

T = TypeVar("T")

#: What torchrun sets in each process it starts; ``init_process_group`` reads them.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: How the model is spread over the processes: a replica each (DDP), or shards (FSDP2's ``fully_shard``).
STRATEGIES = ("ddp", "fsdp")


def torchrun_world_size() -> int | None:
    """The ``WORLD_SIZE`` that torchrun set, when every variable it sets is there; ``None`` otherwise."""
    if not all(os.environ.get(name) for name in TORCHRUN_VARIABLES):
        return None
    return _env_int("WORLD_SIZE")


def _env_int(name: str, default: str | None = None) -> int:
    """The whole number in the environment variable ``name`` (torchrun's), or an InputError that shows it."""
    text = os.environ.get(name, default)
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a whole number, as torchrun sets it in each process it starts; unset it to train "
            f"in one process. Received: {name}={text!r}"
        ) from None


def _group_size() -> int | None:
    """The size of an already initialised default process group, if any."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return None


class Distributed:
    """The distributed set-up of one run: this process's rank, the number of processes and how the model is spread.

    Built (and checked) when the :class:`~blockzoo.train.Trainer` is; the
    process group is joined by :meth:`start` when none exists, and that group
    is left when the process exits (:meth:`end` and the exit handler).
    """

    def __init__(self, world_size: int, *, strategy: str, sync_batchnorm: bool) -> None:
        self.world_size = world_size
        self.strategy = strategy
        self.sync_batchnorm = sync_batchnorm
        self.rank = _env_int("RANK", "0") if _group_size() is None else int(dist.get_rank())
        self.local_rank = _env_int("LOCAL_RANK", "0")
        self.created = False
        #: where the tensors that collectives exchange live: the process's GPU with nccl, the CPU with gloo
        self.comm_device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process prints and writes the run's files (rank 0)."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """``device`` with this process's GPU (``LOCAL_RANK``) when it is a CUDA device without an index.

        Raises:
            InputError: a CUDA device whose index is not this process's ``LOCAL_RANK``
                (every process would train on that one GPU).
        """
        if device.type != "cuda":
            return device
        index: int | None = device.index
        if index is None:
            return torch.device("cuda", self.local_rank)
        if index != self.local_rank:
            raise InputError(
                "device: under torchrun each process trains on the GPU of its LOCAL_RANK; a fixed index would put "
                "every process on one GPU. Pass device='cuda' or 'auto'. "
                f"Received: device={str(device)!r} in the process of LOCAL_RANK={self.local_rank}"
            )
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group from torchrun's environment (nccl on CUDA, gloo otherwise), unless one exists."""
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.comm_device = device
        if _group_size() is None:
            if device.type == "cuda":  # bound to its GPU: nccl's barriers then know which device to use
                dist.init_process_group("nccl", device_id=device)
            else:
                dist.init_process_group("gloo")
            self.created = True
            # The group stays for the next fit in this process: under torchrun a default group made again after
            # destroy_process_group finds its peers' old addresses in torchrun's store, and its first collective
            # waits for ever. It is left when the process exits.
            atexit.register(_leave_group)
        _exit.fits_ended = False  # until this fit ends as every process's does (:meth:`ended`)
        self.rank = int(dist.get_rank())

    def ended(self) -> None:
        """Note that this fit ended normally in this process (its last collective, a barrier, is behind it)."""
        _exit.fits_ended = True

    def end(self, *, failed: bool = False) -> None:
        """Leave the process group now if :meth:`start` created it (the command line, as it ends).

        ``failed``: the command is ending on an error, so the other processes may not come to a last barrier.
        """
        created, self.created = self.created, False
        if created:
            _leave_group(together=not failed)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """The module that trains: ``DistributedDataParallel(module)``, or ``module`` sharded in place by ``fully_shard``."""
        if self.strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            # fully_shard keeps each process's own values (DDP broadcasts rank 0's itself): start from rank 0's
            self.broadcast_tensors(module, parameters=True)
            # one unit per child that holds parameters, then the root: each gathers its weights only while it runs
            for child in module.children():
                if any(True for _ in child.parameters()):
                    fully_shard(child)
            fully_shard(module)
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def broadcast_tensors(self, module: nn.Module, *, parameters: bool = False) -> None:
        """Put rank 0's buffers (batch norm's running statistics), and its parameters if asked, in every process."""
        tensors = [*module.parameters(), *module.buffers()] if parameters else list(module.buffers())
        with torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def broadcast_object(self, value: T) -> T:
        """Rank 0's ``value`` (anything picklable) in every process."""
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.comm_device)
        return box[0]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` in every process."""
        box = torch.tensor([value], dtype=torch.int64, device=self.comm_device)
        dist.broadcast(box, src=0)
        return int(box.item())

    def barrier(self) -> None:
        """Wait here until every process arrives (so none reads a file that rank 0 is still writing)."""
        dist.barrier()

    def all_reduce_sums(self, sums: dict[str, Tensor], count: int, names: list[str], device: torch.device) -> int:
        """Add ``sums`` (in place) and ``count`` over the processes; a name no process has stays absent."""
        values = [float(count)] + [1.0 if n in sums else 0.0 for n in names]
        packed = torch.tensor(values, dtype=torch.float64, device=device)
        stacked = [
            sums[n].detach().reshape(()).to(device, torch.float64) if n in sums else packed[0] * 0 for n in names
        ]
        packed = torch.cat([packed, torch.stack(stacked)]) if names else packed
        dist.all_reduce(packed)
        total = int(packed[0].item())
        for i, name in enumerate(names):
            if packed[1 + i] > 0:
                sums[name] = packed[1 + len(names) + i]
        return total

    def gather_objects(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` on rank 0 (``None`` elsewhere)."""
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def full_state_dict(self, module: nn.Module) -> dict[str, Tensor]:
        """The unsharded state_dict on the CPU (every process must call it; FSDP2 gathers the shards)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return {k: v for k, v in get_model_state_dict(module, options=options).items() if isinstance(v, Tensor)}


class _ExitState:
    #: Whether this process's last fit ended normally (or none ran): then the processes meet at a barrier at exit.
    fits_ended = True


_exit = _ExitState()


def _exiting_on_error() -> bool:
    """Whether the interpreter is exiting on an uncaught exception (Python sets ``sys.last_value`` before exit handlers)."""
    return getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None


def _leave_group(*, together: bool = True) -> None:
    """Destroy the default process group; first, when this process ends normally, wait there for every process.

    A gloo worker thread frees the tensors of a finished collective after the
    collective has returned (a barrier keeps those of the collectives before
    it until it is freed itself), and freeing a tensor that Python holds
    needs the GIL. A process that leaves while another still works (rank 0
    writing its files) can reach interpreter shutdown before its worker has
    done that; the worker then aborts the process ("terminate called without
    an active exception", exit code -6) although the run succeeded. So the
    processes first meet at a barrier whose work this thread holds: waiting
    for it lets the workers finish the earlier frees while Python is alive,
    and the barrier's own work is freed here, on this thread.

    The barrier is skipped when this process's last fit raised or the
    interpreter is exiting on an uncaught exception (Ctrl-C included): the
    other processes may be inside another collective, and this one must exit
    for torchrun to see the error and stop them. A process that leaves early
    by ``sys.exit`` while the others still run collectives waits here for
    them, as it would at any collective.
    """
    if not dist.is_initialized():
        return
    # a fit whose exception was caught and dropped leaves its DDP wrapper in garbage cycles that hold the group
    gc.collect()
    try:
        if together and _exit.fits_ended and not _exiting_on_error():
            work = dist.barrier(async_op=True)
            if work is not None:
                work.wait()
            del work
    finally:
        dist.destroy_process_group()


def resolve_distributed(
    distributed: bool | None, *, strategy: str, sync_batchnorm: bool, batch_size: int | None, device: torch.device
) -> Distributed | None:
    """The :class:`Distributed` set-up for ``fit``'s options, or ``None`` for one process.

    ``None`` turns it on when torchrun set ``WORLD_SIZE`` above 1 (or a process
    group of several processes exists); ``True`` demands torchrun's
    environment or a process group; ``False`` never. ``batch_size`` is ``None``
    for a user's ``DataLoader``, which keeps its own (per process).

    Raises:
        InputError: ``distributed=True`` outside torchrun, a batch that does not
            split evenly, ``sync_batchnorm`` on a CPU, or FSDP2 where torch lacks it.
    """
    if distributed is not None:
        check_bool("distributed", distributed)
    check_choice("strategy", strategy, STRATEGIES)
    check_bool("sync_batchnorm", sync_batchnorm)
    world = _group_size() or torchrun_world_size()
    if distributed is True and world is None:
        found = ", ".join(n for n in TORCHRUN_VARIABLES if os.environ.get(n)) or "none of them"
        raise InputError(
            "distributed=True trains in the processes that torchrun starts (fit never starts processes itself): "
            f"launch with `torchrun --nproc-per-node N script.py`, which sets {', '.join(TORCHRUN_VARIABLES)}, "
            f"or initialise a process group first. Received: distributed=True with {found} set"
        )
    if distributed is False or world is None or (distributed is None and world < 2):
        if sync_batchnorm or strategy != "ddp":
            chosen = "sync_batchnorm=True" if sync_batchnorm else f"strategy={strategy!r}"
            raise InputError(
                "sync_batchnorm and strategy apply to a distributed run (under torchrun); this one runs in one "
                f"process. Received: {chosen}"
            )
        return None
    if batch_size is not None and batch_size % world:
        raise InputError(
            f"batch_size is the global batch, split evenly over the {world} processes; {batch_size} does not divide "
            f"by {world}: pass a multiple of {world} (for example {world * max(1, round(batch_size / world))}). "
            f"Received: batch_size={batch_size}, world_size={world}"
        )
    if sync_batchnorm and device.type != "cuda":
        raise InputError(
            "sync_batchnorm needs CUDA devices: torch's SyncBatchNorm runs on GPUs only. Without it each process "
            f"normalises over its share of the batch. Received: sync_batchnorm=True, device={str(device)!r}"
        )
    if strategy == "fsdp":
        import torch.distributed.fsdp as fsdp

        if not hasattr(fsdp, "fully_shard"):
            raise InputError(
                f"strategy='fsdp' uses FSDP2 (torch.distributed.fsdp.fully_shard), which torch {torch.__version__} "
                "lacks. Received: strategy='fsdp'"
            )
    return Distributed(world, strategy=strategy, sync_batchnorm=sync_batchnorm)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every batch norm turned into ``SyncBatchNorm`` (torch's conversion; blocks keep their stages).

    torch's conversion replaces children with ``add_module``, which blockzoo's
    blocks follow (their forward runs the new norm, see ``Block.add_module``).
    """
    converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
    return converted


@contextlib.contextmanager
def process_group(device: str | torch.device = "auto") -> Iterator[Distributed | None]:
    """Inside torchrun (``WORLD_SIZE`` above 1): the process group, joined for the block and left after it if joined here.

    The command line holds the group across its checks and ``fit`` (which uses it and leaves it alone).
    """
    world = torchrun_world_size()
    if world is None or world < 2 or not dist.is_available():
        yield None
        return
    from blockzoo.train._setup import resolve_device

    group = Distributed(world, strategy="ddp", sync_batchnorm=False)
    group.start(group.device(resolve_device(device)))
    _exit.fits_ended = True  # no fit has run yet: the command's processes meet at its end
    try:
        yield group
    except BaseException:
        group.end(failed=True)
        raise
    group.end()


def metric_reducer(d: Distributed, metrics: list[str], device: torch.device) -> Callable[[MetricState], None]:
    """A function that adds a :class:`MetricState`'s sums and count over the processes, in place."""
    names = ["loss", *metrics]

    def reduce(state: MetricState) -> None:
        state.count = d.all_reduce_sums(state.sums, state.count, names, device)

    return reduce


def describe_split(d: Distributed, train: Batches) -> str:
    """The line a distributed run starts with: the processes, and the batch in all and per process."""
    backend = dist.get_backend()
    head = f"distributed: {d.world_size} processes ({backend}, {d.strategy})"
    if train.sampler is None:  # a user's DataLoader keeps its own batch size, per process
        per = train.batch_size
        return f"{head}; batch_size {per} per process (the DataLoader's) = {per * d.world_size} in all"
    per = train.batch_size // d.world_size
    return f"{head}; batch_size {train.batch_size} in all = {d.world_size} x {per} per process"


def check_distributed_run(t: Trainer, train: Batches, val: Batches | None) -> None:
    """Refuse what a distributed run cannot do with these data and options, before any step.

    Raises:
        InputError: a user's training ``DataLoader`` without a ``DistributedSampler``,
            a validation one with it, a model already wrapped by DDP or FSDP2, or an FSDP2
            run with attached regularizers, ``ema``, ``restore_best`` or ``resume``.
    """
    from torch.utils.data import DistributedSampler

    if train.sampler is None and not isinstance(getattr(train.loader, "sampler", None), DistributedSampler):
        raise InputError(
            "train_data: under torchrun every process needs its own part of the data; pass tensors or a Dataset "
            "(fit shares each batch out), or a DataLoader with a DistributedSampler. "
            f"Received: a DataLoader with {type(getattr(train.loader, 'sampler', None)).__name__}"
        )
    if val is not None and val.sampler is None and isinstance(getattr(val.loader, "sampler", None), DistributedSampler):
        raise InputError(
            "val_data: a DistributedSampler pads the validation set with repeated samples, which would count "
            "twice; pass tensors or a Dataset (fit shares them out without repeats), or a DataLoader that every "
            "process reads whole. Received: a DataLoader with DistributedSampler"
        )
    _refuse_a_wrapped_model(t.module)
    if (d := t.distributed) and d.strategy == "fsdp":
        from blockzoo.regularization import list_regularizers

        if attached := list_regularizers(t.module):
            kinds = sorted({row.kind for row in attached})
            raise InputError(
                "strategy='fsdp' replaces the model's parameters with shards, and the regularizers attached to it "
                "hold the parameters it had, so they would silently stop acting; use strategy='ddp', or remove "
                f"them. Received: strategy='fsdp' with {len(attached)} attached ({', '.join(kinds)})"
            )
        refused = [
            name
            for name, used in (
                ("ema", t.ema_decay is not None),
                ("restore_best", t.restore_best),
                ("resume", t.resume is not None),
            )
            if used
        ]
        if refused:
            raise InputError(
                "strategy='fsdp' does not keep an EMA, best weights in memory or a training state to resume "
                "(it writes the weights and the history); use strategy='ddp' for those. "
                f"Received: strategy='fsdp' with {', '.join(refused)}"
            )


def _refuse_a_wrapped_model(module: nn.Module) -> None:
    """Refuse a model that DDP or FSDP2 already wraps: fit wraps it (a second wrapper would reduce twice)."""
    import torch.distributed.fsdp as fsdp

    wrappers = (nn.parallel.DistributedDataParallel, getattr(fsdp, "FSDPModule", nn.parallel.DistributedDataParallel))
    if isinstance(module, wrappers):
        raise InputError(
            "model: under torchrun fit wraps the model in DistributedDataParallel or shards it with fully_shard "
            "itself; pass the model inside the wrapper (model.module for DDP) or before fully_shard. "
            f"Received: model={type(module).__name__}"
        )


def check_world_size(saved: int, d: Distributed | None, resume: Path | None) -> None:
    """Refuse to resume with another number of processes than the run had.

    Raises:
        InputError: the sizes differ (each process's share of a batch, and the RNG states it drew from, would differ).
    """
    now = 1 if d is None else d.world_size
    if saved != now:
        raise InputError(
            f"resume: the run in {resume} trained in {saved} process(es), and this one has {now}; each process's "
            "share of the batches and its random state belong to that number, so the run could not end as it "
            f"would have. Resume with `torchrun --nproc-per-node {saved}`. Received: world_size={now} (the run had {saved})"
        )
