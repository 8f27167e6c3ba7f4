"""``blockzoo train`` in each process that torchrun starts, logging every file the process puts in place.

fit writes each file to a temporary name and renames it (``os.replace``), so the renames are the writes;
each process appends the names it wrote to ``LOG_DIR/rank<RANK>.txt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from blockzoo.cli import main

if __name__ == "__main__":
    torch.set_num_threads(1)
    log = Path(os.environ["LOG_DIR"]) / f"rank{os.environ['RANK']}.txt"
    log.write_text("")
    replace = os.replace

    def logged(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        with log.open("a") as f:
            f.write(Path(dst).name + "\n")
        replace(src, dst)

    os.replace = logged  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
