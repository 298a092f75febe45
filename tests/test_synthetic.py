"""Tests of the synthetic track-etched-membrane generator and its stage.

Known answers come from geometry, not from the generator's own output: an independent
full-grid rasteriser of the documented ellipse rule, the Boolean-model coverage formula,
the lens area of two shifted ellipses, 1/cos(theta) axis ratios, second-moment orientation.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import ndimage

from stages import synthesize as stage
from porescope.config import ParamsError, parse_group, to_mapping
from porescope.synthetic.params import SynthesizeParams
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import artefacts_off


# ------------------------------------------------------------------ helpers (independent)

def rasterise(pores: pd.DataFrame, shape, shift: bool = False) -> np.ndarray:
    """Full-grid union of the listed ellipses, pixel-centre rule of the module docs."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros(shape, bool)
    for p in pores.itertuples():
        def inside(cx, cy):
            th = math.radians(p.angle_deg)
            c, s = math.cos(th), math.sin(th)
            dx, dy = xx - cx, yy - cy
            return ((dx * c - dy * s) / (p.major / 2)) ** 2 + ((dx * s + dy * c) / (p.minor / 2)) ** 2 <= 1
        m = inside(p.x, p.y)
        if shift:
            m &= inside(p.x + p.core_dx, p.y + p.core_dy)
        out |= m
    return out


def one_pore(d, tilt=0.0, az=0.0, x=64.3, y=63.7, core_depth=0.8):
    """Pore table of a single track, built from the model's definitions."""
    t = math.radians(tilt)
    shift = core_depth * d * math.tan(t)
    return pd.DataFrame([dict(
        pore_id=0, x=x, y=y, diameter=d, major=d / math.cos(t), minor=d, angle_deg=az % 180,
        tilt_deg=tilt, azimuth_deg=az, core_dx=shift * math.cos(math.radians(az)),
        core_dy=-shift * math.sin(math.radians(az)))])


def small_params(**kw):
    p = dict(syn.DEFAULT_PARAMS, artefacts=artefacts_off())
    p.update(n_images=3, height=96, width=96, diameter_min_px=10.0, diameter_max_px=14.0,
             supersample=2, seed=5)
    p.update(kw)
    return p


# ------------------------------------------------------------------ truth and masks

def test_masks_truth_and_pore_table_are_consistent():
    spec = syn.MembraneSpec(height=160, width=192, porosity=0.25, mean_diameter_px=16,
                            databar_height_px=20, supersample=2)
    res = syn.synthesize_image(spec, np.random.default_rng(3))
    ha = spec.height - 20
    pores = res.pores
    assert list(pores.columns) == list(syn.PORE_COLUMNS)
    assert len(pores) == res.truth["n_drawn"] > 20

    # re-rasterising the listed ellipses reproduces both masks bit for bit
    ref_open = rasterise(pores, (spec.height, spec.width))
    ref_core = rasterise(pores, (spec.height, spec.width), shift=True)
    ref_open[ha:] = ref_core[ha:] = False
    np.testing.assert_array_equal(res.mask_opening, ref_open)
    np.testing.assert_array_equal(res.mask_core, ref_core)

    # porosity is the foreground fraction of the analysed region (data bar excluded)
    assert not res.mask_opening[ha:].any() and not res.mask_core[ha:].any()
    assert res.truth["analysed_height"] == ha
    assert res.truth["porosity"] == res.mask_opening[:ha].sum() / (ha * spec.width)
    assert res.truth["porosity_core"] == res.mask_core[:ha].sum() / (ha * spec.width)

    # count: centres in [-0.5, W-0.5) x [-0.5, Ha-0.5)
    inside = ((pores.x >= -0.5) & (pores.x < spec.width - 0.5)
              & (pores.y >= -0.5) & (pores.y < ha - 0.5))
    assert (pores.centre_inside == inside).all()
    assert res.truth["n_true"] == inside.sum()
    assert (pores.y[pores.centre_inside] < ha - 0.5).all()
    assert res.truth["density_px2"] == pytest.approx(inside.sum() / (ha * spec.width))
    cm2 = ha * spec.width * (25e-7) ** 2
    assert res.truth["density_cm2"] == pytest.approx(inside.sum() / cm2)
    assert res.truth["mean_area_px"] == pytest.approx(
        np.mean(np.pi / 4 * pores.major * pores.minor))

    # every counted pore's centre pixel is foreground; own-pixel counts are exact
    rows = np.floor(pores.y[inside] + 0.5).astype(int)
    cols = np.floor(pores.x[inside] + 0.5).astype(int)
    assert res.mask_opening[rows, cols].all()
    for p in pores.head(15).itertuples():
        own = rasterise(pores.iloc[[p.Index]], (spec.height, spec.width))
        assert p.n_pixels == own[:ha].sum()

    # every drawn pore reaches the image (bounding box overlaps it), tilted geometry holds
    hx = np.sqrt((pores.major / 2 * np.cos(np.radians(pores.angle_deg))) ** 2
                 + (pores.minor / 2 * np.sin(np.radians(pores.angle_deg))) ** 2)
    assert ((pores.x + hx >= -0.5) & (pores.x - hx <= spec.width - 0.5)).all()
    np.testing.assert_allclose(pores.major * np.cos(np.radians(pores.tilt_deg)), pores.minor)
    np.testing.assert_allclose(pores.angle_deg, pores.azimuth_deg % 180)


