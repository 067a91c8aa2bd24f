"""Report each validation epoch to the Optuna trial and stop the run when it is pruned.

Optuna's own Lightning callback imports ``lightning.pytorch``; this project uses the
``pytorch_lightning`` namespace throughout, so it has its own.
"""

from __future__ import annotations

import optuna
import pytorch_lightning as pl

from src.models.metrics import MONITOR


def load_trial(storage: str, study_name: str, number: int) -> optuna.trial.Trial:
    """The running trial ``number`` of a stored study, as the launching sweeper created it."""
    from src.sweeps.storage import make_storage

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == number:
            return optuna.trial.Trial(study, frozen._trial_id)
    raise LookupError(f"study {study_name} in {storage} has no trial {number}")


class OptunaPruning(pl.Callback):
    """After every validation epoch: ``trial.report(metric, epoch)``; stop if told to prune."""

    def __init__(self, trial: optuna.trial.Trial, monitor: str = MONITOR) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch + 1  # resource used so far, in epochs
        self.trial.report(float(trainer.callback_metrics[self.monitor]), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True
