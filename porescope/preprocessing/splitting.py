"""Train / validation / test splits by source image, with duplicate content kept together.

The unit of splitting is the *source image* (one micrograph): every tile of a source lands in the
split of its source, so no crop, tile or augmented copy of a test micrograph can reach training
(METHODS.md section 3, "Leakage"). Sources are first joined into *groups* that must share a split:

- sources whose raw files are identical (same ``image_sha256`` in the ingest ``sources.csv``), and
- sources that share a tile with identical pixel content (same tile ``image_sha256`` in the ingest
  ``tiles.csv``; the content hash of the decoded pixel array, so a re-encoded or renamed copy of a
  micrograph is caught even when its file bytes differ).

Grouping is a union-find over shared hashes, done as the connected components of the bipartite
graph sources <-> hashes (``scipy.sparse.csgraph.connected_components``). Mask hashes are *not*
used: an all-background mask is identical in unrelated images and would join them.

Three assignment methods (all deterministic for a given ``seed``; the shuffle is the seeded
permutation ``numpy.random.default_rng(seed).permutation(n_groups)`` of the groups, numbered in
the order of their smallest ``source_id``, so the input row order does not matter):

``fraction``
    Targets in sources: ``n = floor(fraction * n_sources + 0.5)`` (round half up), raised to 1 when
    the fraction is > 0. The test set is filled first, then validation, from the shuffled groups:
    a group is taken when it still fits the target (groups are never cut); when no group fits
    and the split is still empty, the smallest group is taken (first in shuffled order). The rest
    is train. Errors: fewer groups than non-empty splits (e.g. < 3 groups with both fractions
    > 0), targets that leave no source for training, or no group left for training.
``lists``
    Explicit lists of source ids (params ``lists: {train: [...], val: [...], test: [...]}``). Unknown ids or ids in two lists are errors naming them.
    Unlisted sources: ``unlisted="error"`` raises naming them; ``unlisted="train"`` sends them to
    the split of their duplicate group when a group member is listed, otherwise to train. A
    group whose listed members are in different splits is an error naming the sources.
``kfold``
    The test set is held out first, exactly as in ``fraction`` with ``val_fraction = 0`` (hence
    the same test set as ``fraction`` for the same seed and ``test_fraction``, and the same for
    every fold). The remaining groups, in the shuffled order, are dealt to ``n_folds`` folds, each
    group to the fold with the fewest sources so far (ties: lowest fold index; for singleton
    groups this is round robin). Fold ``fold`` is validation, the others train.

Several datasets (``ingest.sources``): the sources of a dataset with ``role: train`` (and every
source grouped with one) are train sources; the method splits the other groups. ``group_by`` keys
are taken per dataset (``<dataset>/<key>``), so equal file names in two datasets stay apart.

Tables are pandas DataFrames with the ingest columns (see ``notes/contracts.md``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from porescope.config import Fail
from porescope.errors import PorescopeError
from porescope.io.grouping import GroupRule

LOG = logging.getLogger("porescope.split")

SPLITS: tuple[str, ...] = ("train", "val", "test")
METHODS: tuple[str, ...] = ("fraction", "lists", "kfold")
UNLISTED_CHOICES: tuple[str, ...] = ("error", "train")

#: Source columns copied into the tile manifest, and their names there. The tile table already
#: has ``image_sha256`` (the tile's pixel hash), so the source's file fields get a prefix.
SOURCE_FIELDS_IN_MANIFEST: dict[str, str] = {
    "image_file": "source_image_file",
    "image_sha256": "source_image_sha256",
    "normalisation": "normalisation",
    "pixel_size_nm": "pixel_size_nm",
}


class SplitError(PorescopeError, ValueError):
    """The split cannot be made as asked; the message names the ids or parameters at fault."""


class LeakageError(SplitError):
    """A source, source file hash or tile content hash appears in more than one split."""


SourceIds = tuple[str | int, ...] | None


@dataclass(frozen=True)
class SplitLists:
    """``split.lists``: explicit source ids per split (method ``lists``)."""

    train: SourceIds = ()
    val: SourceIds = ()
    test: SourceIds = ()


@dataclass(frozen=True)
class SplitParams:
    """``split``: how sources are assigned to train / val / test (see the module docstring).

    Examples
    --------
    >>> from porescope.config import parse_group
    >>> parse_group(SplitParams, {"method": "kfold", "fold": 2}, group="split").n_folds
    5
    """

    method: Literal["fraction", "lists", "kfold"] = "fraction"
    val_fraction: float = field(default=0.2, metadata={"ge": 0, "lt": 1})
    test_fraction: float = field(default=0.2, metadata={"ge": 0, "lt": 1})
    n_folds: int = 5  # kfold: folds over the non-test sources
    fold: int = 0  # kfold: which fold is val
    lists: SplitLists = field(default_factory=SplitLists)
    unlisted: Literal["error", "train"] = "error"
    # sources that must share a split beyond identical content: the tiles of one raw
    # micrograph, the images of one specimen (pattern or metadata rule)
    group_by: GroupRule = field(default_factory=GroupRule)

    def check(self, fail: Fail) -> None:
        if self.method == "kfold" and self.n_folds < 2:
            raise fail("n_folds", "expected an integer >= 2")
        if self.method == "kfold" and not 0 <= self.fold < self.n_folds:
            raise fail("fold", f"expected an integer in 0..{self.n_folds - 1}")
        if self.group_by.rule == "folder":
            raise fail("group_by", "rule folder is not available for the split: ingest reads one "
                                   "flat images/ folder; use rule pattern or metadata")


def _fmt(items: Iterable[Any], limit: int = 20) -> str:
    items = [str(x) for x in items]
    head = ", ".join(repr(x) for x in items[:limit])
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------
# grouping


def group_sources(sources: pd.DataFrame, tiles: pd.DataFrame | None = None,
                  keys: pd.Series | None = None) -> pd.Series:
    """Join sources that share raw content (or a ``keys`` value) into groups that must stay
    in one split.

    Parameters
    ----------
    sources : DataFrame
        Columns ``source_id`` (unique) and ``image_sha256`` (hash of the raw source file).
    tiles : DataFrame, optional
        Columns ``source_id`` and ``image_sha256`` (content hash of the tile's pixel array).
    keys : Series, optional
        A group key per ``source_id`` (index): sources with the same key are joined too
        (``split.group_by``: raw micrograph, specimen, session).

    Returns
    -------
    Series of int indexed by ``source_id`` (sorted): the group number, 0..n_groups-1, groups
    numbered in the order of their smallest ``source_id``.
    """
    for name, table in (("sources", sources), ("tiles", tiles)):
        if table is None:
            continue
        for col in ("source_id", "image_sha256"):
            if col not in table.columns:
                raise SplitError(f"{name}: missing column {col!r}")
            empty = table[col].isna() | (table[col].astype(str).str.strip() == "")
            if empty.any():
                raise SplitError(f"{name}: empty {col} in {int(empty.sum())} row(s), e.g. row "
                                 f"{int(np.flatnonzero(empty.to_numpy())[0])}")
    ids = pd.Index(sorted(sources["source_id"].astype(str)), name="source_id")
    if ids.has_duplicates:
        raise SplitError(f"sources: duplicate source_id {_fmt(ids[ids.duplicated()].unique())}")
    src_pos = ids.get_indexer(sources["source_id"].astype(str))
    src_keys = "file:" + sources["image_sha256"].astype(str).to_numpy(dtype=object)
    pos_parts, key_parts = [src_pos], [src_keys]
    if tiles is not None and len(tiles):
        tile_pos = ids.get_indexer(tiles["source_id"].astype(str))
        if (tile_pos < 0).any():
            unknown = tiles.loc[tile_pos < 0, "source_id"].unique()
            raise SplitError(f"tiles: source_id not in sources: {_fmt(unknown)}")
        pos_parts.append(tile_pos)
        key_parts.append("tile:" + tiles["image_sha256"].astype(str).to_numpy(dtype=object))
    if keys is not None:
        pos_parts.append(ids.get_indexer(keys.index.astype(str)))
        key_parts.append("group:" + keys.astype(str).to_numpy(dtype=object))
    pos = np.concatenate(pos_parts)
    key_codes, _ = pd.factorize(np.concatenate(key_parts))
    n_src = len(ids)
    n_nodes = n_src + int(key_codes.max(initial=-1)) + 1
    graph = coo_matrix((np.ones(len(pos), dtype=np.int8), (pos, n_src + key_codes)),
                       shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    # renumber by first appearance in sorted source_id order (deterministic)
    groups, _ = pd.factorize(labels[:n_src])
    return pd.Series(groups.astype(np.int64), index=ids, name="group")


def _group_sizes(group_of: pd.Series) -> np.ndarray:
    return np.bincount(group_of.to_numpy(), minlength=int(group_of.to_numpy().max(initial=-1)) + 1)


# --------------------------------------------------------------------------------------------
# fraction / kfold


def fraction_target(fraction: float, n_sources: int) -> int:
    """Number of sources wanted for a split: round half up, at least 1 when ``fraction > 0``."""
    if fraction <= 0:
        return 0
    return max(1, int(math.floor(fraction * n_sources + 0.5)))


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SplitError(f"split.{name}: expected a number in [0, 1), got {value!r}")
    return float(value)


def _take(order: Sequence[int], sizes: np.ndarray, target: int, taken: set[int]) -> list[int]:
    """Groups (from ``order``, skipping ``taken``) whose sizes fill ``target`` without overshoot.

    If none fits and the target is > 0, the smallest remaining group is taken.
    """
    chosen: list[int] = []
    count = 0
    for g in order:
        if count >= target:
            break
        if g in taken:
            continue
        if count + sizes[g] <= target:
            chosen.append(g)
            count += int(sizes[g])
    if target > 0 and not chosen:
        rest = [g for g in order if g not in taken]
        if rest:
            chosen.append(min(rest, key=lambda g: sizes[g]))
    return chosen


def _shuffled_groups(n_groups: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n_groups)


def _frame(group_of: pd.Series, split_of_group: Mapping[int, str],
           fold_of_group: Mapping[int, int] | None = None) -> pd.DataFrame:
    out = pd.DataFrame({"source_id": group_of.index.astype(str),
                        "group": group_of.to_numpy()})
    out["split"] = [split_of_group[g] for g in out["group"]]
    if fold_of_group is None:
        out["fold"] = pd.array([pd.NA] * len(out), dtype="Int64")
    else:
        out["fold"] = pd.array([fold_of_group.get(g, pd.NA) for g in out["group"]], dtype="Int64")
    return out


def assign_fraction(group_of: pd.Series, val_fraction: float, test_fraction: float,
                    seed: int) -> pd.DataFrame:
    """Random split of groups by source-count fractions (see the module docstring for rounding).

    Returns a DataFrame with columns ``source_id``, ``group``, ``split``, ``fold`` (all NA).
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    n_sources = len(group_of)
    sizes = _group_sizes(group_of)
    n_groups = sizes.size
    t_val = fraction_target(val_fraction, n_sources)
    t_test = fraction_target(test_fraction, n_sources)
    needed = 1 + (t_val > 0) + (t_test > 0)
    if n_groups < needed:
        raise SplitError(
            f"split: val_fraction={val_fraction}, test_fraction={test_fraction} need at least "
            f"{needed} groups of sources (train{', val' if t_val else ''}"
            f"{', test' if t_test else ''}), but the {n_sources} source(s) form only {n_groups} "
            "group(s) after joining sources with identical content")
    if t_val + t_test >= n_sources:
        raise SplitError(
            f"split: val_fraction={val_fraction} and test_fraction={test_fraction} of "
            f"{n_sources} source(s) ask for {t_val} val + {t_test} test sources, leaving none "
            "for training")
    order = _shuffled_groups(n_groups, seed)
    taken: set[int] = set()
    test = _take(order, sizes, t_test, taken)
    taken.update(test)
    val = _take(order, sizes, t_val, taken)
    taken.update(val)
    if len(taken) == n_groups:
        raise SplitError(
            f"split: no group of sources left for training after filling val ({t_val}) and test "
            f"({t_test}); the duplicate groups are too large for these fractions")
    split_of = {int(g): "train" for g in range(n_groups)}
    split_of.update({int(g): "test" for g in test})
    split_of.update({int(g): "val" for g in val})
    return _frame(group_of, split_of)


def assign_kfold(group_of: pd.Series, n_folds: int, fold: int, test_fraction: float,
                 seed: int) -> pd.DataFrame:
    """K-fold cross-validation split with a fixed, held-out test set.

    The test groups are those of ``assign_fraction(group_of, 0, test_fraction, seed)``; they are
    the same for every ``fold``. The other groups are dealt to ``n_folds`` folds in the shuffled
    order, each to the fold with the fewest sources so far; fold ``fold`` is ``val``.

    Returns a DataFrame with columns ``source_id``, ``group``, ``split``, ``fold`` (the fold of
    each non-test source, NA for test).
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise SplitError(f"split.n_folds: expected an integer >= 2, got {n_folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise SplitError(f"split.fold: expected an integer in 0..{n_folds - 1}, got {fold!r}")
    test_fraction = _check_fraction("test_fraction", test_fraction)
    n_sources = len(group_of)
    sizes = _group_sizes(group_of)
    n_groups = sizes.size
    t_test = fraction_target(test_fraction, n_sources)
    order = _shuffled_groups(n_groups, seed)
    test = set(_take(order, sizes, t_test, set()))
    rest = [int(g) for g in order if g not in test]
    if len(rest) < n_folds:
        raise SplitError(
            f"split: n_folds={n_folds} needs at least {n_folds} groups of sources outside the test "
            f"set, but only {len(rest)} remain ({n_sources} source(s), {n_groups} group(s) after "
            f"joining identical content, {len(test)} group(s) in test)")
    load = np.zeros(n_folds, dtype=np.int64)
    fold_of: dict[int, int] = {}
    for g in rest:
        k = int(np.argmin(load))
        fold_of[g] = k
        load[k] += sizes[g]
    split_of = {g: "test" for g in test}
    split_of.update({g: ("val" if k == fold else "train") for g, k in fold_of.items()})
    return _frame(group_of, split_of, fold_of)


# --------------------------------------------------------------------------------------------
# lists


def _id_list(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SplitError(f"split.lists.{name}: expected a list of source ids, got {value!r}")
    return [str(v) for v in value]


def assign_lists(group_of: pd.Series, train: Sequence[str] | None, val: Sequence[str] | None,
                 test: Sequence[str] | None, unlisted: str = "error") -> pd.DataFrame:
    """Split by explicit lists of source ids.

    ``unlisted``: ``"error"`` (every source must be listed) or ``"train"`` (an unlisted source
    follows its listed duplicate-group members, else goes to train). Raises ``SplitError`` naming
    unknown ids, ids listed twice, unlisted ids, and groups split across lists.
    Returns a DataFrame with columns ``source_id``, ``group``, ``split``, ``fold`` (all NA).
    """
    if unlisted not in UNLISTED_CHOICES:
        raise SplitError(f"split.unlisted: expected one of {UNLISTED_CHOICES}, got {unlisted!r}")
    lists = {"train": _id_list("train", train), "val": _id_list("val", val),
             "test": _id_list("test", test)}
    known = set(group_of.index)
    problems: list[str] = []
    unknown = {name: [i for i in ids if i not in known] for name, ids in lists.items()}
    if any(unknown.values()):
        problems.append("unknown source ids: " + "; ".join(
            f"split.lists.{name}: {_fmt(ids)}" for name, ids in unknown.items() if ids)
            + " (ids are file stems; quote them in YAML so that '001' stays a string)")
    for name, ids in lists.items():
        dup = pd.Index(ids)
        if dup.has_duplicates:
            problems.append(f"split.lists.{name} lists source ids twice: {_fmt(dup[dup.duplicated()].unique())}")
    split_of_source: dict[str, str] = {}
    for name, ids in lists.items():
        for sid in ids:
            if sid in split_of_source and split_of_source[sid] != name:
                problems.append(f"source id {sid!r} is in both split.lists.{split_of_source[sid]} "
                                f"and split.lists.{name}")
            split_of_source.setdefault(sid, name)
    if problems:
        raise SplitError("; ".join(problems))
    if not lists["train"] and unlisted != "train":
        raise SplitError("split.lists.train: the train list is empty")
    # groups: listed members must agree
    split_of_group: dict[int, str] = {}
    for sid, name in split_of_source.items():
        g = int(group_of[sid])
        if split_of_group.setdefault(g, name) != name:
            members = group_of.index[group_of.to_numpy() == g]
            listed = {m: split_of_source.get(m, "-") for m in members}
            raise SplitError(
                "split lists put sources with identical content in different splits: "
                + ", ".join(f"{m!r} -> {s}" for m, s in listed.items())
                + " (identical raw file or identical tile pixels); list them together")
    missing = [s for s in group_of.index if s not in split_of_source]
    if missing and unlisted == "error":
        raise SplitError(f"split: sources not in any of split.lists.train/val/test: {_fmt(missing)} "
                         "(list them, or set split.unlisted: train)")
    for g in range(int(group_of.to_numpy().max(initial=-1)) + 1):
        split_of_group.setdefault(g, "train")
    out = _frame(group_of, split_of_group)
    if not (out["split"] == "train").any():
        raise SplitError("split: no source ends up in train")
    return out


# --------------------------------------------------------------------------------------------
# the whole split


def assign_splits(group_of: pd.Series, params: SplitParams, seed: int) -> pd.DataFrame:
    """Dispatch to the method named in ``params.method``."""
    if params.method == "fraction":
        return assign_fraction(group_of, params.val_fraction, params.test_fraction, seed)
    if params.method == "kfold":
        return assign_kfold(group_of, params.n_folds, params.fold, params.test_fraction, seed)
    lists = params.lists
    return assign_lists(group_of, lists.train, lists.val, lists.test, params.unlisted)


def split_tables(sources: pd.DataFrame, tiles: pd.DataFrame, params: SplitParams,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ingest tables by source; return ``(sources_out, tiles_out)``.

    ``sources_out`` = ``sources`` (same row order) + columns ``group``, ``split``, ``fold``.
    ``tiles_out`` (the audit manifest) = ``tiles`` + ``split``, ``group``, ``fold`` and the source
    fields ``source_image_file``, ``source_image_sha256``, ``normalisation``, ``pixel_size_nm``.
    ``check_no_leakage`` is run on ``tiles_out`` before returning.
    """
    keys = group_by_rule(sources, params.group_by)
    group_of = group_sources(sources, tiles, keys)
    if "role" in sources.columns and (sources["role"] == "train").any():
        assignment = _assign_with_train_role(group_of, sources, params, seed)
    else:
        assignment = assign_splits(group_of, params, seed)
    cols = ["group", "split", "fold"]
    key = assignment.set_index("source_id")[cols]
    sources_out = sources.copy()
    sid = sources_out["source_id"].astype(str)
    for c in cols:
        sources_out[c] = key[c].reindex(sid).to_numpy()
    src = sources.assign(source_id=sid).set_index("source_id")
    tiles_out = tiles.copy()
    tsid = tiles_out["source_id"].astype(str)
    for c in ["split", "group", "fold"]:
        tiles_out[c] = key[c].reindex(tsid).to_numpy()
    for col, new in SOURCE_FIELDS_IN_MANIFEST.items():
        if col in src.columns:
            tiles_out[new] = src[col].reindex(tsid).to_numpy()
    sources_out["fold"] = sources_out["fold"].astype("Int64")
    tiles_out["fold"] = tiles_out["fold"].astype("Int64")
    if keys is not None:  # the audit shows which key joined the sources
        sources_out["group_key"] = keys.reindex(sid).to_numpy()
    check_no_leakage(tiles_out)
    return sources_out, tiles_out


def _assign_with_train_role(group_of: pd.Series, sources: pd.DataFrame, params: SplitParams,
                            seed: int) -> pd.DataFrame:
    """Splits when some datasets of ``ingest.sources`` have ``role: train``: every group holding
    such a source is train (whole groups, so nothing that shares content leaks); the other
    groups are split by ``params.method``."""
    forced_ids = set(sources.loc[sources["role"] == "train", "source_id"].astype(str))
    forced_groups = set(group_of[group_of.index.isin(forced_ids)].tolist())
    forced = group_of.isin(forced_groups)
    rest = group_of[~forced]
    if rest.empty:
        raise SplitError("every source belongs to a dataset with role: train; nothing is left "
                         "to validate and test on")
    codes, uniques = pd.factorize(rest.to_numpy())
    assigned = assign_splits(pd.Series(codes, index=rest.index, name="group"), params, seed)
    assigned["group"] = uniques[assigned["group"].to_numpy()]
    train = pd.DataFrame({"source_id": group_of.index[forced].astype(str),
                          "group": group_of[forced].to_numpy(), "split": "train",
                          "fold": pd.array([pd.NA] * int(forced.sum()), dtype="Int64")})
    return pd.concat([assigned, train], ignore_index=True)


def group_by_rule(sources: pd.DataFrame, rule: GroupRule) -> pd.Series | None:
    """The ``split.group_by`` key of each source (indexed by ``source_id``), or ``None`` for
    ``rule: none``; a source the rule gives no group is a :class:`SplitError` naming it.

    Examples
    --------
    >>> sources = pd.DataFrame({"source_id": ["a_1", "a_2", "b_1"],
    ...                         "image_file": ["images/a_1.png", "images/a_2.png", "images/b_1.png"]})
    >>> group_by_rule(sources, GroupRule(rule="pattern", pattern=r"^(.+)_[0-9]+$")).tolist()
    ['a', 'a', 'b']
    """
    from porescope.io.grouping import GroupingError

    if rule.rule == "none":
        return None
    # image_file is relative to the ingest source ("images/x.png"): keys relative to images/
    files = pd.Series([f.split("/", 1)[1] if f.startswith("images/") else f
                       for f in sources["image_file"].astype(str)], dtype=object)
    # ingest.sources: keys per dataset, so equal file names in two datasets stay apart
    datasets = (sources["dataset"].astype(str).to_numpy() if "dataset" in sources.columns
                else np.full(len(files), None, dtype=object))
    keys = pd.Series(index=files.index, dtype=object)
    for dataset in pd.unique(datasets):
        rows = datasets == dataset
        try:
            found = list(rule.keys(files[rows].tolist()))
        except GroupingError as exc:
            raise SplitError(f"split.group_by: {exc}") from None
        keys[rows] = found if dataset is None else [f"{dataset}/{k}" for k in found]
    return pd.Series(keys.tolist(), index=sources["source_id"].astype(str).to_numpy(), name="group_key")


#: Columns the split reads from the ingest tables (ingest contract).
SOURCE_COLUMNS = ("source_id", "image_file", "image_sha256")
TILE_COLUMNS = ("tile_id", "source_id", "image_sha256")


def run_split(params: SplitParams, seed: int, ingested: str | os.PathLike,
              out: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an ingest folder by source and write ``out/sources.csv`` and ``out/tiles.csv``.

    Reads ``<ingested>/sources.csv`` and ``<ingested>/tiles.csv``, assigns splits with
    :func:`split_tables`, audits the manifest with :func:`check_no_leakage` and writes the
    folder atomically (it appears complete or not at all). Returns ``(sources_out, tiles_out)``.
    """
    from porescope.io import atomic as atomic_io
    from porescope.io.tables import read_table

    ingested = Path(ingested)
    sources = read_table(ingested / "sources.csv", SOURCE_COLUMNS, unique="source_id")
    tiles = read_table(ingested / "tiles.csv", TILE_COLUMNS, unique="tile_id")
    try:
        sources_out, tiles_out = split_tables(sources, tiles, params, seed)
        check_no_leakage(tiles_out)  # split_tables audits too; nothing unaudited is written
    except SplitError as exc:
        raise type(exc)(f"{ingested}: {exc}") from exc
    with atomic_io.output_dir(out) as tmp:
        atomic_io.write_csv(tmp / "sources.csv", sources_out)
        atomic_io.write_csv(tmp / "tiles.csv", tiles_out)
    LOG.info("split (%s, seed %d): %d sources in %d groups", params.method, seed, len(sources_out),
             int(sources_out["group"].nunique()))
    joined = sources_out.groupby("group")["source_id"].agg(list)
    joined = joined[joined.map(len) > 1]
    if len(joined):
        LOG.warning("%d group(s) of sources share raw content (identical file or identical tile "
                    "pixels) and were kept in one split: %s", len(joined),
                    "; ".join(", ".join(map(repr, g)) for g in joined.head(10)))
    for name in SPLITS:
        LOG.info("  %-5s %4d sources %6d tiles", name, int((sources_out["split"] == name).sum()),
                 int((tiles_out["split"] == name).sum()))
    return sources_out, tiles_out


# --------------------------------------------------------------------------------------------
# leakage audit


def check_no_leakage(tiles_df: pd.DataFrame) -> None:
    """Raise ``LeakageError`` if any key of the tile manifest appears in two splits.

    Checked keys: ``source_id``, ``source_image_sha256`` (raw source file; skipped if the column
    is absent) and ``image_sha256`` (tile pixel content). The message lists every offending value
    with the splits it is in and (for hashes) the source ids concerned. ``split`` values must be
    in {train, val, test}.
    """
    required = {"split", "source_id", "image_sha256"}
    missing = required - set(tiles_df.columns)
    if missing:
        raise SplitError(f"check_no_leakage: tile table lacks column(s) {sorted(missing)}")
    bad = sorted(set(tiles_df["split"].astype(str)) - set(SPLITS))
    if bad:
        raise SplitError(f"check_no_leakage: unknown split value(s) {bad}; expected {SPLITS}")
    problems: list[str] = []
    for column, label in (("source_id", "source"), ("source_image_sha256", "source file sha256"),
                          ("image_sha256", "tile content sha256")):
        if column not in tiles_df.columns:
            continue
        n_splits = tiles_df.groupby(column, sort=True)["split"].nunique()
        for value in n_splits.index[n_splits.to_numpy() > 1]:
            rows = tiles_df[tiles_df[column] == value]
            where = "; ".join(f"{s}: {_fmt(sorted(rows.loc[rows['split'] == s, 'source_id'].astype(str).unique()), 5)}"
                              for s in SPLITS if (rows["split"] == s).any())
            problems.append(f"{label} {value!r} in several splits (sources {where})")
    if problems:
        raise LeakageError("leakage between splits: " + " | ".join(problems))
