"""Every params group: one frozen dataclass, defaults equal to params.yaml, typos named.

Adding a group to params.yaml without a class here fails, so no group escapes the mechanism.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from porescope.analysis.params import AnalyzeParams
from porescope.analysis.validation import ValidateParams
from porescope.config import ParamsError, parse_group
from porescope.evaluation.evaluate_model import EvaluateParams
from porescope.measure.params import MeasureParams
from porescope.preprocessing.augmentation import AugmentParams
from porescope.preprocessing.ingest import IngestParams
from porescope.preprocessing.splitting import SplitParams
from porescope.report.params import ReportParams
from porescope.segmentation.train_model import TrainParams
from porescope.synthetic.params import SynthesizeParams

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
GROUPS = {"synthesize": SynthesizeParams, "ingest": IngestParams, "split": SplitParams,
          "augment": AugmentParams, "train": TrainParams, "evaluate": EvaluateParams,
          "analyze": AnalyzeParams, "validate": ValidateParams, "measure": MeasureParams,
          "report": ReportParams}


def test_every_group_has_a_class():
    assert set(PARAMS) - {"seed"} == set(GROUPS)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_defaults_are_params_yaml(group):
    """The dataclass defaults are the documented defaults: params.yaml repeats them exactly."""
    assert parse_group(GROUPS[group], PARAMS[group], group=group) == GROUPS[group]()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_typo_names_the_key_and_the_closest_valid_one(group):
    cls = GROUPS[group]
    name = next(f.name for f in dataclasses.fields(cls) if len(f.name) > 4 and f.name in PARAMS[group])
    typo = name[:-1]  # drop the last letter: "epochs" -> "epoch"
    raw = {**PARAMS[group], typo: PARAMS[group][name]}
    raw.pop(name)
    with pytest.raises(ParamsError) as err:
        parse_group(cls, raw, group=group, source="params.yaml")
    assert f"{group}.{typo}: unknown parameter; did you mean '{group}.{name}'?" in str(err.value)
