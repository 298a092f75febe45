"""Specimen grouping: by sub-folder, file-name pattern and metadata CSV, and its errors."""

import pandas as pd
import pytest

from porescope.errors import PorescopeError
from porescope.io.grouping import GroupingError, group_keys


def test_folder_groups_keep_order_and_nested_folders():
    files = ["B/x_2.tif", "A/x_1.tif", "A/sub/x_3.tif", "B\\x_4.tif"]
    g = group_keys(files, by="folder")
    assert g.index.tolist() == files
    assert g.tolist() == ["B", "A", "A/sub", "B"]
    assert g.name == "specimen"


def test_file_in_root_folder_has_no_group():
    with pytest.raises(GroupingError, match="'top.png' lies directly in the input folder"):
        group_keys(["A/a.png", "top.png"], by="folder")


def test_pattern_groups_on_the_stem():
    g = group_keys(["M1_001.png", "M1_002.png", "sub/M2_010.tif", "M1_x_3.jpg"], by="pattern",
                   pattern=r"^(.+?)_\d+$")
    assert g.tolist() == ["M1", "M1", "M2", "M1_x"]


@pytest.mark.parametrize("pattern, message", [
    (r"^.+_\d+$", "has 0 capturing groups"),
    (r"^(.+)_(\d+)$", "has 2 capturing groups"),
    (r"^(.+_\d+$", "is not a regular expression"),
    (None, "no pattern given"),
])
def test_bad_patterns(pattern, message):
    with pytest.raises(GroupingError, match=message):
        group_keys(["M1_001.png"], by="pattern", pattern=pattern)


def test_file_not_matching_pattern_is_named():
    with pytest.raises(GroupingError, match="'odd.png' .* does not match"):
        group_keys(["M1_001.png", "odd.png"], by="pattern", pattern=r"^(.+?)_\d+$")


def test_metadata_by_path_and_by_name(tmp_path):
    csv = tmp_path / "specimens.csv"
    pd.DataFrame({"file": ["A/img1.png", "img2.png"], "membrane": ["S1", "S2"]}).to_csv(csv, index=False)
    g = group_keys(["A/img1.png", "B/img2.png"], by="metadata", metadata=csv, column="membrane")
    assert g.tolist() == ["S1", "S2"]


def test_metadata_errors(tmp_path):
    meta = pd.DataFrame({"file": ["a.png", "b.png", "b.png"], "specimen": ["S1", "S2", "S3"]})
    with pytest.raises(GroupingError, match="'c.png' is not listed"):
        group_keys(["a.png", "c.png"], by="metadata", metadata=meta.iloc[:2])
    with pytest.raises(GroupingError, match="no column 'batch'"):
        group_keys(["a.png"], by="metadata", metadata=meta, column="batch")
    with pytest.raises(GroupingError, match="lists 'b.png' twice"):
        group_keys(["a.png"], by="metadata", metadata=meta)
    with pytest.raises(GroupingError, match="file not found"):
        group_keys(["a.png"], by="metadata", metadata=tmp_path / "missing.csv")
    blank = pd.DataFrame({"file": ["a.png"], "specimen": [""]})
    with pytest.raises(GroupingError, match="empty 'specimen'"):
        group_keys(["a.png"], by="metadata", metadata=blank)


def test_unknown_rule_and_duplicates_are_porescope_errors():
    with pytest.raises(PorescopeError, match="unknown rule"):
        group_keys(["A/a.png"], by="folders")
    with pytest.raises(PorescopeError, match="listed twice"):
        group_keys(["A/a.png", "A/a.png"], by="folder")
