"""The committed manifest of every registered model's state_dict keys and shapes.

State-dict keys are public API. ``python tests/models/manifest_module.py`` rewrites
``state_dict_manifest.json``; do it only together with a ``Changed`` entry in
CHANGELOG.md that names the model (and a deprecation path for old checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import blockzoo

PATH = Path(__file__).with_name("state_dict_manifest.json")


def current() -> dict[str, dict[str, list[int]]]:
    manifest = {}
    for name in blockzoo.list_models():
        model = blockzoo.create_model(name, device="meta")
        manifest[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    return manifest


if __name__ == "__main__":
    with torch.no_grad():
        PATH.write_text(json.dumps(current(), indent=1, sort_keys=False) + "\n")
    print(f"wrote {PATH}")
