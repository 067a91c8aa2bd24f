"""``python -m src.evaluate``: a training run's checkpoint re-tested gives its metrics again;
an unusable checkpoint is one sentence."""

import json

from tests.helpers import one_error_line, run_module, same_test_metrics, unusable_checkpoint


def test_evaluate_reproduces_the_training_metrics(tiny_run, tmp_path):
    result = run_module(
        tmp_path,
        "src.evaluate",
        f"ckpt_path={tiny_run / 'checkpoints' / 'best.ckpt'}",
        f"hydra.run.dir={tmp_path / 'ev'}",
        "trainer.limit_test_batches=2",
        "trainer.enable_progress_bar=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    same_test_metrics(tiny_run, tmp_path / "ev", tolerance=1e-6)
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()
    # with the checkpoint's calibration: the out-of-scope AUROC against synthetic_truth.csv
    metrics = json.loads((tmp_path / "ev" / "test_metrics.json").read_text())
    assert (
        0 <= metrics["test/scope_auroc"] <= 1
        and "has no calibration" not in result.stdout + result.stderr
    )


def test_evaluating_an_unusable_checkpoint_is_one_sentence(tiny_run, tmp_path):
    whole = tiny_run / "checkpoints" / "best.ckpt"
    path = unusable_checkpoint(tmp_path / "best.ckpt", "truncated", whole)
    result = run_module(
        tmp_path, "src.evaluate", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'ev'}"
    )
    assert "is not a readable checkpoint" in one_error_line(result)
