"""``blockzoo train`` in each process that torchrun starts, logging every file the process puts in place.

fit writes each file to a temporary name and renames it (``os.replace``), so the renames are the writes;
each process appends the names it wrote to ``LOG_DIR/rank<RANK>.txt``, and writes when it began and ended
loading the data to ``LOG_DIR/loads<RANK>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

import blockzoo._cli.commands as commands
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
    load_bundle = commands.load_bundle

    def timed(*args: object, **kwargs: object) -> object:
        start = time.time()
        bundle = load_bundle(*args, **kwargs)  # type: ignore[arg-type]
        (log.parent / f"loads{os.environ['RANK']}.json").write_text(json.dumps({"start": start, "end": time.time()}))
        return bundle

    commands.load_bundle = timed  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