def test_core_mask_geometry():
    rng = np.random.default_rng(0)
    tilted = syn.MembraneSpec(height=128, width=128, porosity=0.2, mean_diameter_px=20,
                              tilt_distribution="fixed", tilt_max_deg=30.0)
    p = syn.sample_pores(tilted, rng)
    o, c = syn.opening_mask(p, (128, 128)), syn.core_mask(p, (128, 128))
    assert (c <= o).all() and c.sum() < 0.85 * o.sum()

    flat = syn.MembraneSpec(height=128, width=128, porosity=0.2, mean_diameter_px=20,
                            tilt_distribution="fixed", tilt_max_deg=0.0)
    p0 = syn.sample_pores(flat, rng)
    np.testing.assert_array_equal(syn.opening_mask(p0, (128, 128)), syn.core_mask(p0, (128, 128)))

    # single tilted pore: the core is the lens of two unit circles (in ellipse-normalised
    # coordinates) a distance delta = shift / a apart -> area a*b*(2 acos(delta/2) - delta/2 sqrt(4 - delta^2))
    d, tilt = 40.0, 35.0
    one = one_pore(d, tilt, az=120.0)
    a, b = one.major[0] / 2, d / 2
    delta = math.hypot(one.core_dx[0], one.core_dy[0]) / a
    lens = a * b * (2 * math.acos(delta / 2) - delta / 2 * math.sqrt(4 - delta ** 2))
    core_px = syn.core_mask(one, (128, 128)).sum()
    open_px = syn.opening_mask(one, (128, 128)).sum()
    assert core_px == pytest.approx(lens, rel=0.02)
    assert open_px == pytest.approx(math.pi * a * b, rel=0.01)


def test_realised_porosity_tracks_boolean_target():
    for target in (0.05, 0.20, 0.35):
        spec = syn.MembraneSpec(height=256, width=256, porosity=target, mean_diameter_px=15)
        phis, areas = [], []
        for seed in range(10):
            p = syn.sample_pores(spec, np.random.default_rng(seed))
            phis.append(syn.opening_mask(p, (256, 256)).mean())
            areas.append(p.area.to_numpy())
        assert abs(np.mean(phis) - target) < 0.02, (target, np.mean(phis))
    # E[A] of the Boolean model vs the areas actually drawn (independent of coverage)
    assert np.concatenate(areas).mean() == pytest.approx(syn.expected_opening_area(spec), rel=0.02)
    # the uniform tilt law: E[sec] = ln(sec m + tan m) / m, checked against a plain average
    uni = syn.MembraneSpec(mean_diameter_px=20, diameter_cv=0.0, tilt_distribution="uniform",
                           tilt_max_deg=50.0)
    t = np.radians(np.linspace(0, 50, 200001))
    assert syn.expected_opening_area(uni) == pytest.approx(math.pi / 4 * 400 * np.mean(1 / np.cos(t)), rel=1e-6)


