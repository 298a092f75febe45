"""Tests of the augment stage and porescope.preprocessing.augmentation (tiny tiles, small sizes)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import Augmentor
import numpy as np
import pandas as pd
import pytest
import yaml
from Augmentor.Operations import Operation as AugOperation
from Augmentor.Operations import RotateRange, Zoom
from PIL import Image
from scipy import ndimage

from stages import augment as augment_stage
from stages import split as split_stage
from porescope.config import ParamsError, parse_group
from porescope.preprocessing import augmentation
from porescope.preprocessing.augmentation import (
    AugmentError,
    AugmentParams,
    LeakageError,
    assign_tiles,
    augment_pair,
    build_operations,
    channels_to_mask,
    dataset_name,
    draw_sample,
    effective_probability,
)
from porescope.io.tables import PipelineDataError

import ingest_layout

TILE = 32



def disks_mask(rng: np.random.Generator, shape: tuple[int, int], n: int, classes: int) -> np.ndarray:
    """Random disks (radius 3..7) of classes 1..classes-1 on background 0."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=np.uint8)
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(3, 7)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(1, classes)
    return mask


def write_ingested(root: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]],
                   classes: dict[str, str]) -> Path:
    """Ingest-layout folder of ``{source: (image, mask)}`` on the TILE grid."""
    return ingest_layout.write_ingested(root, pairs, tile=TILE, classes=classes)


def make_project(tmp_path: Path, n_classes: int = 2, n_sources: int = 5, seed: int = 0,
                 shows: int | None = None) -> Path:
    """Ingest + split folders. Image = scaled copy of one class of the mask: 200 where
    ``mask == shows``, or where ``mask > 0`` when ``shows`` is None, else 0; plus noise in 0..29
    (so that no two tiles are identical: identical tiles would join their sources in the split).

    Sources 'a0'.. : 'a0', 'a1', 'a2' train, 'a3' val, 'a4' test. Each 64 x 64 -> 4 tiles.
    The val/test mask rows of the tile stack are then overwritten with an undeclared class id:
    reading one would fail.
    """
    rng = np.random.default_rng(seed)
    pairs = {}
    for k in range(n_sources):
        mask = disks_mask(rng, (2 * TILE, 2 * TILE), 10, n_classes)
        shown = mask > 0 if shows is None else mask == shows
        noise = rng.integers(0, 30, size=mask.shape, dtype=np.uint8)
        pairs[f"a{k}"] = (shown.astype(np.uint8) * 200 + noise, mask)
    classes = {"0": "background", **{str(c): f"class{c}" for c in range(1, n_classes)}}
    ingested = write_ingested(tmp_path / "ingested", pairs, classes)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "split": {
        "method": "lists", "lists": {"train": ["a0", "a1", "a2"], "val": ["a3"], "test": ["a4"]}}}))
    split_stage.main(["--params", str(params), "--ingested", str(ingested), "--out", str(tmp_path / "split")])
    manifest = pd.read_csv(tmp_path / "split" / "tiles.csv", dtype={"tile_id": str})
    held_out = set(manifest.loc[manifest["split"] != "train", "tile_id"])
    edit_tile_rows(ingested, "masks", held_out, 99)
    return tmp_path


def edit_tile_rows(ingested: Path, kind: str, tile_ids: set[str], value: int) -> None:
    """Set every pixel of the tiles ``tile_ids`` in the ingest stack ``kind`` to ``value``."""
    ids = pd.read_csv(ingested / "tiles.csv", dtype={"tile_id": str})["tile_id"]
    stack = np.load(ingested / "tiles" / f"{kind}.npy")
    stack[ids.isin(tile_ids).to_numpy()] = value
    np.save(ingested / "tiles" / f"{kind}.npy", stack)


def ingested_tile(project: Path, kind: str, tile_id: str) -> np.ndarray:
    """A tile of the ingest stack ``kind``, found by its row in ingest's tiles.csv."""
    ids = pd.read_csv(project / "ingested" / "tiles.csv", dtype={"tile_id": str})["tile_id"].tolist()
    return np.load(project / "ingested" / "tiles" / f"{kind}.npy")[ids.index(tile_id)]


