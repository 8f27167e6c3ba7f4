"""The loader's safety: unsafe pickles, tampered caches, damaged files, wrong shapes, hashless URLs."""

import hashlib
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import CheckpointError, UnsafeCheckpointError, load_weights, save_weights


def small() -> nn.Module:
    torch.manual_seed(0)
    return blockzoo.create_model("lenet5")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Payload:
    """Unpickling this runs os.system: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": Payload(marker)}, path)  # what a malicious checkpoint looks like
    model = small()
    before = snapshot(model)
    with pytest.raises(
        UnsafeCheckpointError, match=r"evil\.pt needs globals that are not safe to unpickle: posix\.system"
    ):
        load_weights(model, path)
    assert not marker.exists()
    assert unchanged(model, before)


def test_pt_files_load_with_weights_only(tmp_path: Path) -> None:
    model = small()
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    other = load_weights(blockzoo.create_model("lenet5"), path)
    assert unchanged(other, snapshot(model))


def test_every_key_problem_is_reported_at_once(tmp_path: Path) -> None:
    model = small()
    before = snapshot(model)
    state = dict(model.state_dict())
    state["head.fc.weight"] = torch.zeros(3, 84)
    del state["head.fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(
        CheckpointError,
        match=r"(?s)cannot load .*bad\.safetensors into ZooModel; the model is unchanged\..*1 shape mismatch\(es\): head\.fc\.weight: checkpoint \(3, 84\), model \(10, 84\).*1 missing key\(s\): head\.fc\.bias.*1 unexpected key\(s\): extra\.weight",
    ):
        load_weights(model, path)
    assert unchanged(model, before)
    with pytest.raises(CheckpointError, match=r"shape mismatch"):
        load_weights(model, state, strict=False)  # shapes must match even when not strict
    del state["head.fc.weight"], state["extra.weight"]
    load_weights(model, state, strict=False)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    model = small()
    path = save_weights(model, tmp_path / "w.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=r"w\.safetensors is not a readable safetensors file"):
        load_weights(model, path)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothing\.safetensors"):
        load_weights(model, tmp_path / "nothing.safetensors")
    (tmp_path / "w.npz").write_bytes(b"PK")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint format; use \.safetensors"):
        load_weights(model, tmp_path / "w.npz")
    assert unchanged(model, before)


def test_urls_need_a_hash_and_the_cache_is_checked_on_every_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLOCKZOO_CACHE", str(tmp_path / "cache"))
    model = small()
    path = save_weights(model, tmp_path / "remote" / "lenet5.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = path.as_uri()
    with pytest.raises(
        ValueError, match=r"a URL source needs the file's full sha256 \(64 hex digits\).*Received: sha256=None"
    ):
        load_weights(small(), url)
    with pytest.raises(ValueError, match=r"Received: sha256='abc'"):
        load_weights(small(), url, sha256="abc")
    with pytest.raises(
        CheckpointError,
        match=r"lenet5\.safetensors has sha256 [0-9a-f]{64}, not the expected 0{64}; nothing was cached",
    ):
        load_weights(small(), url, sha256="0" * 64)
    assert not list((tmp_path / "cache").glob("*"))

    fresh = load_weights(blockzoo.create_model("lenet5"), url, sha256=digest)
    assert unchanged(fresh, snapshot(model))
    cached = next((tmp_path / "cache").glob("*lenet5.safetensors"))
    load_weights(blockzoo.create_model("lenet5"), url, sha256=digest)  # a clean cache hit

    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")  # tamper with the cached copy
    victim = blockzoo.create_model("lenet5")
    before = snapshot(victim)
    with pytest.raises(CheckpointError, match=r"the cached file .* has sha256 [0-9a-f]{64}, not " + digest):
        load_weights(victim, url, sha256=digest)
    assert unchanged(victim, before)


def test_saved_metadata(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = blockzoo.create_model("simple_cnn", widths=(8, 16), num_classes=4)
    path = save_weights(model, tmp_path / "m.safetensors")
    meta = safe_open(str(path), "pt").metadata()
    assert meta["model"] == "simple_cnn"
    assert meta["config"] == '{"num_classes": 4, "widths": [8, 16]}'
    assert meta["blockzoo_version"] == blockzoo.__version__