def test_isolated_pores_have_axis_ratio_sec_theta_and_documented_angle():
    tilt = 35.0
    spec = syn.MembraneSpec(height=384, width=384, porosity=0.06, mean_diameter_px=30,
                            diameter_cv=0.05, tilt_distribution="fixed", tilt_max_deg=tilt,
                            azimuth_spread_deg=60.0)
    ratios, angle_err = [], []
    for seed in range(3):
        p = syn.sample_pores(spec, np.random.default_rng(seed))
        mask = syn.opening_mask(p, (384, 384))
        lab, _ = ndimage.label(mask)
        xy = p[["x", "y"]].to_numpy()
        for q in p[p.centre_inside].itertuples():
            dist = np.hypot(*(xy - [q.x, q.y]).T)
            if np.sort(dist)[1] < 2 * q.major + 2:  # a neighbour could touch it
                continue
            region = lab == lab[int(round(q.y)), int(round(q.x))]
            rr, cc = np.nonzero(region)
            if rr.min() == 0 or cc.min() == 0 or rr.max() == 383 or cc.max() == 383:
                continue
            # second moments in a y-up frame: orientation counter-clockwise on screen
            x, yu = cc - cc.mean(), -(rr - rr.mean())
            cov = np.cov(np.vstack([x, yu]))
            ev = np.linalg.eigvalsh(cov)
            ratios.append(math.sqrt(ev[1] / ev[0]))
            ang = 0.5 * math.degrees(math.atan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])) % 180
            angle_err.append(abs((ang - q.angle_deg + 90) % 180 - 90))
    assert len(ratios) >= 8
    assert np.mean(ratios) == pytest.approx(1 / math.cos(math.radians(tilt)), rel=0.02)
    assert np.median(angle_err) < 3.0


# ------------------------------------------------------------------ rendering

def test_rendered_edge_is_centred_on_the_mask_boundary():
    # without a ring, the blurred dark area equals the analytic opening area (no edge bias)
    for d in (15.0, 40.0):
        spec = syn.MembraneSpec(height=128, width=128, porosity=0.0,
                                appearance=syn.Appearance.clean(rim_strength=0.0, blur_sigma_px=1.0,
                                                                surface_level=150.0, core_level=10.0))
        img = syn.render_sem(spec, one_pore(d), np.random.default_rng(0)).astype(float)
        dark = (150.0 - img) / 140.0
        assert dark.sum() == pytest.approx(math.pi * d * d / 4, rel=0.012)
        # ... and sits where the mask does: its centroid is the pore centre (pixel-centre origin)
        yy, xx = np.mgrid[0:128, 0:128]
        assert (dark * xx).sum() / dark.sum() == pytest.approx(64.3, abs=0.02)
        assert (dark * yy).sum() / dark.sum() == pytest.approx(63.7, abs=0.02)

    # the bright ring lies outside the opening: unblurred, pixels entirely inside show the
    # core level exactly. Its light (image with ring minus image without) follows the
    # documented profile g(t) = (exp(-t^2 / 2w^2) - e^-4.5) / (1 - e^-4.5), 0 <= t < 3w, outside
    # the rim: total light and mean distance t predicted by integrating g over the circle
    # (radius d/2 + t); the symmetric beam blur keeps the first moment.
    w = 1.0
    tt = np.linspace(0.0, 3.0 * w, 30001)
    g = (np.exp(-0.5 * (tt / w) ** 2) - math.exp(-4.5)) / (1 - math.exp(-4.5))
    for d in (15.0, 40.0):
        pore = one_pore(d)
        yy, xx = np.mgrid[0:128, 0:128]
        t = np.hypot(xx - pore.x[0], yy - pore.y[0]) - d / 2  # signed distance to the rim
        sharp = syn.MembraneSpec(height=128, width=128, porosity=0.0, appearance=syn.Appearance.clean(
            rim_strength=80.0, rim_width_px=w, blur_sigma_px=0.0, core_level=10.0))
        img = syn.render_sem(sharp, pore, np.random.default_rng(0))
        assert (img[t < -0.75] == 10).all()
        assert img[(t > 0.75) & (t < 1.25)].mean() > 125 + 0.5 * 80 * math.exp(-0.5 * 1.25 ** 2)
        weight = g * 2 * math.pi * (d / 2 + tt)
        expected_light = 60.0 * np.trapezoid(weight, tt)
        expected_moment = np.trapezoid(weight * tt, tt) / np.trapezoid(weight, tt)
        for blur in (0.0, 0.8):
            imgs = [syn.render_sem(syn.MembraneSpec(
                height=128, width=128, porosity=0.0, appearance=syn.Appearance.clean(
                    rim_strength=rim, rim_width_px=w, blur_sigma_px=blur, core_level=10.0)),
                pore, np.random.default_rng(0)).astype(float) for rim in (60.0, 0.0)]
            light = imgs[0] - imgs[1]
            assert light.sum() == pytest.approx(expected_light, rel=0.02)
            assert (light * t).sum() / light.sum() == pytest.approx(expected_moment, abs=0.06)


