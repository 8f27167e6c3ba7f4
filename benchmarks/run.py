"""Run every blockzoo benchmark in one go and print the ratios.

Usage: ``python benchmarks/run.py [--quick]``. Nothing here is a test: machines
are noisy, so read medians and ratios, never one absolute time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_blocks
import bench_deploy
import bench_fit
import bench_import
import bench_init
import bench_models
import bench_optim
import bench_regularization


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, small shape only")
    args = parser.parse_args()
    bench_import.main(runs=5 if args.quick else 10)
    bench_blocks.run(
        rounds=5 if args.quick else 9,
        min_run_time=0.1 if args.quick else 0.2,
        shapes=["small"] if args.quick else ["small", "realistic"],
    )
    bench_optim.run(rounds=3 if args.quick else 5, min_run_time=0.3 if args.quick else 0.5)
    bench_init.run(rounds=3 if args.quick else 5, min_run_time=0.5 if args.quick else 1.0)
    bench_regularization.run(batch=8, side=112, steps=10 if args.quick else 30)
    bench_models.run(batch=8, side=96 if args.quick else 160, calls=8 if args.quick else 20)
    bench_fit.run(rounds=3 if args.quick else 7, samples=640 if args.quick else None)
    bench_deploy.run(
        batch=8, side=96 if args.quick else 224, rounds=3 if args.quick else 7, min_run_time=0.2 if args.quick else 0.5
    )


if __name__ == "__main__":
    main()