def run_augment(project: Path, out: str = "aug", seed: int = 0, **augment) -> Path:
    params = parse_group(AugmentParams, augment, group="augment")
    augmentation.run_augment(params, seed, project / "ingested", project / "split", project / out, progress=False)
    return project / out


def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def train_tiles(project: Path) -> pd.DataFrame:
    manifest = pd.read_csv(project / "split" / "tiles.csv", dtype={"tile_id": str})
    return manifest[manifest["split"] == "train"]


@pytest.fixture(scope="module")
def binary_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("binary"), n_classes=2)


@pytest.fixture(scope="module")
def three_class_fg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("three_fg"), n_classes=3, seed=1)


@pytest.fixture(scope="module")
def three_class_c2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same masks as ``three_class_fg`` (same seed); the image shows class 2 only."""
    return make_project(tmp_path_factory.mktemp("three_c2"), n_classes=3, seed=1, shows=2)


# --------------------------------------------------------------------------------------------
# determinism, naming, train only


def test_reruns_identical_for_any_worker_count_and_seed_matters(binary_project: Path) -> None:
    common = {"ops": "RDZF", "size": 24}
    one = folder_hashes(run_augment(binary_project, "w1", workers=1, **common))
    two = folder_hashes(run_augment(binary_project, "w2", workers=2, **common))
    again = folder_hashes(run_augment(binary_project, "w2b", workers=2, **common))
    three = folder_hashes(run_augment(binary_project, "w3", workers=3, **common))
    assert sorted(one) == ["dataset.json", "images.npy", "masks.npy", "samples.csv"]
    assert one == two == again == three
    other = run_augment(binary_project, "s1", seed=1, workers=2, **common)
    first = np.load(binary_project / "w1" / "images.npy")
    differing = (np.load(other / "images.npy") != first).any(axis=(1, 2))
    assert differing.sum() >= 20


def test_names_samples_and_dataset_json(binary_project: Path) -> None:
    out = run_augment(binary_project, "names", ops="RDZ", size=17, workers=2)
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images.npy", "masks.npy", "samples.csv"]
    samples = pd.read_csv(out / "samples.csv", dtype={"tile_id": str, "ops": str}, keep_default_na=False)
    assert samples["i"].tolist() == list(range(17))
    assert samples["sample_id"].tolist() == [f"RDZ17_{i:05d}" for i in range(17)]
    info = json.loads((out / "dataset.json").read_text())
    assert info["name"] == "RDZ17" and info["size"] == 17 and info["ops"] == "RDZ"
    assert info["seed"] == 0 and info["n_source_tiles"] == 12 and info["tile_size"] == TILE
    assert info["params"]["rotate"] == {"probability": 0.7, "max_left_rotation": 25, "max_right_rotation": 25}
    assert info["params"]["distort"] == {"probability": 0.9, "grid_width": 8, "grid_height": 8, "magnitude": 2}
    assert info["params"]["zoom"] == {"probability": 0.3, "min_factor": 1.1, "max_factor": 1.6}
    assert set(info["params"]) == {"rotate", "distort", "zoom"}
    for kind in ("images", "masks"):
        stack = np.load(out / f"{kind}.npy")
        assert stack.dtype == np.uint8 and stack.shape == (17, TILE, TILE)


def test_only_train_tiles_are_used(binary_project: Path) -> None:
    # val/test mask tiles are garbage in this fixture: reading one would raise
    out = run_augment(binary_project, "train_only", ops="RZ", size=30, workers=2)
    samples = pd.read_csv(out / "samples.csv", dtype={"tile_id": str})
    train = train_tiles(binary_project)
    assert set(samples["tile_id"]) == set(train["tile_id"])           # all 12, nothing else
    assert set(samples["source_id"]) == {"a0", "a1", "a2"}
    uses = samples["tile_id"].value_counts()
    assert uses.min() == 2 and uses.max() == 3                       # 30 = 12 * 2.5, balanced
    manifest = pd.read_csv(binary_project / "split" / "tiles.csv", dtype={"tile_id": str})
    augmentation.check_train_only(samples, manifest)
    val_tile = manifest.loc[manifest["split"] == "val", "tile_id"].iloc[0]
    bad = pd.concat([samples, pd.DataFrame({"tile_id": [val_tile]})], ignore_index=True)
    with pytest.raises(LeakageError, match=val_tile):
        augmentation.check_train_only(bad, manifest)


@pytest.mark.parametrize("params", [{"ops": "", "size": 50}, {"ops": "RDZ", "size": 0}])
def test_no_augmentation_copies_train_tiles(binary_project: Path, params: dict) -> None:
    out = run_augment(binary_project, "copy", workers=2, **params)
    train = train_tiles(binary_project).sort_values("tile_id")
    info = json.loads((out / "dataset.json").read_text())
    assert info["name"] == "orig12" and info["augmented"] is False and info["size"] == 12
    samples = pd.read_csv(out / "samples.csv", dtype={"tile_id": str, "ops": str}, keep_default_na=False)
    assert samples["tile_id"].tolist() == train["tile_id"].tolist()
    assert (samples["ops"] == "").all()
    assert samples["sample_id"].tolist() == [f"orig12_{i:05d}" for i in range(12)]
    for kind in ("images", "masks"):
        got = np.load(out / f"{kind}.npy")
        src = np.stack([ingested_tile(binary_project, kind, tid) for tid in train["tile_id"]])
        np.testing.assert_array_equal(got, src)  # row i = sample i = tile i in tile_id order


# --------------------------------------------------------------------------------------------
# masks: class ids, alignment, no boundary shift


def check_alignment(project: Path, out_name: str, n_classes: int, shown: set[int]) -> None:
    """Augment; the image thresholded at 115 (midway between the levels 0..29 and 200..229) must
    equal ``mask in shown`` except within 1 px of mask edges."""
    out = run_augment(project, out_name, ops="RDZF", size=40, workers=2)
    samples = pd.read_csv(out / "samples.csv", dtype={"tile_id": str}, keep_default_na=False)
    images, masks = np.load(out / "images.npy"), np.load(out / "masks.npy")
    changed = 0
    seen: set[int] = set()
    for file, tile_id, image, mask in zip(samples["sample_id"], samples["tile_id"], images, masks):
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        assert image.shape == mask.shape == (TILE, TILE)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(n_classes)), (file, values)
        seen |= values
        edge = ndimage.maximum_filter(mask, size=3) != ndimage.minimum_filter(mask, size=3)
        disagree = ((image >= 115) != np.isin(mask, list(shown))) & ~edge
        assert not disagree.any(), (file, int(disagree.sum()))
        src = ingested_tile(project, "masks", tile_id)
        changed += int((src != mask).any())
    assert seen == set(range(n_classes))
    assert changed >= 30           # the transforms did something


def test_binary_masks_exact_and_aligned(binary_project: Path) -> None:
    check_alignment(binary_project, "align", 2, {1})


def test_three_class_masks_exact_and_aligned(three_class_fg: Path, three_class_c2: Path) -> None:
    # same masks, same seed and tile ids -> same transforms: the foreground / background
    # boundaries are checked with one image, the class 1 / class 2 boundaries with the other
    check_alignment(three_class_fg, "align", 3, {1, 2})
    check_alignment(three_class_c2, "align", 3, {2})
    a = pd.read_csv(three_class_fg / "align" / "samples.csv")
    b = pd.read_csv(three_class_c2 / "align" / "samples.csv")
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(np.load(three_class_fg / "align" / "masks.npy"),
                                  np.load(three_class_c2 / "align" / "masks.npy"))


def test_no_spurious_class_on_a_0_2_boundary() -> None:
    # classes {0, 1, 2}; the mask only has 0 | 2 halves. Bicubic resampling passes through 1:
    mask = np.zeros((TILE, TILE), dtype=np.uint8)
    mask[:, TILE // 2:] = 2
    random.seed(3)
    raw = np.asarray(RotateRange(1, 25, 25).perform_operation([Image.fromarray(mask)])[0])
    assert np.isin(raw, [1]).any()               # Augmentor's own output has the in-between id
    ops = build_operations("RDZ", AugmentParams())
    for s in range(10):
        _, out, _ = augment_pair(mask, mask, ops, [True, True, True], (0, 1, 2), py_seed=s, np_seed=s)
        assert set(np.unique(out).tolist()) <= {0, 2}


def test_zoom_keeps_boundaries_in_place() -> None:
    # disk of radius 10 zoomed by f: area must scale by f^2; a half-pixel boundary bias would
    # change it by ~1/(10 f) = 4..7 %
    yy, xx = np.mgrid[:64, :64]
    disk = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 100).astype(np.uint8)
    image = disk * 200
    zoom = build_operations("Z", AugmentParams())
    for s in range(8):
        out_image, out_mask, drawn = augment_pair(image, disk, zoom, [True], (0, 1), s, s)
        f = drawn["zoom_factor"]
        assert 1.1 <= f <= 1.6
        assert out_mask.sum() / disk.sum() == pytest.approx(f * f, rel=0.03)
        # the recorded factor is the one applied: Augmentor's Zoom with min = max = f agrees
        ref = np.asarray(Zoom(1, f, f).perform_operation([Image.fromarray(image)])[0])
        np.testing.assert_array_equal(out_image, ref)


def test_channels_to_mask_thresholds_binary_at_half() -> None:
    s = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = channels_to_mask([s], (0, 1))
    np.testing.assert_array_equal(out, (s >= 128).astype(np.uint8))
    # three classes: scores 100 (c1), 120 (c2) -> background 35 -> class 2
    out = channels_to_mask([np.full((2, 2), 100, np.uint8), np.full((2, 2), 120, np.uint8)], (0, 3, 7))
    assert (out == 7).all()


# --------------------------------------------------------------------------------------------
# probabilities and seeds


class _Count(AugOperation):
    def __init__(self, probability: float) -> None:
        super().__init__(probability)
        self.calls = 0

    def perform_operation(self, images):  # noqa: ANN001, ANN201
        self.calls += 1
        return images


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_firing_rates_augmentor_rounds_up_ours_exact(p: float) -> None:
    n = 8000
    # Augmentor's own in-memory pipeline: round(uniform, 1) <= p
    counter = _Count(p)
    pipeline = Augmentor.DataPipeline([[np.zeros((2, 2), np.uint8)]])
    pipeline.add_operation(counter)
    random.seed(12345)
    pipeline.sample(n)
    augmentor_rate = counter.calls / n
    assert augmentor_rate == pytest.approx(p + 0.05, abs=0.015)      # 0.7 -> ~0.75
    assert effective_probability(p, "augmentor") == pytest.approx(p + 0.05)
    exact = np.mean([draw_sample(7, i, [p])[0][0] for i in range(n)])
    assert exact == pytest.approx(p, abs=0.015)
    compat = np.mean([draw_sample(7, i, [p], "augmentor")[0][0] for i in range(n)])
    assert compat == pytest.approx(augmentor_rate, abs=0.02)


def test_probability_zero_never_fires_in_exact_mode() -> None:
    assert not any(draw_sample(1, i, [0.0])[0][0] for i in range(2000))
    assert effective_probability(0.0, "augmentor") == pytest.approx(0.05)


def test_sample_draws_depend_only_on_seed_and_index() -> None:
    a = draw_sample(5, 17, [0.5, 0.5, 0.5])
    b = draw_sample(5, 17, [0.5, 0.5, 0.5])
    assert a[1:] == b[1:] and (a[0] == b[0]).all()
    assert draw_sample(5, 18, [0.5])[1:] != a[1:]
    assert draw_sample(6, 17, [0.5])[1:] != a[1:]
    idx = assign_tiles(7, 30, seed=2)
    np.testing.assert_array_equal(idx, assign_tiles(7, 30, seed=2))
    counts = np.bincount(idx, minlength=7)
    assert counts.min() == 4 and counts.max() == 5


def test_recorded_rotation_angles_are_in_range() -> None:
    rot = build_operations("R", AugmentParams())
    image = np.zeros((TILE, TILE), np.uint8)
    angles = [augment_pair(image, image, rot, [True], (0, 1), s, s)[2]["rotate_deg"] for s in range(200)]
    assert all(-25 <= a <= 25 for a in angles)
    assert min(angles) < -15 and max(angles) > 15


# --------------------------------------------------------------------------------------------
# errors


def _params(**group) -> AugmentParams:
    return parse_group(AugmentParams, group, group="augment")


def test_parameter_errors() -> None:
    assert dataset_name("rdz", 1000) == "RDZ1000"
    assert _params(ops=" rdz ").ops == "RDZ"
    with pytest.raises(ParamsError, match=r"augment\.ops: unknown operation letter\(s\) \['X'\]"):
        _params(ops="RX")
    with pytest.raises(ParamsError, match=r"augment\.ops: a letter is repeated"):
        _params(ops="RR")
    with pytest.raises(ParamsError, match=r"augment\.rotate\.max_left_rotation: expected a value <= 25"):
        _params(rotate={"max_left_rotation": 40})
    with pytest.raises(ParamsError, match=r"augment\.zoom\.factor: unknown parameter"):
        _params(zoom={"factor": 2})
    with pytest.raises(ParamsError, match=r"augment\.zoom\.min_factor: must be <= max_factor"):
        _params(zoom={"min_factor": 2.0, "max_factor": 1.5})
    with pytest.raises(ParamsError, match=r"augment\.distort\.probability: expected a value <= 1"):
        _params(distort={"probability": 1.5})


def test_param_typo_names_the_closest_key(tmp_path: Path) -> None:
    """A typo fails the stage before anything is read or written, naming the key it meant."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "augment": {"size": 10, "sise": 10}}))
    argv = ["--params", str(params), "--ingested", str(tmp_path / "none"), "--split", str(tmp_path / "none"),
            "--out", str(tmp_path / "aug")]
    with pytest.raises(ParamsError, match=r"augment\.sise: unknown parameter; did you mean 'augment\.size'\?"):
        augment_stage.main(argv)
    params.write_text(yaml.safe_dump({"seed": 0, "augment": {"rotate": {"probabilty": 0.5}}}))
    with pytest.raises(ParamsError, match=r"augment\.rotate\.probabilty: unknown parameter; "
                                          r"did you mean 'augment\.rotate\.probability'\?"):
        augment_stage.main(argv)
    assert not (tmp_path / "aug").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_train_mask_names_file_and_leaves_no_output(tmp_path: Path, workers: int) -> None:
    project = make_project(tmp_path, n_classes=2, n_sources=5, seed=3)
    tid = train_tiles(project)["tile_id"].iloc[1]
    edit_tile_rows(project / "ingested", "masks", {tid}, 7)
    with pytest.raises(AugmentError, match=rf"masks\.npy, row \d+ \(tile {tid}\): mask values \[7\]"):
        run_augment(project, "bad", ops="R", size=40, workers=workers)
    assert not (project / "bad").exists()
    assert not [p for p in project.iterdir() if p.name.startswith(".bad")]