def test_rim_brighter_than_surface_brighter_than_interior():
    params = dict(syn.DEFAULT_PARAMS, n_images=4, height=192, width=192,
                  porosity_min=0.08, porosity_max=0.15)
    for k, spec in enumerate(syn.dataset_specs(params, 11)):
        res = syn.synthesize_image(spec, syn.image_rng(11, k))
        img = res.image.astype(float)
        out_dist = ndimage.distance_transform_edt(~res.mask_opening)
        surface = np.median(img[out_dist > 0.6 * spec.mean_diameter_px + 4])
        ring = max(img[(out_dist > lo) & (out_dist <= lo + 1)].mean() for lo in (0, 1, 2))
        interior = img[ndimage.binary_erosion(res.mask_core, iterations=2)].mean()
        assert ring > surface + 10, (k, ring, surface)
        assert interior < surface - 50, (k, interior, surface)


def test_crescent_lies_opposite_to_the_azimuth():
    spec = syn.MembraneSpec(height=128, width=128, porosity=0.0,
                            appearance=syn.Appearance.clean(crescent_level=230.0, core_level=5.0))
    pore = one_pore(40.0, tilt=40.0, az=0.0)  # track goes deeper towards +x
    img = syn.render_sem(spec, pore, np.random.default_rng(0)).astype(float)
    wall = syn.opening_mask(pore, img.shape) & ~syn.core_mask(pore, img.shape)
    cols = np.nonzero(wall)[1]
    assert cols.mean() < pore.x[0] - 5  # wall on the -x side
    assert img[wall].mean() > img[syn.core_mask(pore, img.shape)].mean() + 40


# ------------------------------------------------------------------ determinism

def test_determinism_and_independence_of_dataset_size():
    p3 = dict(syn.DEFAULT_PARAMS, n_images=3, height=96, width=96)
    p6 = dict(p3, n_images=6)
    s3, s6 = syn.dataset_specs(p3, 9), syn.dataset_specs(p6, 9)
    assert s3 == s6[:3]
    a = syn.synthesize_image(s3[2], syn.image_rng(9, 2))
    b = syn.synthesize_image(s6[2], syn.image_rng(9, 2))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask_opening, b.mask_opening)
    pd.testing.assert_frame_equal(a.pores, b.pores)
    c = syn.synthesize_image(s3[2], syn.image_rng(10, 2))
    assert not np.array_equal(a.image, c.image) and not a.pores.equals(c.pores)
    assert syn.dataset_specs(p3, 10) != s3


def test_dataset_specs_spread_targets_over_the_ranges():
    params = dict(syn.DEFAULT_PARAMS, artefacts=artefacts_off())
    specs = syn.dataset_specs(params, 1)
    phi = np.sort([s.porosity for s in specs])
    dia = np.sort([s.mean_diameter_px for s in specs])
    n = len(specs)
    assert n == 24
    assert phi[0] >= 0.03 and phi[-1] <= 0.35 and dia[0] >= 15 and dia[-1] <= 40
    assert np.diff(np.r_[0.03, phi, 0.35]).max() < 2.2 / n * 0.32
    assert np.diff(np.r_[15, dia, 40]).max() < 2.2 / n * 25
    assert len({round(s.azimuth_deg, 6) for s in specs}) == n
    assert all(s.databar_height_px == 0 for s in specs)  # off by default


def test_databar_is_drawn_and_excluded():
    spec = syn.MembraneSpec(height=200, width=256, porosity=0.2, mean_diameter_px=18,
                            databar_height_px=30, supersample=2)
    res = syn.synthesize_image(spec, np.random.default_rng(4))
    bar = res.image[170:]
    assert bar.max() == 255 and np.median(bar) < 15
    assert res.truth["n_true"] == int((res.pores.y < 169.5).sum() - (res.pores.y < -0.5).sum()
                                      - ((res.pores.y < 169.5) & ((res.pores.x < -0.5) | (res.pores.x >= 255.5))
                                         & (res.pores.y >= -0.5)).sum())


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="porosity"):
        syn.MembraneSpec(porosity=1.2)
    with pytest.raises(ValueError, match="tilt_distribution"):
        syn.MembraneSpec(tilt_distribution="gauss")
    with pytest.raises(ValueError, match="blur_sigma_px"):
        syn.Appearance(blur_sigma_px=-1)


# ------------------------------------------------------------------ stage

def write_params(path: Path, group: dict) -> Path:
    g = dict(group)
    seed = g.pop("seed")
    path.write_text(yaml.safe_dump({"seed": seed, "synthesize": g}), encoding="utf-8")
    return path


