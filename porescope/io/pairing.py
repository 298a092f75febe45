"""Find image/mask pairs in a dataset folder; skip junk files; report bad input clearly.

Layout of an ingest source (see ``stages.ingest``)::

    <source>/images/<stem>.<any supported format>
    <source>/masks/<stem><mask_suffix>.<any supported format>

Images and masks pair by file *stem* (the name without its last suffix, so ``0.5-17.tif`` has
the stem ``0.5-17``; spaces and dots are kept). The extension plays no part in pairing or in
reading (formats are detected from the file content). When ``masks/`` is not required and the
source has no ``images/`` folder, the source folder itself holds the images (a folder of
micrographs to measure, as ``track-membranes-sem-unlabelled``).

Junk that file managers and archivers leave behind is skipped with a logged warning, never read:
``Thumbs.db``, ``ehthumbs.db``, ``desktop.ini``, ``.DS_Store``, AppleDouble ``._*`` files, any
other hidden dot-file, and the ``__MACOSX`` folder. Other sub-folders are skipped with a warning
(the listing is not recursive).

Every problem is reported as an :class:`IngestError` whose message starts with the offending
path, says what is wrong and what to do; problems found while pairing are gathered so the user
sees all of them at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from porescope.errors import PorescopeError

LOG = logging.getLogger("porescope.ingest")

#: File names (compared case-insensitively) that are never data.
JUNK_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"})
#: Folder names that are never data.
JUNK_DIRS = frozenset({"__macosx"})


class IngestError(PorescopeError, ValueError):
    """Bad ingest input. ``str(err)`` starts with the offending path, then what is wrong and what
    to do; ``err.path`` is that path and ``err.more`` holds further ``(path, message)`` problems
    found in the same pass (listed in the message too)."""

    def __init__(self, path: str | os.PathLike, message: str,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.path = str(path)
        self.detail = message
        self.more = [(str(p), m) for p, m in more]
        text = f"{self.path}: {message}"
        if self.more:
            text += f"\n({len(self.more)} more problem(s) in the same input:)"
            text += "".join(f"\n  {p}: {m}" for p, m in self.more)
        super().__init__(text)

    def __reduce__(self):  # picklable across worker processes
        return (self.__class__, (self.path, self.detail, self.more))

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str | os.PathLike, str]]) -> "IngestError":
        """One error for several ``(path, message)`` problems (the first one leads)."""
        if not problems:
            raise ValueError("from_problems needs at least one problem")
        (path, msg), *rest = problems
        return cls(path, msg, [(str(p), m) for p, m in rest])


@dataclass(frozen=True)
class SourcePair:
    """One source file and its mask file (``None`` when there is none)."""

    stem: str
    image: Path
    mask: Path | None


def junk_reason(path: Path) -> str | None:
    """Why ``path`` (a file or folder name) is junk that ingest skips, or ``None`` if it is not."""
    name = path.name
    low = name.lower()
    if path.is_dir():
        if low in JUNK_DIRS:
            return "macOS archive metadata folder"
        if name.startswith("."):
            return "hidden folder"
        return None
    if low in JUNK_NAMES:
        return "operating-system metadata file"
    if name.startswith("._"):
        return "macOS AppleDouble resource file"
    if name.startswith("."):
        return "hidden file"
    if name.startswith("~$") or name.endswith("~"):
        return "editor temporary file"
    return None


def list_data_files(folder: Path, *, what: str = "images", warn_subfolders: bool = True
                    ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular data files directly in ``folder``, sorted by name, and the problems found.

    Junk and sub-folders are skipped with a logged warning (sub-folders silently when
    ``warn_subfolders`` is False: the caller reads them itself). Problems (returned, not
    raised): empty (0-byte) files, broken symbolic links and files that cannot be accessed.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        reason = junk_reason(entry)
        if reason is not None:
            LOG.warning("%s: skipped (%s, not %s)", entry, reason, what)
            continue
        if entry.is_dir():
            if warn_subfolders:
                LOG.warning("%s: skipped sub-folder (sub-folders of %s/ are not read)",
                            entry, folder.name)
            continue
        if entry.is_symlink() and not entry.exists():
            problems.append((str(entry), f"is a broken symbolic link (to {os.readlink(entry)}); "
                                         f"fix it or remove it from {folder}"))
            continue
        if not entry.is_file():
            LOG.warning("%s: skipped (not a regular file)", entry)
            continue
        try:
            size = entry.stat().st_size
            with open(entry, "rb"):
                pass
        except OSError as exc:
            problems.append((str(entry), f"cannot be opened ({exc.strerror or exc}); check the "
                                         f"file permissions or remove it from {folder}"))
            continue
        if size == 0:
            problems.append((str(entry), f"is empty (0 bytes), probably an interrupted copy or "
                                         f"download; copy it again or remove it from {folder}"))
            continue
        files.append(entry)
    return files, problems


def _by_stem(files: Iterable[Path], suffix: str, problems: list[tuple[str, str]],
             what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        stem = f.stem
        if suffix:
            if not stem.endswith(suffix):
                problems.append((str(f), f"{what} name does not end with ingest.mask_suffix "
                                         f"'{suffix}'; rename it to '<image stem>{suffix}"
                                         f"{f.suffix}' or change mask_suffix"))
                continue
            stem = stem[: -len(suffix)]
        if stem in out:
            problems.append((str(f), f"two {what} files have the same stem '{stem}': "
                                     f"{out[stem].name} and {f.name}; images and masks pair by "
                                     "stem, so keep only one of them (or rename one)"))
            continue
        out[stem] = f
    return out


def find_pairs(source: str | os.PathLike, *, require_masks: bool = True,
               mask_suffix: str = "") -> list[SourcePair]:
    """Pair ``<source>/images/*`` with ``<source>/masks/*`` by stem, sorted by stem.

    Parameters
    ----------
    source : folder with ``images/`` and ``masks/`` (``masks/`` optional when
        ``require_masks`` is false; then a source without ``images/`` is itself the image folder).
    require_masks : every image must have a mask.
    mask_suffix : text after the image stem in mask names (``"_mask"`` pairs ``a.png`` with
        ``a_mask.png``); empty for identical stems.

    Raises
    ------
    IngestError
        Source folder missing or not a folder, no ``images/`` (or ``masks/`` when required),
        no image files, empty or unopenable files, two files with one stem, an image without
        its mask (when required) or a mask without its image. All problems are listed at once.
    """
    source = Path(source)
    if not source.exists():
        raise IngestError(source, "source folder not found; set ingest.source (or --source) to a "
                                  "folder holding images/ and masks/")
    if not source.is_dir():
        raise IngestError(source, "source is not a folder; set ingest.source to a folder holding "
                                  "images/ and masks/")
    images_dir = source / "images"
    masks_dir = source / "masks"
    if not images_dir.is_dir():
        if require_masks or masks_dir.is_dir():
            raise IngestError(images_dir, "folder not found; an ingest source holds images/ and "
                                          "masks/ (pairs by file stem). For images without masks "
                                          "set ingest.require_masks: false")
        images_dir = source
        LOG.info("%s: no images/ folder; reading images from the source folder itself "
                 "(require_masks is false)", source)
    if require_masks and not masks_dir.is_dir():
        raise IngestError(masks_dir, "folder not found but ingest.require_masks is true; add the "
                                     "masks (same stems as the images) or set "
                                     "ingest.require_masks: false to ingest images only")

    problems: list[tuple[str, str]] = []
    image_files, p = list_data_files(images_dir, what="an image")
    problems += p
    images = _by_stem(image_files, "", problems, "image")
    masks: dict[str, Path] = {}
    if masks_dir.is_dir() and images_dir != source:
        mask_files, p = list_data_files(masks_dir, what="a mask")
        problems += p
        masks = _by_stem(mask_files, mask_suffix, problems, "mask")

    if not images and not problems:
        raise IngestError(images_dir, "no image files found; put the micrographs (PNG, JPEG, "
                                      "TIFF, WebP, BMP) in this folder")
    for stem in sorted(images):
        if require_masks and stem not in masks:
            problems.append((str(images[stem]), f"image without a mask: expected "
                                                f"{masks_dir / (stem + mask_suffix)}.<ext>; add "
                                                "the mask, remove the image, or set "
                                                "ingest.require_masks: false"))
    for stem in sorted(masks):
        if stem not in images:
            problems.append((str(masks[stem]), f"mask without an image: no {images_dir}/"
                                               f"{stem}.<ext>; add the image or remove the mask"))
    if problems:
        raise IngestError.from_problems(problems)
    return [SourcePair(stem, images[stem], masks.get(stem)) for stem in sorted(images)]
