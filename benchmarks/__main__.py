"""``python -m benchmarks [--quick] [--only PATTERN] [--callgrind] [--check [REPORT]]``."""

import sys

from benchmarks._suite import main

sys.exit(main())
