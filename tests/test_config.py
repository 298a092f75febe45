"""The params mechanism: typed frozen dataclasses, unknown keys rejected with a suggestion."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import Literal

import pytest

from porescope.config import ParamsError, closest_key, load_params, parse_group, to_mapping


@dataclass(frozen=True)
class Spatial:
    alpha: float = field(default=0.05, metadata={"gt": 0, "lt": 1})
    n_sim: int = field(default=99, metadata={"ge": 0})


@dataclass(frozen=True)
class Group:
    epochs: int = field(default=6, metadata={"ge": 1})
    lr: float = 0.003
    amp: bool = True
    loss: Literal["bce", "dice"] = "bce"
    crop_bottom: int | Literal["auto"] = 0
    pixel_size_nm: float | None = None
    band: tuple[float, float] = (0.6, 1.4)
    names: tuple[str, ...] = ("background", "pore")
    spatial: Spatial = Spatial()

    def check(self, fail):
        if self.band[0] >= self.band[1]:
            raise fail("band", "expected low < high")


def test_defaults_and_conversion():
    assert parse_group(Group, None, group="g") == Group()
    p = parse_group(Group, {"epochs": 10.0, "lr": 1, "band": [0.5, 2], "crop_bottom": "auto",
                            "spatial": {"n_sim": 9}, "seed": 3}, group="g")
    assert p.epochs == 10 and isinstance(p.epochs, int)
    assert p.lr == 1.0 and isinstance(p.lr, float)
    assert p.band == (0.5, 2.0) and p.crop_bottom == "auto" and p.spatial == Spatial(n_sim=9)
    with pytest.raises(FrozenInstanceError):
        p.epochs = 3  # type: ignore[misc]
    assert to_mapping(p)["band"] == [0.5, 2.0] and to_mapping(p)["spatial"]["n_sim"] == 9


@pytest.mark.parametrize("raw, message", [
    ({"epoch": 50}, "g.epoch: unknown parameter; did you mean 'g.epochs'?"),
    ({"spatial": {"n_sims": 5}}, "g.spatial.n_sims: unknown parameter; did you mean 'g.spatial.n_sim'?"),
    ({"zzz": 1}, "g.zzz: unknown parameter (valid: epochs"),
    ({"epochs": 0}, "g.epochs: expected a value >= 1, got 0"),
    ({"epochs": 2.5}, "g.epochs: expected an integer, got 2.5"),
    ({"epochs": True}, "g.epochs: expected an integer, got True"),
    ({"lr": "fast"}, "g.lr: expected a finite number, got 'fast'"),
    ({"lr": float("nan")}, "g.lr: expected a finite number"),
    ({"amp": 1}, "g.amp: expected true/false, got 1"),
    ({"loss": "focal"}, "g.loss: expected 'bce' | 'dice', got 'focal'"),
    ({"crop_bottom": "lots"}, "g.crop_bottom: expected an integer or 'auto', got 'lots'"),
    ({"pixel_size_nm": "25"}, "g.pixel_size_nm: expected a finite number or null, got '25'"),
    ({"band": [1.0]}, "g.band: expected a list of 2"),
    ({"band": [2.0, 1.0]}, "g.band: expected low < high"),
    ({"names": "pore"}, "g.names: expected a list of a string"),
    ({"spatial": {"alpha": 1.5}}, "g.spatial.alpha: expected a value < 1, got 1.5"),
    ({"spatial": 3}, "g.spatial: expected a mapping, got 3"),
])
def test_errors_name_the_key(raw, message):
    with pytest.raises(ParamsError) as err:
        parse_group(Group, raw, group="g", source="my.yaml")
    assert str(err.value).startswith("my.yaml: ") and message in str(err.value)


def test_closest_key():
    assert closest_key("epoch", ["epochs", "lr"]) == "epochs"
    assert closest_key("qqq", ["epochs", "lr"]) is None


def test_load_params_adds_the_shared_seed(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 7\ntrain: {epochs: 3}\n")
    assert load_params(path, "train") == {"epochs": 3, "seed": 7}
    path.write_text("seed: 7\ntrain: {epochs: 3, seed: 1}\n")
    with pytest.raises(ParamsError, match="train.seed"):
        load_params(path, "train")
    with pytest.raises(ParamsError, match="missing parameter group 'measure'"):
        load_params(path, "measure")
