"""Offline DVC plots: the inlined-Vega template, image embedding, and a real headless Chromium.

A throw-away git + DVC project (two commits, tags v1 and v2) declares a dvclive-style loss TSV
as a top-level plot (x = step, y = train_loss and val_loss) and a 64 x 64 PNG as an image plot.
Its ``.dvc/config`` points ``plots.html_template`` at a copy of the template at the same
relative path as in this repository, so DVC picks the template up exactly as it does here.

Chromium checks (skipped when no ``chromium`` binary is installed; Debian: ``apt-get install
-y chromium``) load the pages through ``file://`` with DNS and proxying pointed at nowhere and
read the screenshots' pixels:

* DVC's Vega-Lite line template draws the first revision in ``#945dd6`` and the second in
  ``#13adc7`` (``dvc_render.vega.OPTIONAL_ANCHOR_RANGES``); those colours appear only if Vega
  ran, and the training curve (loss decreasing with step) must descend left to right;
* the image plots are solid pure red (v1) / pure blue (v2) 64 x 64 PNGs, shown at natural size
  with a device scale factor of 1, so exactly 64 * 64 = 4096 pixels of that colour appear iff
  the image loaded;
* controls: DVC's own CDN page under the same conditions shows no curve pixels (blank), and an
  un-embedded page moved away from its ``static/`` folder shows no image pixels.

Set ``PORESCOPE_SCREENSHOT_DIR`` to keep the screenshots for inspection.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from porescope.report.offline_html import (
    OFFLINE_TEMPLATE,
    embed_images,
    find_remote_resources,
    run_dvc_plots,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = OFFLINE_TEMPLATE.parent
# The value of plots.html_template: DVC joins a relative path to the .dvc folder.
CONFIG_VALUE = "../porescope/report/resources/vega/offline_template.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary: install Debian's `apt-get install -y chromium` to run the "
    "headless rendering checks",
)

PURPLE = (0x94, 0x5D, 0xD6)  # DVC line colour of the first revision
CYAN = (0x13, 0xAD, 0xC7)  # ... of the second revision
RED, BLUE = (255, 0, 0), (0, 0, 255)
IMAGE_SIDE = 64
DVC = [sys.executable, "-m", "dvc"]
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    **{f"GIT_{who}_{what}": "toy" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")},
}


# --------------------------------------------------------------------------- helpers


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _write_loss(path: Path, a: float, tau: float, offset: float) -> None:
    steps = np.arange(20)
    train = a * np.exp(-steps / tau) + offset
    val = a * np.exp(-steps / (tau * 1.2)) + 2 * offset
    rows = ["timestamp\tstep\ttrain_loss\tval_loss"]
    rows += [
        f"{1_700_000_000 + 60 * s}\t{s}\t{t:.5f}\t{v:.5f}" for s, t, v in zip(steps, train, val)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _write_square(path: Path, rgb: tuple[int, int, int]) -> None:
    Image.fromarray(np.full((IMAGE_SIDE, IMAGE_SIDE, 3), rgb, np.uint8)).save(path)


# No network: every host name fails to resolve, and every fetch, loopback included, is sent
# to a proxy on the discard port where nothing listens.
NO_NETWORK = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]


def screenshot(
    page: Path, png: Path, size: tuple[int, int] = (1200, 900), network: bool = False
) -> np.ndarray:
    """Render ``page`` in headless Chromium, by default with the network unreachable; RGB."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}",
            *([] if network else NO_NETWORK),
            "--force-device-scale-factor=1", "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=5000",
            f"--screenshot={png}", page.as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr}"
    keep = os.environ.get("PORESCOPE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return np.asarray(Image.open(png).convert("RGB"))


def inlined_bundles(template: str) -> list[tuple[str, str, str]]:
    """(package, version, script body) of each library inlined by build_template.py."""
    return re.findall(r"<script>/\* ([\w-]+)@([\d.]+) \*/\n(.*?)\n</script>", template, re.S)


def colour_mask(rgb: np.ndarray, colour: tuple[int, int, int], tol: int) -> np.ndarray:
    return (np.abs(rgb.astype(int) - np.array(colour)) <= tol).all(axis=-1)


def exact_count(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(colour_mask(rgb, colour, 0).sum())


def descent(mask: np.ndarray) -> float:
    """Rows the lowest drawn line drops from the left tenth to the right tenth of its span.

    Takes the longest run of adjacent columns holding the colour (the plot, not the legend
    swatch), and in each column the bottom-most pixel of that colour (the lower, solid
    train-loss curve). Positive = the curve descends on screen = the value decreases.
    """
    cols = np.flatnonzero(mask.any(axis=0))
    assert cols.size, "colour absent"
    breaks = np.flatnonzero(np.diff(cols) > 3)
    runs = np.split(cols, breaks + 1)
    span = max(runs, key=len)
    bottom = np.array([np.flatnonzero(mask[:, c]).max() for c in span])
    k = max(1, len(span) // 10)
    return float(bottom[-k:].mean() - bottom[:k].mean())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two-commit toy DVC project (tags v1, v2) configured like porescope."""
    root = tmp_path_factory.mktemp("toy")
    _run(["git", "init", "-q"], root)
    _run([*DVC, "init", "-q"], root)
    _run([*DVC, "config", "core.analytics", "false"], root)
    dest = root / "porescope" / "report" / "resources" / "vega"
    dest.mkdir(parents=True)
    shutil.copy(OFFLINE_TEMPLATE, dest / OFFLINE_TEMPLATE.name)
    _run([*DVC, "config", "plots.html_template", CONFIG_VALUE], root)
    (root / "logs").mkdir()
    (root / "plots").mkdir()
    (root / "dvc.yaml").write_text(
        "plots:\n"
        "  - logs/loss.tsv:\n"
        "      x: step\n"
        "      y: [train_loss, val_loss]\n"
        "  - plots/overlay.png\n",
        encoding="utf-8",
    )
    _write_loss(root / "logs" / "loss.tsv", a=2.0, tau=5.0, offset=0.1)
    _write_square(root / "plots" / "overlay.png", RED)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "v1"], root)
    _run(["git", "tag", "v1"], root)
    _write_loss(root / "logs" / "loss.tsv", a=1.5, tau=3.0, offset=0.05)
    _write_square(root / "plots" / "overlay.png", BLUE)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "v2"], root)
    _run(["git", "tag", "v2"], root)
    return root


@pytest.fixture(scope="module")
def pages(project, tmp_path_factory) -> dict[str, Path]:
    """DVC's pages: through the config template, and DVC's own CDN page as the control."""
    from dvc_render.html import PAGE_HTML  # DVC's built-in page: same as no template at all

    cdn_template = tmp_path_factory.mktemp("cdn") / "dvc_default.html"
    cdn_template.write_text(PAGE_HTML, encoding="utf-8")
    return {
        "offline": run_dvc_plots(project, out_dir="out_offline", embed=False),
        "cdn": run_dvc_plots(project, out_dir="out_cdn", template=cdn_template, embed=False),
    }


# --------------------------------------------------------------------------- template


def test_template_is_what_versions_txt_records():
    text = OFFLINE_TEMPLATE.read_text(encoding="utf-8")
    assert OFFLINE_TEMPLATE.stat().st_size < 2_000_000
    assert text.count("{plot_divs}") == 1
    # dvc-render pours its CDN <script src> tags into a "{scripts}" marker: it must be absent
    assert "{scripts}" not in text
    assert find_remote_resources(text) == []

    records = {}
    for line in (TEMPLATE_DIR / "VERSIONS.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, version, _, sha, _ = line.split()
            records[name] = (version, sha)
    assert records["offline_template.html"][1] == hashlib.sha256(text.encode()).hexdigest()

    # each inlined bundle, cut back out of the page, hashes to the recorded npm file
    bodies = inlined_bundles(text)
    assert [b[0] for b in bodies] == ["vega", "vega-lite", "vega-embed"]
    for name, version, body in bodies:
        assert records[name] == (version, hashlib.sha256(body.encode()).hexdigest()), name
        licence = (TEMPLATE_DIR / f"LICENSE.{name}.txt").read_text(encoding="utf-8")
        assert "Redistribution and use in source and binary forms" in licence
        assert licence.strip() in text, f"{name} licence text not carried in the page"


def test_repo_config_points_at_template():
    from configobj import ConfigObj

    config = REPO_ROOT / ".dvc" / "config"
    assert config.is_file(), f"{config} missing: dvc plots would use DVC's CDN page"
    value = ConfigObj(str(config)).get("plots", {}).get("html_template")
    # unset, dvc plots silently falls back to DVC's own page, which loads vega from a CDN
    assert value is not None, "plots.html_template is not set in .dvc/config"
    resolved = Path(os.path.join(REPO_ROOT / ".dvc", value)).resolve()  # as dvc/commands/plots.py
    assert resolved == OFFLINE_TEMPLATE


# --------------------------------------------------------------------------- dvc plots show


def test_show_page_loads_nothing_remote(pages):
    offline = pages["offline"].read_text(encoding="utf-8")
    assert find_remote_resources(offline) == []
    assert not re.search(r"<script[^>]+src\s*=\s*[\"']?(https?:)?//", offline, re.I)
    assert "vega-lite@5.23.0" in offline  # the config template, not DVC's page, was used
    # the control proves the check can fail: DVC's page pulls all three from the CDN
    cdn = find_remote_resources(pages["cdn"].read_text(encoding="utf-8"))
    assert len(cdn) == 3 and all("cdn.jsdelivr.net" in url for url in cdn)


@needs_chromium
def test_show_renders_offline_and_default_page_is_blank(pages, tmp_path):
    offline = screenshot(pages["offline"], tmp_path / "show_offline.png")
    cdn = screenshot(pages["cdn"], tmp_path / "show_cdn_default.png")

    curve = colour_mask(offline, PURPLE, tol=40)
    assert curve.sum() > 500, f"only {curve.sum()} curve pixels: Vega did not draw"
    assert descent(curve) > 100  # loss falls from ~2.1 to ~0.15: the curve drops on screen
    assert exact_count(offline, BLUE) == IMAGE_SIDE**2  # workspace image, linked via static/

    assert colour_mask(cdn, PURPLE, tol=40).sum() == 0, "CDN page drew a curve without network"
    # ...for want of Vega only: the same screenshot still shows the linked image
    assert exact_count(cdn, BLUE) == IMAGE_SIDE**2


@needs_chromium
def test_harness_really_cuts_the_network(pages, tmp_path):
    """DVC's CDN page with the CDN replaced by a local HTTP server holding the same three
    libraries: it draws when the network is allowed and stays blank under NO_NETWORK, so the
    blank control above is due to the missing network (not, e.g., to DVC's old pins)."""
    libs = tmp_path / "cdn"
    libs.mkdir()
    text = OFFLINE_TEMPLATE.read_text(encoding="utf-8")
    for name, _, body in inlined_bundles(text):
        (libs / f"{name}.js").write_text(body, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(libs), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        local = f"http://127.0.0.1:{server.server_address[1]}"
        page = pages["cdn"].with_name("local_cdn.html")  # beside static/, so the image loads
        html_text = pages["cdn"].read_text(encoding="utf-8")
        html_text = re.sub(
            r"https://cdn\.jsdelivr\.net/npm/([\w-]+)@[\d.]+", local + r"/\1.js", html_text
        )
        page.write_text(html_text, encoding="utf-8")
        online = screenshot(page, tmp_path / "local_cdn_online.png", network=True)
        offline = screenshot(page, tmp_path / "local_cdn_no_network.png")
    finally:
        server.shutdown()
        server.server_close()
    assert colour_mask(online, PURPLE, tol=40).sum() > 500
    assert colour_mask(offline, PURPLE, tol=40).sum() == 0
    assert exact_count(offline, BLUE) == IMAGE_SIDE**2  # the page itself did load


@needs_chromium
def test_embedded_page_works_alone(project, pages, tmp_path):
    alone = embed_images(pages["offline"], tmp_path / "mailed" / "plots.html")
    text = alone.read_text(encoding="utf-8")
    assert "static/" not in re.sub(r"<script>.*?</script>", "", text, flags=re.S)
    src = re.search(r'<img src="data:image/png;base64,([^"]+)"', text).group(1)
    assert base64.b64decode(src) == (project / "plots" / "overlay.png").read_bytes()

    shot = screenshot(alone, tmp_path / "show_embedded_moved.png")
    assert exact_count(shot, BLUE) == IMAGE_SIDE**2
    assert colour_mask(shot, PURPLE, tol=40).sum() > 500

    # control: DVC's page moved without its static/ folder loses the image
    moved = tmp_path / "moved_raw" / "plots.html"
    moved.parent.mkdir()
    shutil.copy(pages["offline"], moved)
    assert exact_count(screenshot(moved, tmp_path / "show_raw_moved.png"), BLUE) == 0


# --------------------------------------------------------------------------- dvc plots diff


@needs_chromium
def test_diff_between_commits_renders_offline_alone(project, tmp_path):
    page = run_dvc_plots(project, ["v1", "v2"], out_dir="out_diff")  # config template + embed
    text = page.read_text(encoding="utf-8")
    assert find_remote_resources(text) == []
    assert text.count('<img src="data:image/png;base64,') == 2

    alone = tmp_path / "mailed" / "diff.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    shot = screenshot(alone, tmp_path / "diff_embedded_moved.png")
    assert exact_count(shot, RED) == IMAGE_SIDE**2  # v1 image
    assert exact_count(shot, BLUE) == IMAGE_SIDE**2  # v2 image
    for colour in (PURPLE, CYAN):  # one line colour per revision
        mask = colour_mask(shot, colour, tol=40)
        assert mask.sum() > 500, f"revision curve {colour} missing"
        assert descent(mask) > 100


def test_diff_page_without_chromium_is_self_contained(project):
    page = run_dvc_plots(project, ["v1", "v2"], out_dir="out_diff_static")
    text = page.read_text(encoding="utf-8")
    assert find_remote_resources(text) == []
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    colours = sorted(
        tuple(int(v) for v in np.asarray(Image.open(io.BytesIO(base64.b64decode(b))))[0, 0])
        for b in images
    )
    assert colours == sorted([BLUE, RED])


# --------------------------------------------------------------------------- embed_images


def _page(body: str) -> str:
    script = "<script>var s = '<img src=\"x.png\">';</script>"
    return f"<!DOCTYPE html><html><head>{script}</head><body>{body}</body></html>"


def _png(path: Path, rgb=(10, 20, 30)) -> bytes:
    _write_square(path, rgb)
    return path.read_bytes()


def test_embed_rewrites_links_and_types_dvc_inline_images(tmp_path):
    (tmp_path / "static").mkdir()
    data = _png(tmp_path / "static" / "a b.png")
    untyped = base64.b64encode(data).decode()
    typed_gif = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    html_path = tmp_path / "index.html"
    html_path.write_text(
        _page(f'<img src="static/a b.png"><img src=\'data:image;base64,{untyped}\'>'
              f'<img alt="x" src="{typed_gif}" />'),
        encoding="utf-8",
    )
    out = embed_images(html_path, tmp_path / "out.html")
    text = out.read_text(encoding="utf-8")
    uris = re.findall(r"""src=["']([^"']+)["']""", text)
    assert uris[0] == "x.png"  # markup inside <script> is not touched
    assert uris[1] == uris[2] == f"data:image/png;base64,{untyped}"
    assert uris[3] == typed_gif
    assert html_path.read_text(encoding="utf-8") != text  # the input is kept when out_path given


def test_embed_errors_name_the_file_and_leave_output_alone(tmp_path):
    html_path = tmp_path / "index.html"
    out = tmp_path / "out.html"
    out.write_text("previous", encoding="utf-8")

    html_path.write_text(_page('<img src="static/missing.png">'), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"index\.html.*static/missing\.png"):
        embed_images(html_path, out)

    html_path.write_text(_page('<img src="https://example.org/a.png">'), encoding="utf-8")
    with pytest.raises(ValueError, match="not a local file"):
        embed_images(html_path, out)

    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    html_path.write_text(_page('<img src="notes.txt">'), encoding="utf-8")
    with pytest.raises(ValueError, match="not a recognised image"):
        embed_images(html_path, out)

    with pytest.raises(FileNotFoundError, match="plots HTML not found"):
        embed_images(tmp_path / "nope.html", out)
    assert out.read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "notes.txt", "out.html"]


def test_run_dvc_plots_reports_missing_page(project, tmp_path):
    with pytest.raises(RuntimeError, match="wrote no"):
        run_dvc_plots(project, targets=["no/such/plot.tsv"], out_dir=tmp_path / "none")
