"""The baselines on a data module's rows, each ending in a result folder like a trained run's.

- ``zeroshot``: text prompts per class (:mod:`src.models.prompts`) against the test images;
- ``fewshot``: k training images per class, nearest centroid (:mod:`src.evaluation.fewshot`),
  one result folder ``<k>shot/`` per k with the mean over the repeats (and ``<key>_std``);
- ``linear_probe``: logistic regression on every training image, C chosen on val
  (:mod:`src.evaluation.probe`).

Every method uses the rows the data module selected (split, "only animals" filter, unusable
images left out), the same metrics (:meth:`Baseline.score`: those of
:func:`~src.models.metrics.score_probabilities` and :mod:`src.evaluation.taxonomy`) and the
same writers as a trained run; a result folder also holds ``baseline.json`` (what was run),
which :mod:`src.evaluation.results` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from src.data.taxonomy import class_taxa
from src.errors import ConfigError
from src.evaluation.answers import trust_metrics
from src.evaluation.calibration import Calibration, Calibrator
from src.evaluation.embeddings import ImageEmbeddings, random_init
from src.evaluation.fewshot import fewshot_repeats, l2_normalize, mean_and_std
from src.evaluation.probe import LinearProbe
from src.evaluation.results import BASELINE_FILE
from src.evaluation.taxonomy import taxonomy_metrics
from src.evaluation.writers import write_test_results
from src.models.clip import ClipSpec, image_data_config, spec_from_net
from src.models.metrics import score_probabilities
from src.models.prompts import class_prompt_names, class_prompts, text_classifier
from src.runs.files import write_csv, write_json

log = logging.getLogger(__name__)
METHODS: tuple[str, ...] = ("zeroshot", "fewshot", "linear_probe")
CLIP_NET = "src.models.clip_net.ClipNet"  # conf/model/openclip.yaml (clip, bioclip build on it)
PROMPTS_FILE = "zeroshot_prompts.csv"
REPEATS_FILE = "fewshot_repeats.csv"
PROBE_GRID_FILE = "probe_grid.csv"


def clip_spec(net: Mapping[str, Any], method: str, choice: str | None = None) -> ClipSpec:
    """The open_clip model of ``model.net``, or one sentence saying why there is none."""
    if net.get("_target_") == CLIP_NET and net.get("name"):
        return spec_from_net(net)
    if net.get("_target_") == CLIP_NET:
        raise ConfigError(
            f"{method} needs the open_clip model's name: set model.net.name=ARCH (an open_clip "
            "architecture such as ViT-B-16, or a hf-hub: id such as hf-hub:imageomics/bioclip)."
        )
    given = f"model={choice}" if choice else f"the model {net.get('_target_')}"
    if method == "zeroshot":
        raise ConfigError(
            f"zeroshot needs an open_clip model with a text tower and {given} is not one: "
            "use model=bioclip, model=clip or model=openclip model.net.name=ARCH."
        )
    raise ConfigError(
        f"{method} embeds images with an open_clip image tower, so it takes only a model with "
        f"a CLIP spec (model=bioclip, model=clip or model=openclip), and {given} is not one."
    )


@dataclass
class Baseline:
    """A set-up data module, a loaded open_clip model, its cached image embeddings, and the
    folder the results go to."""

    datamodule: Any
    model: Any
    tokenizer: Any
    embeddings: ImageEmbeddings
    spec: ClipSpec
    output_dir: Path
    device: str = "cpu"
    calibrator: Calibrator | None = None
    calibration: Calibration | None = None
    _labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.datamodule.num_classes

    def labels(self, name: str) -> np.ndarray:
        if name not in self._labels:
            rows = self.datamodule.rows[name]
            self._labels[name] = np.asarray(self.datamodule.labels_of(rows), dtype=np.int64)
        return self._labels[name]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, labels) of a named row set (``train``, ``val``, ``test``, ...)."""
        files = self.datamodule.rows[name]["file_path"].tolist()
        return self.embeddings(files, f"{name} images"), self.labels(name)

    def score(self, probabilities: np.ndarray, labels: np.ndarray, name: str) -> dict[str, float]:
        """What a trained run's test writes for the test set ``name``: the target-level
        metrics and the taxonomy-aware ones, keys ``<name>/<metric>``."""
        dm = self.datamodule
        scores = score_probabilities(probabilities, labels, self.num_classes, name)
        scores.update(
            taxonomy_metrics(probabilities, labels, dm.class_names, dm.index, dm.target, name)
        )
        if self.calibration is not None:
            scores.update(
                trust_metrics(
                    log_probabilities(probabilities),
                    labels,
                    self.calibration,
                    dm.class_names,
                    dm.taxonomy,
                    dm.target,
                    name,
                )
            )
        return scores

    def calibrate(self, val_probabilities: np.ndarray) -> None:
        """Fit the calibrator (when there is one) on the method's probabilities of the val
        images, as a trained run does, so :meth:`score` adds the same calibration, set and
        answer metrics."""
        if self.calibrator is not None:
            logits = log_probabilities(val_probabilities)
            self.calibration = self.calibrator.fit(logits, self.labels("val"))

    def test_sets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: self.split(name) for name in self.datamodule.test_sets}

    def describe(self, method: str, **extra: Any) -> dict[str, Any]:
        """``baseline.json``: what was run, on which model and classes."""
        dm = self.datamodule
        return {
            "method": method,
            "model": self.spec.model,
            "pretrained": self.spec.pretrained,
            "weights": Path(self.spec.weights).name if self.spec.weights else None,
            "random_init": random_init(self.spec),
            "image_size": image_data_config(self.model)["image_size"],  # its own preprocessing
            "target": dm.target,
            "classes": self.num_classes,
            "images": {name: len(rows) for name, rows in dm.rows.items()},
            **extra,
        }

    def write(
        self,
        folder: Path,
        info: Mapping[str, Any],
        metrics: Mapping[str, float],
        test_probabilities: np.ndarray,
    ) -> None:
        """``test_metrics.json``, the per-class table and figures of ``test``, ``baseline.json``."""
        dm = self.datamodule
        write_test_results(
            folder,
            metrics,
            test_probabilities,
            self.labels("test"),
            dm.datasets["test"],
            dm.class_names,
            class_taxa(dm.class_names, dm.taxonomy),
        )
        write_json(folder / BASELINE_FILE, dict(info))
        log.info(
            "%s: test/acc %.4f, test/f1_macro %.4f; results in %s",
            info["method"],
            metrics.get("test/acc", float("nan")),
            metrics.get("test/f1_macro", float("nan")),
            folder,
        )


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Logits that give ``probabilities`` back under softmax (what the calibration takes)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-300, None))


