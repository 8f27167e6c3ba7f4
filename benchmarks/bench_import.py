"""``import blockzoo`` against ``import torch``, as whole processes, alternating."""

from __future__ import annotations

import argparse
import statistics

from _timing import process_seconds


def main(runs: int = 10) -> float:
    torch_times, blockzoo_times = [], []
    process_seconds("import torch")  # warm the file cache
    for _ in range(runs):
        torch_times.append(process_seconds("import torch"))
        blockzoo_times.append(process_seconds("import blockzoo"))
    ratios = [b / t for b, t in zip(blockzoo_times, torch_times, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"import: torch {statistics.median(torch_times):.3f} s, blockzoo {statistics.median(blockzoo_times):.3f} s, "
        f"median ratio {ratio:.3f}x over {runs} alternating runs (target <= 1.05x)"
    )
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    main(parser.parse_args().runs)
