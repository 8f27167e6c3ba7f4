"""Workers for the two-rank gloo tests (a plain module, so spawned processes can import it)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, world, *args)`` in ``world`` processes joined by gloo on loopback."""
    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)


def make_model() -> nn.Module:
    import blockzoo

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), blockzoo.MLP(16, (16,), 3))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=gen), torch.randn(8, 3, generator=gen)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, steps: int = 4) -> None:
    import blockzoo

    opt = blockzoo.create_optimizer(model, name, lr=0.05, weight_decay=0.01)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def ddp_worker(rank: int, world: int, name: str, out: str) -> None:
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model)
    x, y = batch()
    shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    train(ddp, x[shard], y[shard], name)
    if rank == 0:
        torch.save(model.state_dict(), out)


def fsdp_worker(rank: int, world: int, name: str, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    model = make_model()
    for layer in model:
        fully_shard(layer)
    fully_shard(model)
    x, y = batch()
    shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    train(model, x[shard], y[shard], name)
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    if rank == 0:
        torch.save(full, out)


def ddp_penalty_worker(rank: int, world: int, out: str) -> None:
    """Grad-mode L2 attached to the module inside DDP; each rank trains on its half of the global batch."""
    from blockzoo.regularization import L2, attach_penalty

    model = make_model()
    attach_penalty(model, L2(0.05), mode="grad", roles=("weight", "bias"))
    ddp = nn.parallel.DistributedDataParallel(model)
    x, y = batch()
    half = x.shape[0] // world
    xs, ys = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        nn.functional.mse_loss(ddp(xs), ys).backward()
        opt.step()
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
