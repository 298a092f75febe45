"""Which specimen (or group) each micrograph belongs to: by sub-folder, file-name pattern or
metadata table.

One mechanism for every place that groups images: the specimens of a ``measure`` run
(:mod:`porescope.analysis.specimens`) and the groups a split must keep together. The files are
named by their path relative to the input folder (``"A/img_01.tif"``, POSIX or Windows
separators); the three rules are

``folder``
    the sub-folder the file lies in (``"A/img_01.tif"`` -> ``"A"``; nested folders are kept
    whole, ``"A/x/img.tif"`` -> ``"A/x"``). A file directly in the input folder has no group.
``pattern``
    a regular expression with exactly one capturing group, searched in the file *name without
    its extension* (``r"^(.+?)_\\d+$"``: ``"mem3_017.png"`` -> ``"mem3"``); the captured text
    is the group. A name the pattern does not match has no group.
``metadata``
    a table (a :class:`pandas.DataFrame` or a CSV file) with one row per file: the column
    ``file_column`` names the file (its relative path, or only its file name when that is
    unambiguous) and ``column`` its group.

A file without a group, a pattern without exactly one group, a table without the columns or
the file, or a file listed twice with two groups, is a :class:`GroupingError` naming it.

Examples
--------
>>> files = ["A/img_01.png", "A/img_02.png", "B/img_01.png"]
>>> group_keys(files, by="folder").tolist()
['A', 'A', 'B']
>>> group_keys(["mem3_017.png", "mem3_018.png", "mem4_001.png"], by="pattern",
...            pattern=r"^(.+?)_\\d+$").tolist()
['mem3', 'mem3', 'mem4']
>>> import pandas as pd
>>> meta = pd.DataFrame({"file": ["img_01.png", "img_02.png"], "specimen": ["S1", "S2"]})
>>> group_keys(["img_01.png", "img_02.png"], by="metadata", metadata=meta).tolist()
['S1', 'S2']
>>> group_keys(["img_01.png"], by="folder")
Traceback (most recent call last):
...
porescope.io.grouping.GroupingError: group by folder: 'img_01.png' lies directly in the input folder, so it has no specimen folder; put each specimen's images in a sub-folder, or group by pattern or metadata
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import pandas as pd

from porescope.config import Fail
from porescope.errors import PorescopeError

__all__ = ["GROUP_BY", "GroupRule", "GroupingError", "group_keys"]

#: The grouping rules.
GROUP_BY: tuple[str, ...] = ("folder", "pattern", "metadata")


class GroupingError(PorescopeError, ValueError):
    """A file cannot be given a group; the message names the file, pattern, table or column."""


def _posix(name: str) -> PurePosixPath:
    return PurePosixPath(str(name).replace("\\", "/"))


def _by_folder(files: Sequence[str]) -> list[str]:
    keys = []
    for f in files:
        parent = str(_posix(f).parent)
        if parent in ("", "."):
            raise GroupingError(f"group by folder: {f!r} lies directly in the input folder, so it "
                                "has no specimen folder; put each specimen's images in a "
                                "sub-folder, or group by pattern or metadata")
        keys.append(parent)
    return keys


def _by_pattern(files: Sequence[str], pattern: str | None) -> list[str]:
    if not pattern:
        raise GroupingError("group by pattern: no pattern given (a regular expression with one "
                            "capturing group, e.g. '^(.+?)_\\d+$')")
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise GroupingError(f"group by pattern: {pattern!r} is not a regular expression: {e}") from None
    if rx.groups != 1:
        raise GroupingError(f"group by pattern: {pattern!r} has {rx.groups} capturing groups; it "
                            "needs exactly one, the part of the file name that names the group, "
                            "e.g. '^(.+?)_\\d+$' (use (?:...) for other parentheses)")
    keys = []
    for f in files:
        stem = _posix(f).stem
        m = rx.search(stem)
        if m is None or not m.group(1):
            raise GroupingError(f"group by pattern: file {f!r} (name {stem!r}) does not match "
                                f"{pattern!r}, so it has no group")
        keys.append(m.group(1))
    return keys


def _read_metadata(metadata: pd.DataFrame | str | os.PathLike | None) -> tuple[pd.DataFrame, str]:
    if metadata is None:
        raise GroupingError("group by metadata: no metadata table given (a CSV with one row per "
                            "file)")
    if isinstance(metadata, pd.DataFrame):
        return metadata, "metadata table"
    path = Path(metadata)
    if not path.is_file():
        raise GroupingError(f"group by metadata: {path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False), str(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise GroupingError(f"group by metadata: {path}: not a readable CSV ({e})") from None


def _by_metadata(files: Sequence[str], metadata, file_column: str, column: str) -> list[str]:
    table, where = _read_metadata(metadata)
    for col in (file_column, column):
        if col not in table.columns:
            raise GroupingError(f"group by metadata: {where} has no column {col!r} (columns: "
                                f"{', '.join(map(str, table.columns))})")
    lookup: dict[str, str] = {}
    by_name: dict[str, set[str]] = {}
    for f, g in zip(table[file_column], table[column]):
        if pd.isna(f) or str(f).strip() == "":
            continue
        key = str(_posix(str(f).strip()))
        g = "" if pd.isna(g) else str(g).strip()
        if key in lookup and lookup[key] != g:
            raise GroupingError(f"group by metadata: {where} lists {key!r} twice, in groups "
                                f"{lookup[key]!r} and {g!r}")
        lookup[key] = g
        by_name.setdefault(_posix(key).name, set()).add(key)
    keys = []
    for f in files:
        p = _posix(f)
        key = str(p)
        if key not in lookup:
            # a table may name files by their name only; accepted when that name is unique
            cands = by_name.get(p.name, set())
            if len(cands) == 1 and "/" not in next(iter(cands)):
                key = next(iter(cands))
            else:
                raise GroupingError(f"group by metadata: {f!r} is not listed in {where} "
                                    f"(column {file_column!r})")
        if lookup[key] == "":
            raise GroupingError(f"group by metadata: {f!r} has an empty {column!r} in {where}")
        keys.append(lookup[key])
    return keys


def group_keys(files: Sequence[str], *, by: str, pattern: str | None = None,
               metadata: pd.DataFrame | str | os.PathLike | None = None,
               file_column: str = "file", column: str = "specimen") -> pd.Series:
    """The group (specimen) of each file.

    Parameters
    ----------
    files : file paths relative to the input folder (``"A/img_01.tif"``), each once.
    by : ``"folder"``, ``"pattern"`` or ``"metadata"`` (see the module docstring).
    pattern : for ``by="pattern"``: a regular expression with exactly one capturing group,
        searched in the file name without its extension.
    metadata : for ``by="metadata"``: a DataFrame or the path of a CSV file.
    file_column, column : the metadata columns naming the file and its group.

    Returns
    -------
    Series of str, indexed by the files as given (same order), named ``"specimen"``.

    Raises
    ------
    GroupingError
        unknown rule, a file without a group, a bad pattern or table.
    """
    files = [str(f) for f in files]
    dup = sorted(f for f, n in Counter(files).items() if n > 1)
    if dup:
        raise GroupingError(f"group {by}: file(s) listed twice: {', '.join(map(repr, dup))}")
    if by == "folder":
        keys = _by_folder(files)
    elif by == "pattern":
        keys = _by_pattern(files, pattern)
    elif by == "metadata":
        keys = _by_metadata(files, metadata, file_column, column)
    else:
        raise GroupingError(f"group by {by!r}: unknown rule; use one of {', '.join(GROUP_BY)}")
    return pd.Series(keys, index=pd.Index(files, name="file"), name="specimen", dtype=object)


@dataclass(frozen=True)
class GroupRule:
    """A grouping rule as parameters (``split.group_by``, ``measure.specimens``).

    ``rule``: ``none`` (no grouping) or one of :data:`GROUP_BY`; ``pattern`` for ``pattern``;
    ``metadata`` (a CSV path), ``file_column`` and ``column`` for ``metadata``.

    Examples
    --------
    >>> GroupRule(rule="pattern", pattern=r"^(.+?)_[0-9]+$").keys(["M1_01.png", "M1_02.png"]).tolist()
    ['M1', 'M1']
    """

    rule: Literal["none", "folder", "pattern", "metadata"] = "none"
    pattern: str | None = None
    metadata: str | None = None
    file_column: str = "file"
    column: str = "specimen"

    def check(self, fail: Fail) -> None:
        if self.rule == "pattern" and not self.pattern:
            raise fail("pattern", "rule: pattern needs a regex with one group")
        if self.rule == "metadata" and not self.metadata:
            raise fail("metadata", "rule: metadata needs the path of a CSV file")

    def keys(self, files: Sequence[str]) -> pd.Series:
        """:func:`group_keys` of ``files`` under this rule (not for ``rule: none``)."""
        return group_keys(files, by=self.rule, pattern=self.pattern, metadata=self.metadata,
                          file_column=self.file_column, column=self.column)
