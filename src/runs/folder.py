"""The run folder (``hydra.run.dir``, or ``hydra.sweep.dir`` with -m), tried before Hydra
writes into it.

Hydra creates the folder and writes its config files and log there before the task
starts, so outside :func:`src.runs.cli.run_cli`: a read-only, full or misplaced folder would
end in Hydra's traceback. This callback (``conf/hydra/default.yaml``) tries first and ends
such a run in one sentence.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.runs.files import output_error

# about what Hydra writes before the task: three config files and the start of the log
PROBE_BYTES = 64 * 1024


class RunFolderCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_run_folder(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_run_folder(config.hydra.sweep.dir, "hydra.sweep.dir")


def check_run_folder(folder: str | Path, setting: str) -> None:
    """Create ``folder`` and write a little into it; exit with one sentence if it cannot."""
    folder = Path(folder)
    probe = folder / f".write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(bytes(PROBE_BYTES))
    except OSError as err:
        # SystemExit, because Hydra turns a callback's exceptions into warnings and goes on
        print(f"error: {output_error(folder, err, setting)}", file=sys.stderr)
        sys.exit(1)
    finally:
        with suppress(OSError):
            probe.unlink(missing_ok=True)
