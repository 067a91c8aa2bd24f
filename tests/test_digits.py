"""scikit-learn's digits in the project's on-disk format: the data module reads them."""

from src.benchmarks.digits import ensure_digits
from tests.helpers import tiny_datamodule


def test_the_digits_are_a_data_set_in_the_projects_format(tmp_path):
    root = ensure_digits(tmp_path / "digits")
    datamodule = tiny_datamodule(root, tmp_path)
    datamodule.setup("fit")
    assert datamodule.class_names == [f"digit_{d}" for d in range(10)]
    assert sum(len(rows) for rows in datamodule.rows.values()) == 1797
    image, label = datamodule.datasets["train"][0]
    assert image.shape == (3, 32, 32) and 0 <= label < 10
    assert datamodule.taxonomy == {"phylum": ["even", "odd"] * 5}
    assert ensure_digits(root) == root  # written once