def zeroshot(
    baseline: Baseline, templates: Sequence[str], names: Sequence[str], batch_size: int = 256
) -> dict[str, float]:
    """Each test image to the class whose prompt ensemble it is most similar to."""
    dm = baseline.datamodule
    index = dm.index
    per_class = class_prompt_names(index, dm.labels_of(index), dm.class_names, dm.target, names)
    prompts = class_prompts(per_class, templates)
    write_csv(
        pd.DataFrame({"class": dm.class_names, "prompts": [" | ".join(p) for p in prompts]}),
        baseline.output_dir / PROMPTS_FILE,
    )
    model = baseline.model
    text = text_classifier(model, baseline.tokenizer, prompts, baseline.device, batch_size)
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0

    def classify(x: np.ndarray) -> np.ndarray:
        logits = scale * torch.from_numpy(l2_normalize(x)).float() @ text.T
        return logits.softmax(dim=1).numpy()

    baseline.calibrate(classify(baseline.split("val")[0]))
    metrics: dict[str, float] = {}
    test_probabilities = None
    for name, (x, y) in baseline.test_sets().items():
        probabilities = classify(x)
        metrics.update(baseline.score(probabilities, y, name))
        if name == "test":
            test_probabilities = probabilities
    info = baseline.describe(
        "zeroshot", templates=list(templates), names=list(names), prompts_per_class=len(prompts[0])
    )
    baseline.write(baseline.output_dir, info, metrics, test_probabilities)
    return metrics


def fewshot(
    baseline: Baseline, shots: Sequence[int], repeats: int, seed: int, center: bool = True
) -> dict[int, dict[str, float]]:
    """BioCLIP's protocol on the training split; one result folder ``<k>shot/`` per k."""
    shots = _check_shots(shots, repeats)
    rows, first = fewshot_repeats(
        baseline.split("train"),
        baseline.test_sets(),
        baseline.num_classes,
        shots,
        repeats,
        seed,
        center,
        baseline.score,
    )
    write_csv(pd.DataFrame(rows), baseline.output_dir / REPEATS_FILE)
    results: dict[int, dict[str, float]] = {}
    for k in shots:
        summary = mean_and_std([row for row in rows if row["shots"] == k])
        info = baseline.describe(
            "fewshot", shots=k, repeats=repeats, seed=seed, center=center, report_of_repeat=0
        )
        baseline.write(baseline.output_dir / f"{k}shot", info, summary, first[k]["test"])
        log.info(
            "%d-shot: test/acc %.4f ± %.4f over %d repeats",
            k,
            summary["test/acc"],
            summary["test/acc_std"],
            repeats,
        )
        results[k] = summary
    return results


def linear_probe(
    baseline: Baseline,
    grid: Sequence[float],
    monitor: str = "val/f1_macro",
    max_iter: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Logistic regression on all training embeddings, C chosen on val, then tested."""
    probe = LinearProbe(baseline.num_classes, list(grid), monitor, max_iter, seed)
    probe.fit(baseline.split("train"), baseline.split("val"))
    write_csv(pd.DataFrame(probe.results_), baseline.output_dir / PROBE_GRID_FILE)
    baseline.calibrate(probe.predict_proba(baseline.split("val")[0]))
    metrics: dict[str, float] = {}
    test_probabilities = None
    for name, (x, y) in baseline.test_sets().items():
        probabilities = probe.predict_proba(x)
        metrics.update(baseline.score(probabilities, y, name))
        if name == "test":
            test_probabilities = probabilities
    info = baseline.describe("linear_probe", C=probe.C_, grid=probe.grid, monitor=monitor)
    baseline.write(baseline.output_dir, info, metrics, test_probabilities)
    return metrics


def _check_shots(shots: Sequence[int] | int, repeats: int) -> list[int]:
    values = [shots] if isinstance(shots, int) else list(shots)
    if not values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in values):
        raise ConfigError(f"shots={values} is not allowed: use whole numbers >= 1, e.g. [1,5].")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats={repeats!r} is not allowed: use a whole number >= 1.")
    return sorted(set(values))
