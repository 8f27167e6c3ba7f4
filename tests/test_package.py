import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import blockzoo

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light() -> None:
    # Only what blockzoo adds counts: torch itself imports tqdm when it is installed.
    code = (
        "import sys, torch; before = set(sys.modules); import blockzoo;"
        "added = {m.split('.')[0] for m in set(sys.modules) - before};"
        "heavy = {'torchvision', 'matplotlib', 'sklearn', 'hypothesis', 'tqdm', 'pytest', 'numpy', 'safetensors'};"
        "print(sorted(added & heavy), 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "False"]


LAZY_SUBPACKAGES = ["data", "inspect", "models", "optim", "regularization", "train"]


def test_subpackages_most_programs_do_not_need_load_on_first_use() -> None:
    code = f"""
import sys
import blockzoo
lazy = {LAZY_SUBPACKAGES!r}
print(sorted(m for m in lazy if "blockzoo." + m in sys.modules))
from blockzoo import create_optimizer, summary
import blockzoo.models
print(create_optimizer.__module__, summary.__module__)
print(sorted(m for m in ("data", "train") if "blockzoo." + m in sys.modules))
print(blockzoo.create_optimizer is create_optimizer, blockzoo.train.fit is blockzoo.train.fit)
missing = [n for n in blockzoo.__all__ if getattr(blockzoo, n, None) is None]
print(missing, sorted(set(blockzoo.__all__) - set(dir(blockzoo))), set(lazy) <= set(dir(blockzoo)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    # Nothing lazy is loaded by the import itself; a from-import loads what it needs, not the rest.
    assert lines[0] == "[]"
    assert lines[1] == "blockzoo.optim._factory blockzoo.inspect._summary"
    assert lines[2] == "[]"
    assert lines[3] == "True True"
    assert lines[4] == "[] [] True"


def test_unknown_top_level_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'blockzoo' has no attribute 'create_modle'"):
        _ = blockzoo.create_modle  # type: ignore[attr-defined]
    assert not hasattr(blockzoo, "testing_not_a_module")


def test_public_names_are_exported_and_documented() -> None:
    for name in blockzoo.__all__:
        obj = getattr(blockzoo, name)
        if name != "__version__":
            assert obj.__doc__, name
            assert "Example" in obj.__doc__ or "  >>> " in obj.__doc__, f"{name} has no example"


def test_version_is_single_sourced() -> None:
    from importlib.metadata import version

    assert version("blockzoo") == blockzoo.__version__
    assert (ROOT / "src" / "blockzoo" / "py.typed").exists()


def test_the_course_cnn_takes_five_lines() -> None:
    model = nn.Sequential(
        blockzoo.ConvBlock(3, 32),
        blockzoo.ConvBlock(32, 64),
        blockzoo.ClassifierHead(64 * 8 * 8, 10, pool_layer=None, log_probs=True),
    )
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = nn.NLLLoss()(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    kinds = [type(m).__name__ for m in model.modules() if not list(m.children())]
    assert kinds[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)  # it writes runs/digits and curves.png
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    history = namespace["history"]
    assert len(history) == 10  # type: ignore[arg-type]
    assert history.best()["val_accuracy"] >= 0.97  # type: ignore[attr-defined]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in (tmp_path / "runs" / "digits").iterdir()} >= {"best.safetensors", "history.json"}
    assert [n for n, _ in namespace["no_decay"]][:2] == ["0.convs.0.norm.weight", "0.convs.0.norm.bias"]  # type: ignore[attr-defined]


def test_readme_first_command_line_has_the_form_make_a_venv_install_and_train() -> None:
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"<!-- first-command.*?-->\n```bash\n(.*?)\n```", readme, re.S)
    assert line is not None
    assert line.group(1).startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    assert line.group(1).endswith("blockzoo train simple_cnn")
