"""Hostile files and killed runs (issue 14): one test per case.

Images: a size limit read from the header before decoding (decompression bombs, oversize
JPEG/TIFF headers), the format check reads only the first bytes (a huge sparse file), and every
decoder failure (truncated, garbage, empty, OpenCV's own refusal) is one error naming the file.
Runs: temporary outputs do not survive SIGTERM or a ``kill -9`` (the next run removes them), one
stage writes in a workspace at a time, and a stage whose ``dvc`` parent died stops itself.

Measure: every file is checked up front and the good ones are measured when some are bad
(listed in ``run.json`` and the report), ``--overwrite`` replaces only a folder holding the
porescope marker, symlinks out of the input folder are not followed, a missing model fails
even without images. Ingest: its own ``max_pixels``, checked before a file is read whole.

The image tests use only what the old ``read_image``/``decode_image``/``IngestError`` offered,
so they run (and fail) against the code before the fix too.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from porescope.io import images
from porescope.io.images import decode_image, read_image
from porescope.io.pairing import IngestError
from test_imageio import _enc, _tiff

ROOT = Path(__file__).resolve().parents[1]
BOMB = 30000  # px per side: 900 Mpx, more than the 400 Mpx default limit


# ------------------------------------------------------------------------------- helpers
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_idat(width: int, height: int, rows: int = 100) -> bytes:
    """zlib stream of ``height`` all-zero 8-bit rows (filter byte + ``width`` zeros), built from
    one compressed block repeated (full flushes make the blocks independent), so a 900 MB
    image costs a second to make and under 1 MB to store."""
    block = bytes((width + 1) * rows)
    comp = zlib.compressobj(9)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    same = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    return first + same * (height // rows - 1) + b"\x03\x00" + struct.pack(">I", adler)


def _png(width: int, height: int, idat: bytes, colour_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    plte = _png_chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") if colour_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + plte + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb_idat() -> bytes:
    return _bomb_idat(BOMB, BOMB)


SMALL = (np.arange(37 * 53) % 251).astype(np.uint8).reshape(37, 53)


def _refused_as_too_large(exc: pytest.ExceptionInfo, path: str, size: str) -> None:
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and size in text and "max_pixels" in text, text
    assert "\n" not in text
    assert isinstance(exc.value, images.ImageTooLargeError)


def _one_clear_error(exc: pytest.ExceptionInfo, path: str) -> str:
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    assert isinstance(exc.value, images.ImageReadError)
    return text


def _bytes_read() -> int:
    """Bytes this process has read with read(2) so far (Linux ``/proc/self/io`` rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


needs_proc_io = pytest.mark.skipif(not Path("/proc/self/io").exists(),
                                   reason="needs Linux /proc/self/io to count bytes read")


# ------------------------------------------------------------------------------- size limit
def test_png_decompression_bomb_is_refused_from_its_header(tmp_path, bomb_idat):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(BOMB, BOMB, bomb_idat))
    assert path.stat().st_size < 1_500_000  # under 1.5 MB on disk, 900 MB decoded
    with pytest.raises(IngestError) as exc:
        read_image(path)
    _refused_as_too_large(exc, str(path), f"{BOMB} x {BOMB} px")


def test_palette_png_bomb_is_our_error_not_pillows(bomb_idat):
    data = _png(BOMB, BOMB, bomb_idat, colour_type=3)  # palette PNGs are decoded by Pillow
    with pytest.raises(IngestError) as exc:
        decode_image(data, "/x/palette_bomb.png")
    _refused_as_too_large(exc, "/x/palette_bomb.png", f"{BOMB} x {BOMB} px")


