"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

CUDA = torch.cuda.is_available()

#: Parametrise a test over devices; the CUDA case is marked ``cuda`` and skips cleanly without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]),
]


def representatives() -> list[str]:
    """One model per registry family, the zoo's generic checks run on: the family's case in golden_outputs.py.

    Those cases are the smallest member of each family, and test_golden.py checks that every family has
    one. The expensive checks that hold for any model (compile, export, gradients, a safetensors round
    trip, a real forward) run once per family; parameter counts, the state-dict manifest and the outputs
    against torchvision run on every member that is quick enough (see each test module).
    """
    golden = sys.modules.get("golden_outputs")
    if golden is None:
        path = Path(__file__).parent / "models" / "golden_outputs.py"
        spec = importlib.util.spec_from_file_location("golden_outputs", path)
        assert spec is not None
        assert spec.loader is not None
        golden = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = golden  # dataclasses look their module up while the class is built
        spec.loader.exec_module(golden)
    return sorted({case.model for case in golden.CASES.values()})
