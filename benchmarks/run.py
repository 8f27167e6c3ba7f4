"""The old entry point: ``python benchmarks/run.py [ARGS]`` runs ``python -m benchmarks [ARGS]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._suite import main

if __name__ == "__main__":
    sys.exit(main())
