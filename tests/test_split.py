"""Tests of the split stage and porescope.preprocessing.splitting (tiny fixtures in the ingest layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages import split as split_stage
from porescope.config import ParamsError, parse_group
from porescope.io.tables import read_table
from porescope.preprocessing.splitting import (
    SOURCE_COLUMNS,
    TILE_COLUMNS,
    LeakageError,
    SplitError,
    SplitParams,
    assign_fraction,
    assign_kfold,
    assign_lists,
    check_no_leakage,
    fraction_target,
    group_sources,
    split_tables,
)

import ingest_layout

TILE = 16



def write_ingested(root: Path, images: dict[str, np.ndarray], *, raw_variant: dict[str, int] | None = None,
                   classes: dict[str, str] | None = None) -> Path:
    """Write an ingest-layout folder. Masks = image > 127. Tiles: a TILE grid (no padding).

    ``raw_variant[source] = level`` writes that source's PNG with another compression level, so its
    raw file hash differs from an identical-pixel source (a re-encoded copy).
    """
    return ingest_layout.write_ingested(
        root, {sid: (image, (image > 127).astype(np.uint8)) for sid, image in images.items()},
        tile=TILE, classes=classes or {"0": "background", "1": "pore"},
        png_level={sid: (raw_variant or {}).get(sid, 3) for sid in images},
        source_fields={"pixel_size_nm": lambda sid: 2.5 if sid.startswith("s") else np.nan,
                       "pixel_size_source": "test"})


def random_image(rng: np.random.Generator, h: int = 2 * TILE, w: int = 2 * TILE) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w), dtype=np.uint8)


@pytest.fixture()
def dup_fixture(tmp_path: Path) -> Path:
    """12 sources. Duplicates across differently named sources:

    - 'dupA' and 'dupA copy.1' : identical raw file (same sources.csv image_sha256)
    - 'dupB' and 'dupB v2'     : identical pixels, different PNG bytes (only tile hashes shared)
    - 'shareX' and 'shareY'    : different images that share one identical tile (top-left)
    Expected groups: {dupA, dupA copy.1}, {dupB, dupB v2}, {shareX, shareY}, and 6 singletons.
    """
    rng = np.random.default_rng(1)
    images = {f"s{k:02d}": random_image(rng) for k in range(6)}
    a, b = random_image(rng), random_image(rng)
    images["dupA"], images["dupA copy.1"] = a, a.copy()
    images["dupB"], images["dupB v2"] = b, b.copy()
    x, y = random_image(rng), random_image(rng)
    y[:TILE, :TILE] = x[:TILE, :TILE]
    images["shareX"], images["shareY"] = x, y
    return write_ingested(tmp_path / "ingested", images, raw_variant={"dupB v2": 9})


def read_ingest(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    sources = read_table(root / "sources.csv", SOURCE_COLUMNS, "source_id")
    tiles = read_table(root / "tiles.csv", TILE_COLUMNS, "tile_id")
    return sources, tiles


PAIRS = [("dupA", "dupA copy.1"), ("dupB", "dupB v2"), ("shareX", "shareY")]


def test_fixture_duplicates_are_what_they_claim(dup_fixture: Path) -> None:
    sources, tiles = read_ingest(dup_fixture)
    h = sources.set_index("source_id")["image_sha256"]
    assert h["dupA"] == h["dupA copy.1"]
    assert h["dupB"] != h["dupB v2"]          # re-encoded: raw bytes differ ...
    th = tiles.groupby("source_id")["image_sha256"].apply(set)
    assert th["dupB"] == th["dupB v2"]        # ... but every tile's pixels are identical
    assert len(th["shareX"] & th["shareY"]) == 1


def test_group_sources_joins_shared_hashes(dup_fixture: Path) -> None:
    sources, tiles = read_ingest(dup_fixture)
    groups = group_sources(sources, tiles)
    assert groups.nunique() == 9
    for a, b in PAIRS:
        assert groups[a] == groups[b]
    singles = [f"s{k:02d}" for k in range(6)]
    assert groups[singles].nunique() == 6
    # row order of the input does not change the groups
    shuffled = group_sources(sources.sample(frac=1, random_state=3), tiles.sample(frac=1, random_state=4))
    pd.testing.assert_series_equal(groups, shuffled)


def test_group_sources_chains_transitively() -> None:
    # a-b share a file hash, b-c share a tile hash -> one group of three
    sources = pd.DataFrame({"source_id": ["a", "b", "c", "d"], "image_sha256": ["h1", "h1", "h2", "h3"]})
    tiles = pd.DataFrame({"source_id": ["a", "b", "c", "d"], "image_sha256": ["t1", "t2", "t2", "t3"]})
    groups = group_sources(sources, tiles)
    assert groups["a"] == groups["b"] == groups["c"] != groups["d"]


@pytest.mark.parametrize("method", ["fraction", "kfold", "lists"])
def test_duplicates_never_leak(dup_fixture: Path, method: str) -> None:
    sources, tiles = read_ingest(dup_fixture)
    params_by_seed = []
    for seed in range(15):
        params = {"method": method, "seed": seed, "val_fraction": 0.25, "test_fraction": 0.25,
                  "n_folds": 3, "fold": seed % 3}
        if method == "lists":
            ids = sorted(sources["source_id"])
            # list only one member of each duplicate pair: the other must follow it
            listed = [s for s in ids if s not in {b for _, b in PAIRS}]
            params.update({"lists": {"train": listed[:5], "val": listed[5:7], "test": listed[7:]},
                           "unlisted": "train"})
        params_by_seed.append(params)
        seed = params.pop("seed")
        s_out, t_out = split_tables(sources, tiles, parse_group(SplitParams, params, group="split"), seed)
        check_no_leakage(t_out)
        split_of = s_out.set_index("source_id")["split"]
        for a, b in PAIRS:
            assert split_of[a] == split_of[b], (seed, a, b)
        # every tile is in its source's split; every tile hash in one split
        assert (t_out["split"].to_numpy() == split_of.reindex(t_out["source_id"]).to_numpy()).all()
        assert (t_out.groupby("image_sha256")["split"].nunique() == 1).all()
        assert (t_out.groupby("source_image_sha256")["split"].nunique() == 1).all()
        assert set(s_out["split"]) <= {"train", "val", "test"}


def singletons(n: int) -> pd.Series:
    ids = pd.Index([f"src{k:02d}" for k in range(n)], name="source_id")
    return pd.Series(np.arange(n), index=ids, name="group")


def counts(frame: pd.DataFrame) -> dict[str, int]:
    return {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")}


def test_fraction_targets_round_half_up_and_minimum_one() -> None:
    assert fraction_target(0.2, 10) == 2
    assert fraction_target(0.15, 10) == 2      # 1.5 -> 2 (half up, not banker's)
    assert fraction_target(0.25, 10) == 3      # 2.5 -> 3
    assert fraction_target(0.01, 10) == 1      # > 0 -> at least one
    assert fraction_target(0.0, 10) == 0
    assert counts(assign_fraction(singletons(10), 0.2, 0.2, seed=0)) == {"train": 6, "val": 2, "test": 2}
    assert counts(assign_fraction(singletons(3), 0.01, 0.01, seed=0)) == {"train": 1, "val": 1, "test": 1}
    assert counts(assign_fraction(singletons(5), 0.0, 0.2, seed=0)) == {"train": 4, "val": 0, "test": 1}


def test_fraction_respects_groups_without_cutting_them() -> None:
    # groups of sizes 3, 1, 1, 1, 1, 1, 1, 1 (10 sources): targets 2 + 2 are filled by singletons
    group = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    g = pd.Series(group, index=pd.Index([f"x{k}" for k in range(10)], name="source_id"))
    for seed in range(10):
        out = assign_fraction(g, 0.2, 0.2, seed)
        assert out.groupby("group")["split"].nunique().max() == 1
        c = counts(out)
        assert c["val"] == 2 and c["test"] == 2


def test_fraction_errors() -> None:
    with pytest.raises(SplitError, match="at least 3 groups"):
        assign_fraction(singletons(2), 0.2, 0.2, seed=0)
    # two sources, identical content -> one group: even a val-only split is impossible
    g = pd.Series([0, 0], index=pd.Index(["a", "a copy"], name="source_id"))
    with pytest.raises(SplitError, match="only 1 group"):
        assign_fraction(g, 0.3, 0.0, seed=0)
    with pytest.raises(SplitError, match="leaving none for training"):
        assign_fraction(singletons(4), 0.5, 0.5, seed=0)
    with pytest.raises(SplitError, match="val_fraction"):
        assign_fraction(singletons(4), 1.2, 0.1, seed=0)


def test_fraction_is_seeded_and_deterministic() -> None:
    g = singletons(20)
    a = assign_fraction(g, 0.2, 0.2, seed=7)
    b = assign_fraction(g, 0.2, 0.2, seed=7)
    pd.testing.assert_frame_equal(a, b)
    others = [assign_fraction(g, 0.2, 0.2, seed=s)["split"].tolist() for s in range(8, 12)]
    assert any(o != a["split"].tolist() for o in others)


def test_kfold_partitions_non_test_sources_with_fixed_test() -> None:
    g = singletons(23)
    k = 5
    folds = [assign_kfold(g, k, f, test_fraction=0.2, seed=3).set_index("source_id") for f in range(k)]
    tests = [set(f.index[f["split"] == "test"]) for f in folds]
    assert all(t == tests[0] for t in tests)
    assert len(tests[0]) == fraction_target(0.2, 23) == 5
    vals = [set(f.index[f["split"] == "val"]) for f in folds]
    non_test = set(g.index) - tests[0]
    assert set().union(*vals) == non_test
    assert sum(len(v) for v in vals) == len(non_test)          # disjoint
    assert max(len(v) for v in vals) - min(len(v) for v in vals) <= 1  # balanced
    for f, v in zip(folds, vals):
        assert set(f.index[f["split"] == "train"]) == non_test - v
        assert f.loc[list(v), "fold"].nunique() == 1
    # the held-out test set is the one the fraction method picks with the same seed
    frac = assign_fraction(g, 0.2, 0.2, seed=3).set_index("source_id")
    assert set(frac.index[frac["split"] == "test"]) == tests[0]


def test_kfold_errors() -> None:
    with pytest.raises(SplitError, match="n_folds=5 needs at least 5 groups"):
        assign_kfold(singletons(5), 5, 0, test_fraction=0.2, seed=0)
    with pytest.raises(SplitError, match="split.fold"):
        assign_kfold(singletons(10), 5, 5, test_fraction=0.2, seed=0)
    with pytest.raises(SplitError, match="split.n_folds"):
        assign_kfold(singletons(10), 1, 0, test_fraction=0.2, seed=0)


def test_lists_assignment_and_errors() -> None:
    g = singletons(5)
    out = assign_lists(g, ["src00", "src01"], ["src02"], ["src03", "src04"]).set_index("source_id")
    assert out["split"].to_dict() == {"src00": "train", "src01": "train", "src02": "val",
                                      "src03": "test", "src04": "test"}
    with pytest.raises(SplitError, match=r"unknown source ids: split.lists.train: 'nope'; split.lists.val: 'src99'"):
        assign_lists(g, ["src00", "nope"], ["src99"], [])
    with pytest.raises(SplitError, match=r"'src01' is in both split.lists.train and split.lists.test"):
        assign_lists(g, ["src00", "src01"], ["src02"], ["src01", "src03", "src04"])
    with pytest.raises(SplitError, match=r"not in any of split.lists.train/val/test: 'src03', 'src04'"):
        assign_lists(g, ["src00", "src01"], ["src02"], [])
    out = assign_lists(g, ["src00"], ["src02"], ["src03"], unlisted="train").set_index("source_id")
    assert out.loc[["src01", "src04"], "split"].tolist() == ["train", "train"]
    with pytest.raises(SplitError, match="unlisted"):
        assign_lists(g, ["src00"], [], [], unlisted="drop")


def test_lists_refuse_to_separate_duplicates() -> None:
    g = pd.Series([0, 0, 1], index=pd.Index(["a", "a copy", "b"], name="source_id"))
    with pytest.raises(SplitError, match=r"'a' -> train, 'a copy' -> test"):
        assign_lists(g, ["a", "b"], [], ["a copy"])
    # an unlisted duplicate follows its listed twin, not train
    out = assign_lists(g, ["b"], [], ["a"], unlisted="train").set_index("source_id")
    assert out.loc["a copy", "split"] == "test"


def manifest(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source_id", "source_image_sha256", "image_sha256", "split"])


def test_check_no_leakage_names_offenders() -> None:
    clean = manifest([("a", "ha", "t1", "train"), ("a", "ha", "t2", "train"), ("b", "hb", "t3", "val")])
    check_no_leakage(clean)
    with pytest.raises(LeakageError, match=r"source 'a' in several splits \(sources train: 'a'; val: 'a'\)"):
        check_no_leakage(manifest([("a", "ha", "t1", "train"), ("a", "ha", "t2", "val")]))
    with pytest.raises(LeakageError, match=r"source file sha256 'hx'.*train: 'a'; test: 'b'"):
        check_no_leakage(manifest([("a", "hx", "t1", "train"), ("b", "hx", "t2", "test")]))
    with pytest.raises(LeakageError, match=r"tile content sha256 't9'.*val: 'b'; test: 'c'"):
        check_no_leakage(manifest([("a", "ha", "t1", "train"), ("b", "hb", "t9", "val"),
                                   ("c", "hc", "t9", "test")]))
    with pytest.raises(SplitError, match="unknown split"):
        check_no_leakage(manifest([("a", "ha", "t1", "training")]))


def run_stage(tmp_path: Path, ingested: Path, split_params: dict, seed: int = 0) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": seed, "split": split_params}))
    out = tmp_path / "split"
    split_stage.main(["--params", str(params), "--ingested", str(ingested), "--out", str(out)])
    return out


def test_stage_writes_contract_outputs(tmp_path: Path, dup_fixture: Path) -> None:
    out = run_stage(tmp_path, dup_fixture, {"method": "fraction", "val_fraction": 0.2, "test_fraction": 0.2})
    src_in = pd.read_csv(dup_fixture / "sources.csv", dtype=str, keep_default_na=False)
    tiles_in = pd.read_csv(dup_fixture / "tiles.csv", dtype=str, keep_default_na=False)
    src = pd.read_csv(out / "sources.csv", dtype=str, keep_default_na=False)
    tiles = pd.read_csv(out / "tiles.csv", dtype=str, keep_default_na=False)
    assert list(src.columns[: len(src_in.columns)]) == list(src_in.columns)
    assert {"split", "group", "fold"} <= set(src.columns)
    pd.testing.assert_frame_equal(src[src_in.columns], src_in)      # ingest columns unchanged
    pd.testing.assert_frame_equal(tiles[tiles_in.columns], tiles_in)
    assert {"split", "source_image_file", "source_image_sha256", "normalisation",
            "pixel_size_nm"} <= set(tiles.columns)
    merged = tiles.merge(src, on="source_id", suffixes=("", "_src"))
    assert (merged["source_image_sha256"] == merged["image_sha256_src"]).all()
    assert (merged["split"] == merged["split_src"]).all()
    assert (merged["pixel_size_nm"] == merged["pixel_size_nm_src"]).all()   # empty stays empty
    assert set(src["split"]) == {"train", "val", "test"}
    check_no_leakage(pd.read_csv(out / "tiles.csv"))
    # rerun: identical bytes
    first = [(out / f).read_bytes() for f in ("sources.csv", "tiles.csv")]
    run_stage(tmp_path, dup_fixture, {"method": "fraction", "val_fraction": 0.2, "test_fraction": 0.2})
    assert [(out / f).read_bytes() for f in ("sources.csv", "tiles.csv")] == first


def test_stage_keeps_string_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ingested = write_ingested(tmp_path / "ing", {f"{k:03d}": random_image(rng) for k in range(4)})
    out = run_stage(tmp_path, ingested, {"method": "lists", "lists": {"train": ["000", "001"], "val": ["002"],
                                                                "test": ["003"]}})
    src = pd.read_csv(out / "sources.csv", dtype=str)
    assert src.set_index("source_id").loc["002", "split"] == "val"


def test_stage_error_leaves_no_output(tmp_path: Path, dup_fixture: Path) -> None:
    with pytest.raises(ValueError, match="'ghost'"):
        run_stage(tmp_path, dup_fixture, {"method": "lists", "lists": {"train": ["s00", "ghost"]},
                                            "unlisted": "train"})
    assert not (tmp_path / "split").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".split")]
    with pytest.raises(ValueError, match="unknown parameter"):
        run_stage(tmp_path, dup_fixture, {"method": "fraction", "val_frac": 0.2})


def test_stage_kfold_all_folds(tmp_path: Path, dup_fixture: Path) -> None:
    vals, tests = [], []
    for fold in range(3):
        out = run_stage(tmp_path, dup_fixture, {"method": "kfold", "n_folds": 3, "fold": fold,
                                                "test_fraction": 0.2})
        src = pd.read_csv(out / "sources.csv", dtype={"source_id": str})
        vals.append(set(src.loc[src["split"] == "val", "source_id"]))
        tests.append(set(src.loc[src["split"] == "test", "source_id"]))
        assert src.loc[src["split"] == "val", "fold"].eq(fold).all()
    assert tests[0] == tests[1] == tests[2]
    assert not (vals[0] & vals[1]) and not (vals[1] & vals[2]) and not (vals[0] & vals[2])
    assert len(vals[0] | vals[1] | vals[2]) + len(tests[0]) == 12


def test_project_params_yaml_split_group_is_accepted() -> None:
    params_file = Path(__file__).resolve().parents[1] / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())["split"]
    # the dataclass defaults are the params.yaml values
    assert parse_group(SplitParams, raw, group="split") == SplitParams()


def test_split_param_typo_names_the_closest_key(tmp_path: Path, dup_fixture: Path) -> None:
    with pytest.raises(ParamsError, match=r"split\.val_frac: unknown parameter; did you mean 'split\.val_fraction'\?"):
        run_stage(tmp_path, dup_fixture, {"method": "fraction", "val_frac": 0.2})
    with pytest.raises(ParamsError, match=r"split\.lists\.tset: unknown parameter; did you mean 'split\.lists\.test'\?"):
        run_stage(tmp_path, dup_fixture, {"method": "lists", "lists": {"train": ["s00"], "tset": []}})
    with pytest.raises(ParamsError, match=r"split\.fold: expected an integer in 0\.\.2"):
        run_stage(tmp_path, dup_fixture, {"method": "kfold", "n_folds": 3, "fold": 3})
    assert not (tmp_path / "split").exists()
