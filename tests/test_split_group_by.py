"""split.group_by: tiles cut from one raw micrograph (or images of one specimen) never straddle
splits, by file-name pattern or metadata column."""

from __future__ import annotations

import pandas as pd
import pytest

from porescope.config import ParamsError, parse_group
from porescope.io.grouping import GroupRule
from porescope.preprocessing.splitting import SplitError, SplitParams, split_tables


def tables(names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sources NAME_1 ... NAME_4 per raw micrograph NAME, each with its own content and one tile."""
    ids = [f"{n}_{k}" for n in names for k in range(1, 5)]
    sources = pd.DataFrame({"source_id": ids, "image_file": [f"images/{i}.png" for i in ids],
                            "image_sha256": [f"sha-{i}" for i in ids]})
    tiles = pd.DataFrame({"tile_id": [f"{i}_t0" for i in ids], "source_id": ids,
                          "image_sha256": [f"tile-{i}" for i in ids]})
    return sources, tiles


def splits_per_micrograph(sources_out: pd.DataFrame) -> pd.Series:
    raw = sources_out["source_id"].str.rsplit("_", n=1).str[0]
    return sources_out.groupby(raw)["split"].nunique()


RAW = [f"M{k:02d}" for k in range(10)]


def test_without_group_by_the_tiles_of_one_micrograph_leak_across_splits():
    # the situation the rule exists for: content hashes differ, so nothing joins them
    out, _ = split_tables(*tables(RAW), SplitParams(), seed=42)
    assert (splits_per_micrograph(out) > 1).any()


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_pattern_keeps_each_micrograph_in_one_split(seed):
    params = SplitParams(group_by=GroupRule(rule="pattern", pattern=r"^(.+)_\d+$"))
    out, tiles_out = split_tables(*tables(RAW), params, seed=seed)
    assert (splits_per_micrograph(out) == 1).all()
    assert set(out["split"]) == {"train", "val", "test"}
    # the audit shows the key that joined them
    assert out.groupby("group_key")["group"].nunique().eq(1).all()
    assert out["group_key"].nunique() == len(RAW)
    assert (tiles_out.groupby(tiles_out["source_id"].str[:3])["split"].nunique() == 1).all()


def test_metadata_rule_and_no_folder_rule(tmp_path):
    meta = tmp_path / "specimens.csv"
    ids = tables(RAW)[0]["source_id"]
    pd.DataFrame({"file": [f"{sid}.png" for sid in ids], "specimen": [sid[:3] for sid in ids]}).to_csv(meta, index=False)
    out, _ = split_tables(*tables(RAW), SplitParams(group_by=GroupRule(rule="metadata", metadata=str(meta))),
                          seed=3)
    assert (splits_per_micrograph(out) == 1).all()
    with pytest.raises(ParamsError, match="split.group_by: rule folder is not available"):
        parse_group(SplitParams, {"group_by": {"rule": "folder"}}, group="split")


def test_a_source_without_a_group_is_named():
    sources, tiles = tables(RAW)
    sources.loc[0, "image_file"] = "images/odd.png"
    with pytest.raises(SplitError, match="odd"):
        split_tables(sources, tiles, SplitParams(group_by=GroupRule(rule="pattern", pattern=r"^(.+)_\d+$")), seed=0)


def test_group_by_params_are_checked():
    with pytest.raises(ParamsError, match="split.group_by.pattern: rule: pattern needs a regex"):
        parse_group(SplitParams, {"group_by": {"rule": "pattern"}}, group="split")
    with pytest.raises(ParamsError, match="did you mean 'split.group_by.rule'"):
        parse_group(SplitParams, {"group_by": {"rules": "folder"}}, group="split")