def test_stage_writes_documented_files_reproducibly(tmp_path):
    params = write_params(tmp_path / "params.yaml", small_params())
    out = tmp_path / "synthetic"
    assert stage.main(["--params", str(params), "--out", str(out)]) == 0
    ids = ["mem_000", "mem_001", "mem_002"]
    for sub in ("images", "masks", "masks_alt"):
        assert sorted(f.stem for f in (out / sub).iterdir()) == ids
    truth = pd.read_csv(out / "truth.csv")
    pores = pd.read_csv(out / "pores.csv")
    assert list(truth.image_id) == ids and (truth.mask_convention == "opening").all()
    assert list(pores.columns) == ["image_id", *syn.PORE_COLUMNS]
    for row in truth.itertuples():
        img = cv2.imread(str(out / "images" / f"{row.image_id}.png"), cv2.IMREAD_UNCHANGED)
        m = cv2.imread(str(out / "masks" / f"{row.image_id}.png"), cv2.IMREAD_UNCHANGED)
        alt = cv2.imread(str(out / "masks_alt" / f"{row.image_id}.png"), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape == (96, 96) and m.shape == (96, 96)
        assert set(np.unique(m)) <= {0, 255} and set(np.unique(alt)) <= {0, 255}
        assert (m == 255).mean() == row.porosity and (alt == 255).mean() == row.porosity_core
        assert ((alt == 255) <= (m == 255)).all()
        mine = pores[pores.image_id == row.image_id]
        assert len(mine) == row.n_drawn and mine.centre_inside.sum() == row.n_true
        np.testing.assert_array_equal(rasterise(mine, (96, 96)), m == 255)

    # same params -> byte-identical files, whatever the worker count
    out2 = tmp_path / "again"
    params2 = write_params(tmp_path / "p2.yaml", small_params(workers=2))
    stage.main(["--params", str(params2), "--out", str(out2)])
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out2) for p in out2.rglob("*") if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (out2 / f).read_bytes(), f

    # the core convention swaps the two mask folders
    out3 = tmp_path / "core"
    stage.main(["--params", str(write_params(tmp_path / "p3.yaml", small_params(mask="core"))),
                "--out", str(out3)])
    assert (out3 / "masks" / "mem_001.png").read_bytes() == (out / "masks_alt" / "mem_001.png").read_bytes()
    assert (out3 / "masks_alt" / "mem_001.png").read_bytes() == (out / "masks" / "mem_001.png").read_bytes()


@pytest.mark.parametrize("change, key", [
    ({"porosity_max": 1.5}, "synthesize.porosity_max"),
    ({"diameter_max_px": 5.0}, "synthesize.diameter_max_px"),
    ({"mask": "rim"}, "synthesize.mask"),
    ({"height": 12.5}, "synthesize.height"),
    ({"appearance": {**syn.DEFAULT_PARAMS["appearance"], "blur_sigma_px": [1.0, 0.5]}},
     "synthesize.appearance.blur_sigma_px"),
    ({"colour": 3}, "synthesize.colour"),
])
def test_stage_rejects_bad_params_without_output(tmp_path, change, key):
    params = write_params(tmp_path / "params.yaml", small_params(**change))
    out = tmp_path / "synthetic"
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        stage.main(["--params", str(params), "--out", str(out)])
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_stage_rejects_a_typo_naming_the_closest_key(tmp_path):
    group = small_params()
    group["core_dpth"] = group.pop("core_depth")
    params = write_params(tmp_path / "params.yaml", group)
    with pytest.raises(ParamsError, match=r"synthesize\.core_dpth: unknown parameter; "
                                          r"did you mean 'synthesize\.core_depth'\?"):
        stage.main(["--params", str(params), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
    group = small_params()
    group["appearance"] = {"core_levl": [0, 10]}
    params = write_params(tmp_path / "params.yaml", group)
    with pytest.raises(ParamsError, match=r"synthesize\.appearance\.core_levl: unknown parameter; "
                                          r"did you mean 'synthesize\.appearance\.core_level'\?"):
        stage.main(["--params", str(params), "--out", str(tmp_path / "x")])


def test_params_defaults_are_the_params_yaml_values():
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["synthesize"]
    assert parse_group(SynthesizeParams, {}, group="synthesize") == parse_group(
        SynthesizeParams, raw, group="synthesize")
    assert to_mapping(SynthesizeParams()) == syn.DEFAULT_PARAMS
    # a missing key takes the default
    assert parse_group(SynthesizeParams, {"n_images": 2}, group="synthesize").core_depth == 0.8