def test_project_params_yaml_augment_group_is_accepted() -> None:
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["augment"]
    params = _params(**raw)
    assert params == AugmentParams()  # the dataclass defaults are the params.yaml values
    operations = build_operations(params.ops, params)
    assert len(operations) == len(params.ops) + ("F" in params.ops)   # F = two flips


def test_stack_out_of_step_with_tiles_csv_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, n_classes=2, n_sources=5, seed=4)
    stack = project / "ingested" / "tiles" / "images.npy"
    np.save(stack, np.load(stack)[:-1])  # one tile short: the rows no longer say which tile
    with pytest.raises(PipelineDataError, match=r"images\.npy: holds 19 tiles but its table has 20 rows"):
        run_augment(project, "short", ops="F", size=8, workers=1)
    assert not (project / "short").exists()


def test_train_tile_without_a_mask_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, n_classes=2, n_sources=5, seed=5)
    tid = train_tiles(project)["tile_id"].iloc[2]
    table = pd.read_csv(project / "ingested" / "tiles.csv", dtype=str, keep_default_na=False)
    table.loc[table["tile_id"] == tid, "mask_sha256"] = ""  # ingested without a mask
    table.to_csv(project / "ingested" / "tiles.csv", index=False)
    with pytest.raises(AugmentError, match=rf"tiles\.csv: train tile\(s\) \['{tid}'\] have no mask"):
        run_augment(project, "nomask", ops="F", size=8, workers=1)
