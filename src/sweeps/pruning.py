"""Report each validation epoch to the Optuna trial and stop the run when it is pruned.

Optuna's own Lightning callback imports ``lightning.pytorch``; this project uses the
``pytorch_lightning`` namespace throughout, so it has its own. Besides the study's pruner,
it stops a hopeless trial on its own: Hyperband's asynchronous rungs need other trials to
compare with, and in a small study (the usual case: tens of trials) they have too few, so a
diverged trial would otherwise run to the end.
"""

from __future__ import annotations

import math

import optuna
import pytorch_lightning as pl

from src.models.metrics import MONITOR

# metrics on which a model that learnt nothing (a uniform random guess over K classes) scores
# 1/K; the loss of a uniform prediction is ln K
PER_CLASS_SCORES = ("acc", "f1_macro", "precision_macro", "recall_macro")
# a hopeless trial's validation loss is at least this many times a uniform guess's (ln K):
# diverged learning rates reach 1e6 and more; a high but sane one can reach 2.7x after its
# first epoch (a new user's study: lr 0.0098 on the tiny set, val/loss 4.87 against ln 6)
HOPELESS_LOSS_FACTOR = 10


def chance_level(monitor: str, num_classes: int) -> float | None:
    """What a uniform random guess scores on ``monitor``; None when not known."""
    name = monitor.rsplit("/", 1)[-1]
    if num_classes < 2:
        return None
    if name in PER_CLASS_SCORES:
        return 1.0 / num_classes
    if name == "top5_acc":
        return min(5, num_classes) / num_classes
    if name == "auroc":
        return 0.5
    if name == "loss":
        return math.log(num_classes)
    return None


def load_trial(storage: str, study_name: str, number: int) -> optuna.trial.Trial:
    """The running trial ``number`` of a stored study, as the launching sweeper created it."""
    from src.sweeps.storage import make_storage

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == number:
            return optuna.trial.Trial(study, frozen._trial_id)
    raise LookupError(f"study {study_name} in {storage} has no trial {number}")


class OptunaPruning(pl.Callback):
    """After every validation epoch: stop a hopeless trial, else ``trial.report(metric,
    epoch)`` and stop if the pruner says so.

    Hopeless, from epoch ``hopeless_after`` on (None: never judged): the monitored metric or
    the training loss is not finite (diverged), or the metric is no better than chance
    (:func:`chance_level`, in the direction ``mode``) with a validation loss far above a
    uniform guess's (:meth:`hopeless`).
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        monitor: str = MONITOR,
        mode: str = "max",
        hopeless_after: int | None = 1,
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.mode = mode
        self.hopeless_after = hopeless_after
        self.pruned_at: int | None = None
        self.reason = ""

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch + 1  # resource used so far, in epochs
        value = float(trainer.callback_metrics[self.monitor])
        if math.isfinite(value):
            self.trial.report(value, step=epoch)
        hopeless = self.hopeless(trainer, value, len(getattr(pl_module, "class_names", [])))
        if hopeless and self.hopeless_after is not None and epoch >= self.hopeless_after:
            self._stop(trainer, epoch, f"{hopeless} after epoch {epoch}")
        elif math.isfinite(value) and self.trial.should_prune():
            self._stop(trainer, epoch, f"pruned by Hyperband after epoch {epoch}")

    def hopeless(self, trainer: pl.Trainer, value: float, num_classes: int) -> str:
        """Why the trial cannot be worth finishing, or "".

        A slow starter often scores below chance after one epoch (it predicts few classes)
        while its loss is already below a uniform guess's; a diverged one is also far off
        in loss. So "no better than chance" needs both: the metric at or below chance and
        ``val/loss`` at least :data:`HOPELESS_LOSS_FACTOR` times a uniform guess's (ln K).
        """
        metrics = trainer.callback_metrics
        loss = metrics.get("train/loss_epoch")
        if not math.isfinite(value) or (loss is not None and not math.isfinite(float(loss))):
            return "diverged (a non-finite loss or metric)"
        chance = chance_level(self.monitor, num_classes)
        uniform = chance_level("val/loss", num_classes)  # None too when fewer than 2 classes
        val_loss = metrics.get("val/loss")
        if chance is None or uniform is None or val_loss is None:
            return ""
        far = float(val_loss) >= HOPELESS_LOSS_FACTOR * uniform
        no_better = value <= chance if self.mode == "max" else value >= chance
        if far and no_better:
            return (
                f"no better than chance ({self.monitor} {value:.4g}, chance {chance:.4g}; "
                f"val/loss {float(val_loss):.4g}, over {HOPELESS_LOSS_FACTOR}x a uniform "
                "guess's)"
            )
        return ""

    def _stop(self, trainer: pl.Trainer, epoch: int, reason: str) -> None:
        self.pruned_at, self.reason = epoch, reason
        trainer.should_stop = True
