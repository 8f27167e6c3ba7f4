"""The files of a run in ``out_dir``, and the RNG states as tensors so that ``torch.load(weights_only=True)`` reads them."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from blockzoo.errors import CheckpointError
from blockzoo.models import save_weights

__all__ = [
    "CONFIG",
    "HISTORY",
    "STATE",
    "capture_rng",
    "is_main_process",
    "load_state",
    "ready",
    "replace_file",
    "restore_rng",
    "save_state",
    "unwrap",
    "write_full_state",
    "write_json",
    "write_weights",
]

CONFIG = "config.json"
HISTORY = "history.json"
STATE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The module under ``torch.compile`` and DDP / DataParallel wrappers, whose state_dict keys have no prefix."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(compiled := getattr(model, "_orig_mod", None), nn.Module):
            # torch.compile's wrapper keeps the module it compiled there; torch has no public accessor for it
            model = compiled
        else:
            return model


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """Every RNG state that training draws from: torch's CPU one (and ``device``'s, for a CUDA device), Python's ``random`` and numpy's legacy global one."""
    version, words, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
    }
    if device is not None and device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        state["cuda"] = torch.cuda.get_rng_state(index)
        state["cuda_index"] = index
    try:
        import numpy as np
    except ImportError:  # numpy is optional for torch
        return state
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    # numpy's state is a tuple holding an array, which weights_only loading refuses: store it as tensors
    state["numpy"] = {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` took."""
    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"].tolist()), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"], state["cuda_index"])
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        keys = n["keys"].numpy().astype(np.uint32)
        np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))


def replace_file(path: Path, write: Any) -> Path:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    tmp = path.with_name(f".tmp-{path.name}")  # the same suffix, for writers that check it
    write(tmp)
    os.replace(tmp, path)
    return path


def write_weights(model: nn.Module, path: Path) -> Path:
    """``save_weights`` of the unwrapped model, atomically."""
    module = unwrap(model)
    return replace_file(path, lambda tmp: save_weights(module, tmp))


def write_full_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> Path:
    """``state`` (a full state_dict gathered from FSDP2's shards) as ``save_weights`` writes ``model``'s, atomically."""
    from safetensors.torch import save_file

    from blockzoo.models._weights import weights_metadata

    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        value = value.detach().contiguous()
        if value.data_ptr() in seen:  # safetensors refuses tensors that share memory
            value = value.clone()
        seen.add(value.data_ptr())
        tensors[key] = value
    return replace_file(path, lambda tmp: save_file(tensors, str(tmp), metadata=weights_metadata(model)))


def write_json(data: Any, path: Path) -> Path:
    """JSON, atomically."""
    return replace_file(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=str) + "\n"))


def save_state(state: dict[str, Any], path: Path) -> Path:
    """``torch.save`` of plain containers and tensors, atomically."""
    return replace_file(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Read :func:`save_state`'s file with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing or cannot be read safely.
    """
    if not path.is_file():
        raise CheckpointError(f"resume: no training state at {path}; resume takes the out_dir of an earlier run")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"resume: cannot read the training state {path}: {err}") from err
    return state


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
