"""The search space syntax of ``hparams_search.params``."""

import pytest

from src.errors import ConfigError
from src.sweeps.space import search_space


def test_search_space_syntax():
    space = search_space(
        {
            "model": {
                "optimizer": {"lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
                "net": {"freeze": {"type": "categorical", "choices": ["all"]}, "head": None},
            },
            "model.net.unfreeze_last": {"type": "int", "low": 0, "high": 40, "step": 2},
        }
    )
    assert set(space) == {"model.optimizer.lr", "model.net.freeze", "model.net.unfreeze_last"}
    assert space["model.optimizer.lr"].log and space["model.net.unfreeze_last"].step == 2
    with pytest.raises(ConfigError, match="type must be"):
        search_space({"x": {"type": "uniform"}})
    with pytest.raises(ConfigError, match="empty"):
        search_space({})
