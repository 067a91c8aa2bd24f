"""Results tables: ``python -m src.report FOLDER [FOLDER ...] [--out DIR] [--published]``.

A FOLDER is a sweep (multirun or Optuna study: its ``summary.csv`` and ``summary.md`` are
rebuilt, one row per run) or a run folder of ``src.train``, ``src.evaluate`` or
``src.baselines`` (one row; a few-shot run one row per k). Every row says what was measured
(method, model, target rank, data) and where, beside the test metrics, so baselines and
trained runs sit in one table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from src.errors import UserFacingError
from src.evaluation.original import original_table, with_original
from src.evaluation.published import SOURCE, published_table
from src.evaluation.results import PUBLISHED_COLUMN, folder_rows, results_table, sweep_rows
from src.models.metrics import MONITOR
from src.runs.files import write_csv, write_text
from src.sweeps.summary import SUMMARY_CSV, SUMMARY_MD, run_dirs, summarize, to_markdown

RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.report",
        description="One table of trained runs, sweeps and baselines (zero-shot, few-shot, "
        "linear probe); rewrites summary.csv and summary.md of every sweep folder given.",
    )
    parser.add_argument(
        "folders",
        type=Path,
        nargs="*",
        help="sweep folders (outputs/train/multirun/<date>_<time>) or run folders "
        "(outputs/train/runs/..., outputs/baselines/<method>/runs/...)",
    )
    parser.add_argument(
        "--monitor",
        default=None,
        help=f"metric the sweeps' runs optimised, for runs that did not record it ({MONITOR})",
    )
    parser.add_argument("--out", type=Path, help="also write results.csv and results.md here")
    parser.add_argument(
        "--published", action="store_true", help="also print BioCLIP's published numbers"
    )
    parser.add_argument(
        "--original",
        action="store_true",
        help="put the original project's numbers beside the runs of experiment=original/<row> "
        "(theirs, ours minus theirs) and print its table",
    )
    args = parser.parse_args(argv)
    if not args.folders and not args.published and not args.original:
        parser.exit(
            1, "error: give at least one run or sweep folder (or --published, --original).\n"
        )
    for folder in args.folders:
        if not folder.is_dir():
            parser.exit(1, f"error: {folder} is not a folder.\n")
    rows, wrote = [], []
    try:
        for folder in args.folders:
            if run_dirs(folder):  # a sweep: its runs are subfolders (.hydra or a run status)
                rows += sweep_rows(folder, summarize(folder, args.monitor))
                wrote.append(f"{folder / SUMMARY_CSV} and {SUMMARY_MD}")
            else:
                rows += folder_rows(folder)
        table = results_table(rows)
        if args.original:
            table = results_table(with_original(table).to_dict("records"))
        if args.out:
            write_csv(table, args.out / RESULTS_CSV)
            write_text(args.out / RESULTS_MD, to_markdown(table))
            wrote.append(f"{args.out / RESULTS_CSV} and {RESULTS_MD}")
    except UserFacingError as err:  # e.g. a read-only or full folder
        parser.exit(1, f"error: {err}\n")
    if args.folders:
        print(to_markdown(table), end="")
        if PUBLISHED_COLUMN in table:
            print(f"\n{PUBLISHED_COLUMN}: {SOURCE}; shown for species-level runs only.")
    if args.published:
        print("\n" + published_table(), end="")
    if args.original:
        print("\n" + original_table(), end="")
    if args.folders:
        print(f"\n{len(table)} runs" + (f"; wrote {', '.join(wrote)}" if wrote else ""))


if __name__ == "__main__":
    main()