def test_palette_png_under_our_limit_but_over_pillows_is_decoded(monkeypatch):
    # Pillow refuses images above 2 x its MAX_IMAGE_PIXELS (89.5 Mpx by default); scaled down
    # here: with Pillow's limit at 500 px, a 1961 px palette PNG that max_pixels allows decodes
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    pil = Image.fromarray(SMALL % 4, mode="P")
    pil.putpalette([0, 0, 0, 80, 80, 80, 160, 160, 160, 255, 255, 255])
    page = decode_image(_pil_bytes(pil, "PNG"), "/x/palette.png").pages[0]
    np.testing.assert_array_equal(page.array, SMALL % 4)
    assert Image.MAX_IMAGE_PIXELS == 500  # Pillow's own setting is given back


def test_oversize_jpeg_header_is_refused():
    jpg = bytearray(_enc(".jpg", SMALL))
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 50000)  # height, width
    with pytest.raises(IngestError) as exc:
        decode_image(bytes(jpg), "/x/huge.jpg")
    _refused_as_too_large(exc, "/x/huge.jpg", "50000 x 60000 px")


def test_opencv_refusal_is_one_clear_error_when_the_limit_is_lifted():
    jpg = bytearray(_enc(".jpg", SMALL))
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 50000)  # 3 Gpx: over OpenCV's own limit
    with pytest.raises(IngestError) as exc:  # was a cv2.error traceback
        decode_image(bytes(jpg), "/x/huge.jpg", max_pixels=None)
    assert "OpenCV" in _one_clear_error(exc, "/x/huge.jpg")


