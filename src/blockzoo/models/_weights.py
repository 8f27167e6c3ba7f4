"""Safe weights: safetensors first, torch.load only with weights_only=True, hashed URLs."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from blockzoo._version import __version__
from blockzoo.errors import CheckpointError, UnsafeCheckpointError

__all__ = ["load_weights", "save_weights", "weights_metadata"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save a model's state_dict as safetensors, with its name, configuration and the blockzoo version.

    Tensors that share memory are saved once (safetensors refuses aliases).

    Args:
        model: The model.
        path: Where to write; ``.safetensors`` is the expected suffix.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib, blockzoo
        >>> from safetensors import safe_open
        >>> model = blockzoo.create_model("resnet20")
        >>> path = blockzoo.save_weights(model, pathlib.Path(tempfile.mkdtemp()) / "resnet20.safetensors")
        >>> safe_open(path, "pt").metadata()["model"]
        'resnet20'
    """
    from safetensors.torch import save_model

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out), metadata=weights_metadata(model))
    return out


def weights_metadata(model: nn.Module) -> dict[str, str]:
    """What :func:`save_weights` records beside the tensors: the model's name and configuration, blockzoo's version."""
    return {
        "model": str(getattr(model, "model_name", type(model).__name__)),
        "config": json.dumps(getattr(model, "model_config", {}), default=str, sort_keys=True),
        "blockzoo_version": __version__,
        "format": "pt",
    }


def _cache_dir() -> Path:
    root = os.environ.get("BLOCKZOO_CACHE")
    return Path(root) if root else Path(torch.hub.get_dir()) / "blockzoo"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, sha256: str | None) -> Path:
    """Download ``url`` into the cache (once), checking its sha256 after the download and on every cache hit."""
    if sha256 is None or not _SHA256.fullmatch(sha256.lower()):
        raise ValueError(
            "a URL source needs the file's full sha256 (64 hex digits), checked after the download and on every "
            f"cache hit. Received: sha256={sha256!r}"
        )
    sha256 = sha256.lower()
    name = Path(urllib.parse.urlparse(url).path).name or "weights"
    cached = _cache_dir() / f"{sha256[:16]}-{name}"
    if cached.exists():
        actual = _sha256_of(cached)
        if actual != sha256:
            raise CheckpointError(
                f"the cached file {cached} has sha256 {actual}, not {sha256}: it was changed or truncated. "
                "Delete it to download it again."
            )
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as err:
            os.unlink(tmp.name)
            raise CheckpointError(f"could not download {url}: {err}") from err
    actual = _sha256_of(Path(tmp.name))
    if actual != sha256:
        os.unlink(tmp.name)
        raise CheckpointError(f"{url} has sha256 {actual}, not the expected {sha256}; nothing was cached")
    os.replace(tmp.name, cached)
    return cached


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            unsafe = _unsafe_globals(path, err)
            message = (
                f"{path} needs globals that are not safe to unpickle: {', '.join(unsafe)}."
                if unsafe
                else f"{path} could not be read with weights_only=True: {err}."
            )
            raise (UnsafeCheckpointError if unsafe else CheckpointError)(
                f"{message} blockzoo never falls back to unsafe loading; re-save the state_dict as safetensors "
                "from a trusted source."
            ) from err
        except Exception as err:
            raise CheckpointError(f"{path} could not be read: {err}") from err
        state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else loaded
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
        return dict(state)
    raise CheckpointError(f"{path}: unknown checkpoint format; use .safetensors, or .pt / .pth / .bin")


