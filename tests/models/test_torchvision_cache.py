"""pretrained="torchvision" reads torch.hub's cache with weights_only=True: a poisoned cache file never runs."""

import os
from pathlib import Path

import pytest
import torch

import blockzoo
from blockzoo import CheckpointError


class Payload:
    """Unpickling this runs os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_poisoned_hub_cache_file_is_refused_and_never_run(tmp_path: Path) -> None:
    from torchvision.models import get_model_weights

    url = get_model_weights("resnet18").DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    marker = tmp_path / "ran"
    torch.save({"conv1.weight": Payload(marker)}, cache / url.rsplit("/", 1)[-1])  # a cache hit: no download
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(CheckpointError, match=r"could not download torchvision's .* for 'resnet18'"):
            blockzoo.create_model("resnet18", pretrained="torchvision")
    finally:
        torch.hub.set_dir(previous)
    assert not marker.exists()
