"""Collect every run of a sweep into one table: ``python -m src.report SWEEP_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.errors import UserFacingError
from src.models.metrics import MONITOR
from src.sweeps.summary import SUMMARY_CSV, SUMMARY_MD, summarize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.report",
        description="Write summary.csv and summary.md for a multirun or Optuna sweep folder.",
    )
    parser.add_argument("sweep_dir", type=Path, help="e.g. outputs/train/multirun/<date>_<time>")
    parser.add_argument("--monitor", default=MONITOR, help="metric the runs optimised")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.exit(1, f"error: {args.sweep_dir} is not a folder.\n")
    try:
        frame = summarize(args.sweep_dir, args.monitor)
    except UserFacingError as err:  # e.g. a read-only or full sweep folder
        parser.exit(1, f"error: {err}\n")
    print((args.sweep_dir / SUMMARY_MD).read_text(), end="")
    print(f"\n{len(frame)} runs; wrote {args.sweep_dir / SUMMARY_CSV} and {SUMMARY_MD}")


if __name__ == "__main__":
    main()
