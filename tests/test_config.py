"""Config schema: defaults, YAML + dotted overrides, unknown keys rejected with a suggestion, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kdmark.config import ConfigError, PruneConfig, TrainConfig, dump_config, from_dict, load_config, to_dict

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


def test_defaults_and_overrides(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("epochs: 5\nmodel:\n  head: regression\n  hidden: [64, 32]\n")
    cfg = load_config(TrainConfig, f, ["optim.lr=0.01", "data.root=/x", "ema=0.99", "model.hidden=[8]"])
    assert cfg.epochs == 5 and cfg.model.head == "regression" and cfg.model.hidden == (8,)
    assert cfg.optim.lr == 0.01 and cfg.data.root == "/x" and cfg.ema == 0.99 and cfg.batch_size == 32


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["epoch=3"], "unknown key 'epoch'; did you mean 'epochs'?"),
        (["optim.lrr=1"], "unknown key 'optim.lrr'; did you mean 'lr'?"),
        (["model.head=heatmpa"], "'heatmpa' is not one of"),
        (["epochs=many"], "epochs: expected an integer"),
        (["augment.enabled=3"], "expected true or false"),
        (["epochs"], "must look like key=value"),
    ],
)
def test_bad_keys_and_values(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        load_config(TrainConfig, None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(TrainConfig, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(TrainConfig, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TrainConfig, tmp_path / "list.yaml")


def test_dump_load_round_trip():
    cfg = load_config(TrainConfig, None, ["model.hidden=[16, 8]", "optim.milestones=[20, 40]"])
    again = from_dict(TrainConfig, yaml.safe_load(dump_config(cfg)))
    assert again == cfg and to_dict(again)["model"]["hidden"] == [16, 8]
    assert from_dict(PruneConfig, {"checkpoint": "a.ckpt"}).ratio == 0.5


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_every_shipped_recipe_loads(recipe):
    assert load_config(TrainConfig, recipe).epochs > 0