def _unsafe_globals(path: Path, refusal: pickle.UnpicklingError) -> list[str]:
    """The unsafe globals that a checkpoint refused by ``torch.load(weights_only=True)`` asks for."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as err:  # a damaged file, or the old non-zip format, which torch cannot list
        raise CheckpointError(
            f"{path} could not be read with weights_only=True (a damaged file, or an old-format pickle whose "
            f"globals cannot be listed): {refusal}. blockzoo never falls back to unsafe loading."
        ) from err


#: Kinds of tensor that ``Tensor.copy_`` cannot copy into a dense parameter.
_ODD_TENSORS: dict[str, Callable[[torch.Tensor], bool]] = {
    "sparse": lambda t: t.layout not in (torch.strided, torch.jagged),
    "quantized": lambda t: t.is_quantized,
    "nested": lambda t: t.is_nested,
    "meta": lambda t: t.is_meta,
}


def _unloadable(value: object, target: torch.Tensor) -> str | None:
    """Why ``value`` cannot be copied into ``target`` as it is, or ``None`` when it can."""
    if not isinstance(value, torch.Tensor):
        return f"a {type(value).__name__}, not a tensor"
    odd = [kind for kind, flag in _ODD_TENSORS.items() if flag(value)]
    if odd:
        return f"a {' '.join(odd)} tensor; only dense tensors with data load"
    if value.is_complex() and not target.is_complex():
        return f"{value.dtype} into {target.dtype} would drop the imaginary part"
    return None


def _check(model: nn.Module, state: Mapping[str, object], *, strict: bool, where: str) -> None:
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shared = [k for k in ours if k in state]
    unloadable = [f"{k}: {why}" for k in shared if (why := _unloadable(state[k], ours[k])) is not None]
    mismatched = [
        f"{k}: checkpoint {tuple(value.shape)}, model {tuple(ours[k].shape)}"
        for k in shared
        if isinstance(value := state[k], torch.Tensor) and value.shape != ours[k].shape
    ]
    problems = []
    if unloadable:
        problems.append(f"{len(unloadable)} tensor(s) that cannot be loaded: " + "; ".join(unloadable))
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): " + "; ".join(mismatched))
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s): " + ", ".join(missing))
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(unexpected))
    if problems:
        raise CheckpointError(
            f"cannot load {where} into {type(model).__name__}; the model is unchanged.\n" + "\n".join(problems)
        )


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    sha256: str | None = None,
) -> nn.Module:
    """Load weights into ``model`` safely; on any failure the model is left exactly as it was.

    Args:
        model: The model.
        source: A ``.safetensors`` file; a ``.pt`` / ``.pth`` file, read with
            ``torch.load(weights_only=True)`` only; a state_dict; or an
            ``http(s)://`` or ``file://`` URL, which needs ``sha256``.
        strict: Require the keys to match exactly (shapes must match always).
        sha256: The full sha256 of a URL's file, checked after the download
            and on every cache hit.

    Returns:
        The model.

    Raises:
        CheckpointError: missing, unexpected and shape-mismatched keys, and
            tensors that cannot be copied into the model's (sparse, quantized,
            complex into real), all listed at once with the source; a damaged
            or tampered file; a failed download.
        UnsafeCheckpointError: a pickle that needs unsafe globals (named).
        ValueError: a URL without a full sha256.

    Example:
        >>> import tempfile, pathlib, torch, blockzoo
        >>> model = blockzoo.create_model("lenet5")
        >>> path = blockzoo.save_weights(model, pathlib.Path(tempfile.mkdtemp()) / "lenet5.safetensors")
        >>> other = blockzoo.load_weights(blockzoo.create_model("lenet5"), path)
        >>> x = torch.randn(1, 1, 32, 32)
        >>> torch.equal(model.eval()(x), other.eval()(x))
        True
    """
    if isinstance(source, Mapping):
        state, where = dict(source), "the given state_dict"
    else:
        text = os.fspath(source)
        scheme = urllib.parse.urlparse(text).scheme
        path = _fetch(text, sha256) if scheme in ("http", "https", "file") else Path(text)
        state, where = _read(path), str(path)
    _check(model, state, strict=strict, where=where)
    ours = model.state_dict()
    try:  # convert before the first copy, so that a failure here leaves the model untouched
        ready = {k: v.to(ours[k].device, ours[k].dtype) if k in ours else v for k, v in state.items()}
    except Exception as err:
        raise CheckpointError(
            f"cannot load {where} into {type(model).__name__}; the model is unchanged: {err}"
        ) from err
    model.load_state_dict(ready, strict=strict)
    return model