def test_oversize_tiff_header_is_refused():
    data = bytearray(_tiff(SMALL))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages[0].tags
        for name, value in (("ImageWidth", BOMB), ("ImageLength", BOMB)):
            tag = tags[name]
            fmt = "<H" if tag.dtype == 3 else "<I"
            data[tag.valueoffset:tag.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    with pytest.raises(IngestError) as exc:
        decode_image(bytes(data), "/x/huge.tif")
    _refused_as_too_large(exc, "/x/huge.tif", f"{BOMB} x {BOMB} px")


def test_max_pixels_is_a_knob_and_counts_the_pages_decoded(tmp_path):
    path = tmp_path / "three.tif"
    with tifffile.TiffWriter(path) as tif:  # 3 pages of 37 x 53 = 1961 px
        for _ in range(3):
            tif.write(SMALL)
    assert len(read_image(path, pages="all", max_pixels=3 * 1961).pages) == 3
    assert read_image(path, pages="first", max_pixels=2000).pages[0].array.shape == (37, 53)
    with pytest.raises(IngestError) as exc:
        read_image(path, pages="all", max_pixels=2000)
    _refused_as_too_large(exc, str(path), "3 pages of 5883 px")
    png = tmp_path / "small.png"
    png.write_bytes(_enc(".png", SMALL))
    with pytest.raises(IngestError):
        read_image(png, max_pixels=1960)
    assert read_image(png, max_pixels=None).pages[0].array.shape == (37, 53)


@pytest.mark.parametrize("kind", ["png", "jpeg", "jpeg-progressive", "webp-lossy",
                                  "webp-lossless", "webp-alpha", "bmp", "tiff", "tiff-rgb"])
def test_header_size_equals_decoded_size(tmp_path, kind):
    rgb = np.dstack([SMALL, SMALL[::-1], 255 - SMALL])
    data = {
        "png": lambda: _enc(".png", SMALL),
        "jpeg": lambda: _enc(".jpg", rgb),
        "jpeg-progressive": lambda: _enc(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "webp-lossy": lambda: _enc(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "webp-lossless": lambda: _enc(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "webp-alpha": lambda: _pil_bytes(np.dstack([rgb, SMALL]), "WEBP"),
        "bmp": lambda: _enc(".bmp", rgb),
        "tiff": lambda: _tiff(SMALL),
        "tiff-rgb": lambda: _tiff(np.moveaxis(rgb, -1, 0), photometric="rgb",
                                  planarconfig="separate"),
    }[kind]()
    path = tmp_path / f"x.{kind}"
    path.write_bytes(data)
    fmt, sizes = images.image_size(path)
    assert sizes == [(37, 53)] and fmt == kind.split("-")[0]
    assert read_image(path).pages[0].array.shape[:2] == (37, 53)


def _pil_bytes(a: np.ndarray | Image.Image, fmt: str) -> bytes:
    b = io.BytesIO()
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(b, format=fmt)
    return b.getvalue()


# ------------------------------------------------------------------------------- bytes read
@needs_proc_io
def test_huge_sparse_file_named_png_is_refused_after_a_few_bytes(tmp_path):
    path = tmp_path / "disk_image.png"
    with open(path, "wb") as fh:
        fh.truncate(3 * 1024 ** 3)  # 3 GB of zeros, sparse on disk
    before = _bytes_read()
    with pytest.raises(IngestError) as exc:
        read_image(path)
    assert _bytes_read() - before < 1_000_000  # the old code read all 3 GB first
    assert "not a supported image" in _one_clear_error(exc, str(path))


@needs_proc_io
def test_huge_file_with_a_bomb_header_is_refused_after_the_header(tmp_path):
    path = tmp_path / "bomb_header.png"
    head = _png(BOMB, BOMB, b"")[:33]  # signature + IHDR
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(3 * 1024 ** 3)
    before = _bytes_read()
    with pytest.raises(IngestError) as exc:
        read_image(path)
    assert _bytes_read() - before < 1_000_000
    _refused_as_too_large(exc, str(path), f"{BOMB} x {BOMB} px")


# ------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_truncated_file_is_one_clear_error(tmp_path, ext):
    rgb = np.dstack([SMALL, SMALL[::-1], 255 - SMALL])
    rgb = np.tile(rgb, (8, 8, 1))  # big enough that half of it is a real truncation
    data = _tiff(rgb) if ext == ".tif" else _enc(ext, rgb)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError) as exc:
        read_image(path)
    text = _one_clear_error(exc, str(path))
    assert "truncated" in text or "corrupt" in text


@pytest.mark.parametrize("head", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"BM",
                                  b"RIFF\x00\x00\x00\x00WEBP"])
def test_garbage_after_a_magic_number_is_one_clear_error(tmp_path, head):
    rng = np.random.default_rng(len(head))
    path = tmp_path / "garbage.png"
    path.write_bytes(head + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(IngestError) as exc:
        read_image(path)
    _one_clear_error(exc, str(path))


def test_empty_file_is_one_clear_error(tmp_path):
    path = tmp_path / "empty.tif"
    path.touch()
    with pytest.raises(IngestError) as exc:
        read_image(path)
    assert "empty" in _one_clear_error(exc, str(path))


def test_missing_file_is_one_clear_error(tmp_path):
    path = tmp_path / "gone.png"
    with pytest.raises(IngestError) as exc:
        read_image(path)
    assert "cannot be read" in _one_clear_error(exc, str(path))


# ------------------------------------------------------------------------------- atomic outputs
def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "DVC_STAGE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _spawn(code: str, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                            env={**_child_env(), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"child ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


BUILDING = """
    import os, time
    from pathlib import Path
    from porescope.io.atomic import output_dir, write_bytes
    with output_dir("out") as tmp:
        for i in range(50):
            write_bytes(tmp / f"tile_{i}.png", b"x" * 1000)
        Path("ready").write_text(str(os.getpid()))
        time.sleep(120)
"""


def test_sigterm_while_building_an_output_leaves_nothing(tmp_path):
    proc = _spawn(BUILDING, tmp_path)
    _wait_for(tmp_path / "ready", proc)
    assert any(p.name.startswith(".out.") for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err  # non-zero, as after Ctrl-C; not killed on the spot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    from porescope.io.atomic import output_dir

    proc = _spawn(BUILDING, tmp_path)
    _wait_for(tmp_path / "ready", proc)
    proc.kill()  # kill -9: no clean-up possible
    proc.wait()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(stale) == 1 and len(list(stale[0].iterdir())) == 50
    (tmp_path / ".out.notes").write_text("not ours: kept")
    with output_dir(tmp_path / "out") as tmp:
        (tmp / "result.txt").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.notes", "out", "ready"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["result.txt"]


def test_temporaries_of_live_writers_and_old_swaps_of_dead_ones(tmp_path):
    from porescope.io.atomic import remove_stale_temporaries
    from porescope.parallel.liveness import current_process

    pid, start = current_process()
    mine = tmp_path / f".out.pid{pid}-{start}-abc123.tmp"
    mine.mkdir()
    dead_old = tmp_path / ".out.old-pid999999999-1"  # an old output moved aside, owner dead
    dead_old.mkdir()
    dead_file = tmp_path / ".table.csv.pid999999999-1-zz_9.tmp"
    dead_file.write_text("half a table")
    reused = tmp_path / f".out.pid{pid}-{(start or 0) + 1}-abc.tmp"  # our id, another start
    reused.mkdir()
    removed = {p.name for p in remove_stale_temporaries(tmp_path)}
    expected = {dead_old.name, dead_file.name}
    if start is not None:  # with /proc, an id reused by a later process is not its owner
        expected.add(reused.name)
    assert removed == expected
    assert mine.exists()


def test_successful_runs_leave_no_temporaries(tmp_path):
    from porescope.io.atomic import output_dir, write_bytes, write_json

    for run in range(2):
        with output_dir(tmp_path / "out") as tmp:
            write_bytes(tmp / "a.bin", b"1")
        write_json(tmp_path / "run.json", {"run": run})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run.json"]


# ------------------------------------------------------------------------------- one writer
def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / ".dvc").mkdir(parents=True)
    (ws / "dvc.yaml").write_text("stages:\n  demo:\n    cmd: python demo.py\n")
    return ws


STAGE = """
    import os, sys, time
    from pathlib import Path
    sys.argv = ["demo"]
    from stages.common import run_stage
    from porescope.io.atomic import output_dir

    def main():
        with output_dir("out") as tmp:
            if os.environ.get("QUICK"):
                (tmp / "done.txt").write_text("yes")
                return 0
            (tmp / "part.txt").write_text("partial")
            Path("ready").write_text(str(os.getpid()))
            time.sleep(120)
        return 0

    run_stage("demo", main)
"""


def test_second_stage_in_the_same_workspace_is_refused_while_the_first_runs(tmp_path):
    ws = _workspace(tmp_path)
    first = _spawn(STAGE, ws)
    try:
        _wait_for(ws / "ready", first)
        second = subprocess.run([sys.executable, "-c", textwrap.dedent(STAGE)], cwd=ws,
                                env={**_child_env(), "QUICK": "1"}, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("stage demo: error: "), second.stderr
        assert f"stage demo (pid {first.pid}" in lines[0] and "in use" in lines[0]
        assert not (ws / "out").exists()
        first.send_signal(signal.SIGTERM)  # the stage exits cleanly and frees the workspace
        first.communicate(timeout=30)
        assert first.returncode == 143
        assert not [p for p in ws.iterdir() if p.name.startswith(".out")]
    finally:
        first.kill()
    again = subprocess.run([sys.executable, "-c", textwrap.dedent(STAGE)], cwd=ws,
                           env={**_child_env(), "QUICK": "1"}, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr
    assert (ws / "out" / "done.txt").exists()


def test_lock_of_a_killed_stage_is_taken_over(tmp_path):
    ws = _workspace(tmp_path)
    first = _spawn(STAGE, ws)
    _wait_for(ws / "ready", first)
    first.kill()
    first.wait()
    again = subprocess.run([sys.executable, "-c", textwrap.dedent(STAGE)], cwd=ws,
                           env={**_child_env(), "QUICK": "1"}, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".out")) == []  # removed
    assert (ws / "out" / "done.txt").exists()


def test_stale_lock_record_of_a_dead_process_is_taken_over(tmp_path):
    from porescope.provenance.workspace_lock import read_holder, workspace_lock

    lock = tmp_path / "stage.lock"
    lock.write_text('{"pid": 999999999, "start": 1, "what": "stage train"}\n')
    with workspace_lock(lock, "stage demo"):
        assert read_holder(lock)["pid"] == os.getpid()
    assert read_holder(lock) == {}


def test_live_holder_without_flock_is_still_refused(tmp_path):
    # e.g. a file system without flock: the record of a live process alone refuses
    from porescope.parallel.liveness import process_start
    from porescope.provenance.workspace_lock import WorkspaceBusyError, workspace_lock

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "stage.lock"
        lock.write_text(f'{{"pid": {holder.pid}, "start": {process_start(holder.pid) or "null"},'
                        ' "what": "stage train", "since": "2026-01-01 00:00:00 UTC"}\n')
        with pytest.raises(WorkspaceBusyError, match=f"stage train \\(pid {holder.pid}, running"):
            with workspace_lock(lock, "stage demo"):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_workspaces_do_not_block_each_other(tmp_path):
    # queued experiments run in their own temporary workspaces, each with its own lock
    from porescope.provenance.workspace_lock import workspace_lock

    with workspace_lock(tmp_path / "a" / "stage.lock", "stage one"):
        with workspace_lock(tmp_path / "b" / "stage.lock", "stage two"):
            pass


PARENT = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    time.sleep(300)
"""


def test_stage_stops_when_its_dvc_parent_is_killed(tmp_path):
    from porescope.parallel.liveness import process_alive

    ws = _workspace(tmp_path)
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT),
                               textwrap.dedent(STAGE)], cwd=ws,
                              env={**_child_env(), "DVC_STAGE": "demo"})
    try:
        _wait_for(ws / "ready", parent)
        child = int((ws / "ready").read_text())
        parent.kill()  # kill -9 of dvc repro
        parent.wait()
        deadline = time.monotonic() + 15
        while process_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(child), "the stage ran on as an orphan"
    finally:
        parent.kill()
    assert not [p for p in ws.iterdir() if p.name.startswith(".out")]  # it cleaned up
    quick = subprocess.run([sys.executable, "-c", textwrap.dedent(STAGE)], cwd=ws,
                           env={**_child_env(), "QUICK": "1"}, capture_output=True, text=True,
                           timeout=60)
    assert quick.returncode == 0, quick.stderr  # and freed the workspace


def test_stage_not_started_by_dvc_is_not_watched(tmp_path):
    from porescope.parallel.liveness import process_alive

    ws = _workspace(tmp_path)
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT),
                               textwrap.dedent(STAGE)], cwd=ws, env=_child_env())
    _wait_for(ws / "ready", parent)
    child = int((ws / "ready").read_text())
    try:
        parent.kill()
        parent.wait()
        time.sleep(2.5)  # more than two watch intervals
        assert process_alive(child)  # e.g. under nohup: the user asked it to outlive its shell
    finally:
        os.kill(child, signal.SIGTERM)


def test_queued_experiment_is_a_workspace_of_its_own(tmp_path, monkeypatch):
    # dvc runs a queued experiment's stages in a copy under .dvc/tmp/exps/ with $DVC_ROOT set
    # to the parent repository: the lock must follow the copy, or two queue workers collide
    from stages.common import workspace_root

    main = _workspace(tmp_path)
    copy = main / ".dvc" / "tmp" / "exps" / "tmpabc"
    (copy / ".dvc").mkdir(parents=True)
    (copy / "sub").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert workspace_root(copy / "sub") == copy
    assert workspace_root(main) == main
    assert workspace_root(tmp_path) == main  # outside any project: dvc's word
    monkeypatch.delenv("DVC_ROOT")
    assert workspace_root(tmp_path) is None


# ------------------------------------------------------------------- measure: bad inputs
# ``porescope measure`` checks every file up front (header, size against measure.max_pixels),
# measures the good ones and lists the others (PartialMeasureError after writing everything).
from porescope.measure import folder as measure_folder  # noqa: E402
from porescope.measure import measurement  # noqa: E402
from porescope.measure.params import MeasureParams  # noqa: E402
from test_measure import SETTINGS, membrane_image, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "model.pt")


def _folder_with(tmp_path: Path, name: str, data: bytes | None = None) -> Path:
    """An input folder holding ``good.png`` and ``name`` (with ``data``, when given)."""
    inp = tmp_path / "in"
    inp.mkdir()
    cv2.imwrite(str(inp / "good.png"), membrane_image(64, 64, 3))
    if data is not None:
        (inp / name).write_bytes(data)
    return inp


def _partial(inp: Path, model: Path, out: Path, params: MeasureParams = SETTINGS
             ) -> dict[str, str]:
    """Run measure on ``inp``; expect a partial run with ``good`` measured and return the
    ``{file name: reason}`` of what was not measured (from run.json)."""
    with pytest.raises(measure_folder.PartialMeasureError):
        measure_folder.run_measure(inp, model, out, params)
    assert (out / "masks" / "good.png").is_file()
    run = (out / "run.json").read_text()
    import json
    return {Path(b["file"]).name: b["reason"] for b in json.loads(run)["not_measured"]}


def test_measure_file_over_measure_max_pixels_is_not_measured(tmp_path, model):
    inp = _folder_with(tmp_path, "big.png", _enc(".png", np.zeros((100, 120), np.uint8)))
    bad = _partial(inp, model, tmp_path / "o", dataclasses.replace(SETTINGS, max_pixels=10_000))
    assert "120 x 100 px" in bad["big.png"] and "max_pixels = 10000" in bad["big.png"]


def test_measure_one_reads_with_measure_max_pixels(tmp_path, model):
    path = tmp_path / "big.png"
    path.write_bytes(_enc(".png", np.zeros((100, 120), np.uint8)))
    with pytest.raises(images.ImageTooLargeError, match="max_pixels = 10000"):
        measurement.measure_one(path, model, dataclasses.replace(SETTINGS, max_pixels=10_000))


def test_measure_truncated_data_after_a_good_header_is_caught_per_file(tmp_path, model):
    data = _enc(".png", np.tile(np.dstack([SMALL] * 3), (8, 8, 1)))
    inp = _folder_with(tmp_path, "cut.png", data[: len(data) // 2])
    assert images.image_size(inp / "cut.png")[1] == [(37 * 8, 53 * 8)]  # the header is fine
    bad = _partial(inp, model, tmp_path / "o")
    assert "truncated" in bad["cut.png"] or "corrupt" in bad["cut.png"]


def test_measure_empty_file_is_not_measured(tmp_path, model):
    bad = _partial(_folder_with(tmp_path, "zero.png", b""), model, tmp_path / "o")
    assert "empty" in bad["zero.png"]


def test_measure_text_named_png_is_not_measured(tmp_path, model):
    bad = _partial(_folder_with(tmp_path, "fake.png", b"hello, not an image\n" * 10), model,
                   tmp_path / "o")
    assert "not a supported image" in bad["fake.png"]


def test_measure_second_file_with_the_same_stem_is_not_measured(tmp_path, model):
    inp = _folder_with(tmp_path, "good.jpg", _enc(".jpg", membrane_image(64, 64, 4)))
    bad = _partial(inp, model, tmp_path / "o")
    assert "same stem" in bad["good.png"] or "same stem" in bad["good.jpg"]


def test_measure_symlink_outside_the_input_folder_is_not_followed(tmp_path, model):
    outside = tmp_path / "secret.png"
    outside.write_bytes(_enc(".png", membrane_image(64, 64, 5)))
    inp = _folder_with(tmp_path, "link.png")
    (inp / "link.png").symlink_to(outside)
    bad = _partial(inp, model, tmp_path / "o")
    assert "symbolic link" in bad["link.png"] and "outside" in bad["link.png"]
    assert not (tmp_path / "o" / "masks" / "link.png").exists()


def test_measure_symlink_inside_the_input_folder_is_measured(tmp_path, model):
    inp = _folder_with(tmp_path, "x")
    (inp / "alias.png").symlink_to(inp / "good.png")
    measure_folder.run_measure(inp, model, tmp_path / "o", SETTINGS)
    assert (tmp_path / "o" / "masks" / "alias.png").is_file()


def test_measure_all_files_bad_writes_empty_tables_and_lists_them(tmp_path, model):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(measure_folder.PartialMeasureError, match="0 image"):
        measure_folder.run_measure(inp, model, tmp_path / "o", SETTINGS)
    assert "a.png" in (tmp_path / "o" / "report.md").read_text()


def test_measure_strict_stops_at_the_first_bad_file(tmp_path, model):
    inp = _folder_with(tmp_path, "zero.png", b"")
    with pytest.raises(IngestError, match="zero.png"):
        measure_folder.run_measure(inp, model, tmp_path / "o",
                                   dataclasses.replace(SETTINGS, strict=True))
    assert not (tmp_path / "o").exists()


def test_measure_empty_folder_with_a_missing_model_fails(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    from porescope.errors import PorescopeError
    with pytest.raises(PorescopeError, match="no-model.pt"):
        measure_folder.run_measure(inp, tmp_path / "no-model.pt", tmp_path / "o", SETTINGS)
    assert not (tmp_path / "o").exists()


def test_measure_missing_input_folder_is_one_clear_error(tmp_path, model):
    with pytest.raises(IngestError, match="input folder not found"):
        measure_folder.run_measure(tmp_path / "nope", model, tmp_path / "o", SETTINGS)


# ------------------------------------------------------------ measure: --overwrite safety
def test_overwrite_refuses_a_folder_porescope_did_not_write(tmp_path, model):
    inp = _folder_with(tmp_path, "x")
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\chapter{Pores}")
    with pytest.raises(FileExistsError, match="not a porescope output; refusing to delete it"):
        measure_folder.run_measure(inp, model, thesis, SETTINGS, overwrite=True)
    assert (thesis / "thesis.tex").read_text() == "\\chapter{Pores}"


def test_overwrite_refuses_a_file(tmp_path, model):
    inp = _folder_with(tmp_path, "x")
    (tmp_path / "out.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a porescope output"):
        measure_folder.run_measure(inp, model, tmp_path / "out.txt", SETTINGS, overwrite=True)
    assert (tmp_path / "out.txt").read_text() == "mine"


def test_overwrite_replaces_a_porescope_output(tmp_path, model):
    inp = _folder_with(tmp_path, "x")
    out = tmp_path / "o"
    measure_folder.run_measure(inp, model, out, SETTINGS)
    marker = (out / measure_folder.MARKER).read_text()
    assert marker.startswith("porescope measure ") and "\tsummary.csv\n" in marker and len(marker.splitlines()[1].split("\t")[0]) == 64
    (out / "report.pdf").write_bytes(b"%PDF")          # --pdf writes it after the marker
    measure_folder.run_measure(inp, model, out, SETTINGS, overwrite=True)
    assert (out / measure_folder.MARKER).is_file() and not (out / "report.pdf").exists()


@pytest.mark.parametrize("change", ["added", "edited", "same_size", "nested"])
def test_overwrite_keeps_what_a_user_added_or_changed(tmp_path, model, change):
    """A porescope output folder holding a file porescope did not write, or one edited since,
    is not replaced: the error names the file, and everything stays as it was."""
    inp = _folder_with(tmp_path, "x")
    out = tmp_path / "o"
    measure_folder.run_measure(inp, model, out, SETTINGS)
    target = {"added": out / "my_notes.txt", "edited": out / "summary.csv",
              "same_size": out / "run.json", "nested": out / "masks" / "mine" / "a.txt"}[change]
    target.parent.mkdir(parents=True, exist_ok=True)
    if change == "same_size":                           # one character swapped: size unchanged
        text = target.read_text()
        target.write_text(text.replace("{", "[", 1))
    else:
        target.write_text(target.read_text() + "my correction\n" if target.exists() else "mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rel = target.relative_to(out).as_posix()
    with pytest.raises(FileExistsError, match=f"porescope did not write or that changed since \\({rel}"):
        measure_folder.run_measure(inp, model, out, SETTINGS, overwrite=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_cli_overwrite_names_the_refused_folder(tmp_path, model, capsys):
    from porescope.cli import main as cli
    inp = _folder_with(tmp_path, "x")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("keep")
    assert cli.main(["measure", "--model", str(model), "--input", str(inp), "--out",
                     str(tmp_path / "docs"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "docs") in err and "refusing to delete it" in err
    assert (tmp_path / "docs" / "notes.md").is_file()


# ------------------------------------------------------------------ ingest: size limit
def _ingest_params(**kw):
    from porescope.preprocessing.ingest import parse_ingest_params
    return parse_ingest_params({"require_masks": False, "pixel_size_nm": None, **kw})


@needs_proc_io
def test_ingest_bomb_header_is_refused_before_the_file_is_read(tmp_path):
    from porescope.preprocessing.ingest import run_ingest
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "bomb.png", "wb") as fh:
        fh.write(_png(BOMB, BOMB, b"")[:33])
        fh.truncate(3 * 1024 ** 3)
    before = _bytes_read()
    with pytest.raises(IngestError, match="max_pixels"):
        run_ingest(src, tmp_path / "out", _ingest_params())
    assert _bytes_read() - before < 1_000_000  # the old ingest read all 3 GB first


def test_ingest_max_pixels_is_a_knob(tmp_path):
    from porescope.preprocessing.ingest import run_ingest
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(_enc(".png", np.zeros((100, 120), np.uint8)))
    with pytest.raises(IngestError, match="max_pixels = 10000"):
        run_ingest(src, tmp_path / "out", _ingest_params(max_pixels=10_000))
    run_ingest(src, tmp_path / "out", _ingest_params(max_pixels=12_000))
    assert (tmp_path / "out" / "images").is_dir()


def test_same_stem_in_two_specimen_folders_names_both_and_case_collides(tmp_path, model):
    """With one sub-folder per specimen, two files of the same stem are named with their
    folders; stems differing only in letter case would overwrite each other's outputs on
    macOS / Windows, so they are refused too; a broken link is listed, not skipped silently."""
    inp = tmp_path / "in"
    for sub in ("A", "B"):
        (inp / sub).mkdir(parents=True)
    (tmp_path / "src").mkdir()
    img = _folder_with(tmp_path / "src", "x") / "good.png"
    (inp / "A" / "img1.png").write_bytes(img.read_bytes())
    (inp / "B" / "img1.png").write_bytes(img.read_bytes())
    (inp / "A" / "Photo3.png").write_bytes(img.read_bytes())
    (inp / "B" / "photo3.png").write_bytes(img.read_bytes())
    (inp / "gone.png").symlink_to(tmp_path / "nowhere.png")
    files, bad = measure_folder.scan_inputs(inp, subfolders=True)
    why = {Path(f).relative_to(inp).as_posix(): w for f, w in bad}
    assert "has the same stem 'img1' as A/img1.png" in why["B/img1.png"]
    assert "as A/Photo3.png (letter case aside)" in why["B/photo3.png"]
    assert "is a broken symbolic link" in why["gone.png"]
    assert sorted(f.relative_to(inp).as_posix() for f in files) == ["A/Photo3.png", "A/img1.png"]
