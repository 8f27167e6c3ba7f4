"""The Lightning and Accelerate examples of the docs run, where those packages are installed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "howto" / "lightning_accelerate.rst"


def _code_block(caption: str) -> str:
    """The body of the page's ``code-block`` with this caption, dedented."""
    text = PAGE.read_text()
    match = re.search(rf"   :caption: {re.escape(caption)}\n\n((?:   .*\n|\n)+)", text)
    assert match, f"no code block captioned {caption} in {PAGE.name}"
    return "\n".join(line[3:] for line in match.group(1).splitlines()) + "\n"


def test_code_block_reader() -> None:
    code = _code_block("lightning_example.py")
    assert code.startswith("import lightning as L\n")
    assert "trainer.fit(" in code


@pytest.mark.slow  # importing Lightning alone takes seconds
@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's advice (workers, log intervals)
@pytest.mark.filterwarnings("ignore::FutureWarning")  # Lightning's use of torch.utils._pytree APIs torch deprecates
def test_lightning_example_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(_code_block("lightning_example.py"), "lightning_example.py", "exec"), namespace)
    trainer = namespace["trainer"]
    assert trainer.current_epoch == 1
    assert trainer.global_step == 23  # ceil(1438 / 64) steps


@pytest.mark.slow  # importing Accelerate alone takes seconds
def test_accelerate_example_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("accelerate")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(_code_block("accelerate_example.py"), "accelerate_example.py", "exec"), namespace)
    optimizer = namespace["optimizer"]
    assert all(state["step"] == 23 for state in optimizer.state.values())
