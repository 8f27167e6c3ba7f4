from pathlib import Path

import torch

import blockzoo

ROOT = Path(__file__).resolve().parents[2]


def test_every_model_is_a_hub_entry_point() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("blockzoo_hubconf", ROOT / "hubconf.py")
    assert spec is not None
    assert spec.loader is not None
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    entries = {n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")}
    assert set(blockzoo.list_models()) <= entries
    assert hub.dependencies == ["torch", "safetensors"]


def test_hub_load_builds_the_model() -> None:
    model = torch.hub.load(str(ROOT), "resnet20", source="local", num_classes=7)
    assert model.model_name == "resnet20"
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
