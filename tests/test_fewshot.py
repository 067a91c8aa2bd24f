"""Few-shot: seeded shots per class from the training images, nearest centroid against a
NumPy reference, mean and std over the repeats."""

import numpy as np
import pytest

from src.evaluation import fewshot
from src.evaluation.fewshot import NearestCentroid, fewshot_repeats, mean_and_std, shot_indices

RNG = np.random.default_rng(3)
CLASSES = 4
TRAIN_LABELS = np.repeat(np.arange(CLASSES), [12, 9, 15, 3])  # class 3 has only 3 images
TRAIN = RNG.standard_normal((len(TRAIN_LABELS), 6)) + TRAIN_LABELS[:, None]
TEST_LABELS = np.repeat(np.arange(CLASSES), 5)
TEST = RNG.standard_normal((len(TEST_LABELS), 6)) + TEST_LABELS[:, None]


def reference_predictions(shots, shot_labels, queries, center):
    """BioCLIP's few_shot.py, written out: L2-normalise; with ``center`` subtract the shots'
    mean and normalise again (CL2N); class means; nearest by Euclidean distance."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    shots, queries = unit(shots), unit(queries)
    if center:
        mean = shots.mean(0)
        shots, queries = unit(shots - mean), unit(queries - mean)
    predictions = []
    for query in queries:
        distances = {
            c: np.linalg.norm(query - shots[shot_labels == c].mean(0)) for c in set(shot_labels)
        }
        predictions.append(min(distances, key=distances.get))
    return np.array(predictions)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("k", [1, 5])
def test_nearest_centroid_equals_a_numpy_reference(k, center):
    chosen = shot_indices(TRAIN_LABELS, k, seed=0, repeat=0)
    model = NearestCentroid(CLASSES, center).fit(TRAIN[chosen], TRAIN_LABELS[chosen])
    expected = reference_predictions(TRAIN[chosen], TRAIN_LABELS[chosen], TEST, center)
    np.testing.assert_array_equal(model.predict(TEST), expected)
    probabilities = model.predict_proba(TEST)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(probabilities.argmax(1), expected)


def test_a_class_without_shots_is_never_predicted():
    keep = TRAIN_LABELS != 2
    model = NearestCentroid(CLASSES).fit(TRAIN[keep], TRAIN_LABELS[keep])
    assert (model.predict(TEST) != 2).all()
    assert (model.predict_proba(TEST)[:, 2] == 0).all()


def test_shots_are_seeded_per_class_and_differ_between_repeats():
    first = shot_indices(TRAIN_LABELS, 5, seed=42, repeat=0)
    np.testing.assert_array_equal(first, shot_indices(TRAIN_LABELS, 5, seed=42, repeat=0))
    counts = np.bincount(TRAIN_LABELS[first], minlength=CLASSES)
    assert counts.tolist() == [5, 5, 5, 3]  # k per class; all of a class with fewer
    assert len(set(first)) == len(first)
    draws = [frozenset(shot_indices(TRAIN_LABELS, 5, seed=42, repeat=r)) for r in range(5)]
    assert len(set(draws)) == 5  # every repeat its own draw
    assert frozenset(shot_indices(TRAIN_LABELS, 5, seed=1, repeat=0)) != draws[0]
    one = shot_indices(TRAIN_LABELS, 1, seed=42, repeat=0)
    assert set(one) <= set(first)  # within a repeat, the 1 shot is among the 5


def test_shots_come_from_the_training_images_only(monkeypatch):
    fitted = []
    original = NearestCentroid.fit

    def recording_fit(self, embeddings, labels):
        fitted.append(embeddings)
        return original(self, embeddings, labels)

    monkeypatch.setattr(fewshot.NearestCentroid, "fit", recording_fit)
    rows, first = fewshot_repeats(
        (TRAIN, TRAIN_LABELS), {"test": (TEST, TEST_LABELS)}, CLASSES, [1, 2], 3, seed=0
    )
    assert len(fitted) == 6 and len(rows) == 6
    train_rows = {row.tobytes() for row in TRAIN}
    assert all(row.tobytes() in train_rows for shots in fitted for row in shots)
    assert sorted(first) == [1, 2] and first[1]["test"].shape == (len(TEST), CLASSES)
    assert [(row["shots"], row["repeat"]) for row in rows] == [
        (k, r) for k in (1, 2) for r in range(3)
    ]


def test_mean_and_std_over_repeats():
    rows = [{"shots": 1, "test/acc": 0.2}, {"shots": 1, "test/acc": 0.4}]
    summary = mean_and_std(rows)
    assert summary["test/acc"] == pytest.approx(0.3)
    assert summary["test/acc_std"] == pytest.approx(0.1)
    assert set(summary) == {"test/acc", "test/acc_std"}
