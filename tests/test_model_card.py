"""The model card of an exported folder (src/evaluation/model_card.py)."""

import json

from src.evaluation.model_card import SYNTHETIC_LICENCE, model_card
from src.models.classifier import load_classifier


def test_the_card_says_what_how_how_well_and_under_which_licence(tiny_run):
    model = load_classifier(tiny_run / "checkpoints" / "best.ckpt")
    card = model_card(
        dict(model.hparams),
        model.datamodule_state,
        model.calibration.to_dict(),
        model.run_config,
        tiny_run,
    )
    metrics = json.loads((tiny_run / "test_metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: rare-species\npipeline_tag: image-classification")
    assert f"| top-1 accuracy | {metrics['test/acc']:.4f} |" in card
    assert f"| macro F1 | {metrics['test/f1_macro']:.4f} |" in card
    assert "test images (CPU" in card
    assert f"temperature {model.calibration.temperature:.3f}" in card
    assert "6 family classes" in card and "## Intended use and limits" in card
    # first thing after the title: a demonstration, not a model of real animals
    assert card.index(SYNTHETIC_LICENCE) < card.index("## Training") and "datasets:" not in card
    assert f"commit `{json.loads((tiny_run / 'run_info.json').read_text())['git_commit']}`" in card
    assert "guessing would score a top-1 accuracy of 0.1667" in card
    assert "share of test images answered `unknown`" in card
    uncalibrated = model_card(dict(model.hparams), model.datamodule_state, None, {}, None)
    assert "Not calibrated" in uncalibrated and "No test metrics" in uncalibrated
