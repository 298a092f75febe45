"""The code a stage runs: its import closure and a fingerprint of it (file -> MD5).

A DVC stage must rerun when any module it imports changes, and only then. Listing every
imported file as a dependency of every stage does that, but DVC then checks a few hundred code
entries on each ``dvc repro`` (most files are imported by several stages). Instead the pipeline's
first stage writes one fingerprint per stage: the stage module's import closure with each file's
MD5. A stage depends on its fingerprint file, which changes exactly when one of its files does,
so reruns stay as precise as before while DVC checks each code file once.

:func:`import_closure` follows the ``import`` statements of a module (at module level and
inside functions) through the given top-level packages; package ``__init__.py`` files are left
out because in this project they import nothing (a test checks that). The dependency guard
(:mod:`porescope.provenance.dep_guard`) checks, before a stage runs, that the files still have
the MD5s of its fingerprint, and watches them while it runs.

Only the standard library is imported: every stage imports this module through the guard.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Marks a JSON file as a code fingerprint (lineage and the guard recognise it by this).
FINGERPRINT_KIND = "porescope code fingerprint"

#: The top-level packages whose modules count as project code.
PROJECT_PACKAGES = ("stages", "porescope")


def module_file(module: str, root: str | os.PathLike) -> Path:
    """The file of ``module`` (dotted name) below ``root``: ``a/b.py`` or ``a/b/__init__.py``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "pkg").mkdir(); _ = (root / "pkg" / "__init__.py").write_text("")
    >>> module_file("pkg", root).relative_to(root).as_posix()
    'pkg/__init__.py'
    >>> module_file("pkg.mod", root).relative_to(root).as_posix()
    'pkg/mod.py'
    """
    path = Path(root, *module.split("."))
    py = path.with_suffix(".py")
    return py if py.is_file() or not path.is_dir() else path / "__init__.py"


def imported_modules(module: str, root: str | os.PathLike,
                     packages: tuple[str, ...] = PROJECT_PACKAGES) -> set[str]:
    """Dotted names of the ``packages`` modules that ``module`` imports, anywhere in its code.

    ``from a import b`` counts as module ``a.b`` when that is a module file, else as ``a``;
    relative imports are resolved against ``module``'s package.

    Raises ``FileNotFoundError`` when ``module`` has no file below ``root`` and ``SyntaxError``
    when it does not parse.
    """
    path = module_file(module, root)
    parts = module.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] not in packages:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_file(candidate, root).is_file() else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in packages)
    return found


def import_closure(module: str, root: str | os.PathLike,
                   packages: tuple[str, ...] = PROJECT_PACKAGES) -> list[str]:
    """Every project file that running ``module`` imports, directly or not, itself included.

    Parameters
    ----------
    module
        Dotted module name, e.g. ``"stages.train"``.
    root
        The folder holding the top-level packages (the repository root).
    packages
        Top-level package names that count as project code; other imports are not followed.

    Returns
    -------
    list of str
        POSIX paths relative to ``root``, sorted, without package ``__init__.py`` files.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "app").mkdir(); _ = (root / "app" / "__init__.py").write_text("")
    >>> _ = (root / "app" / "main.py").write_text("import json\\nfrom app import util\\n")
    >>> _ = (root / "app" / "util.py").write_text("def f():\\n    from .deep import g\\n")
    >>> _ = (root / "app" / "deep.py").write_text("")
    >>> _ = (root / "app" / "unused.py").write_text("")
    >>> import_closure("app.main", root, packages=("app",))
    ['app/deep.py', 'app/main.py', 'app/util.py']
    """
    root = Path(root)
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(name, root, packages))
    files = {module_file(name, root).relative_to(root).as_posix() for name in seen}
    return sorted(f for f in files if not f.endswith("/__init__.py"))


def file_md5(path: str | os.PathLike) -> str:
    """MD5 of a file's bytes (what DVC 3 records for a file dependency)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_fingerprint(module: str, root: str | os.PathLike,
                     packages: tuple[str, ...] = PROJECT_PACKAGES) -> dict[str, Any]:
    """The fingerprint of ``module``'s code: its :func:`import_closure` with each file's MD5.

    Returns ``{"kind": FINGERPRINT_KIND, "module": module, "files": {path: md5}}``; it holds
    no time or machine detail, so the same code gives the same bytes once written with
    sorted keys.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "app").mkdir(); _ = (root / "app" / "main.py").write_text("")
    >>> code_fingerprint("app.main", root, packages=("app",))["files"]
    {'app/main.py': 'd41d8cd98f00b204e9800998ecf8427e'}
    """
    files = import_closure(module, root, packages)
    return {"kind": FINGERPRINT_KIND, "module": module,
            "files": {f: file_md5(Path(root, f)) for f in files}}


def read_fingerprint(data: bytes | str) -> dict[str, str] | None:
    """The ``{path: md5}`` of a fingerprint file's content; ``None`` when it is not one.

    Examples
    --------
    >>> read_fingerprint('{"kind": "porescope code fingerprint", "module": "m", "files": {"m.py": "0"}}')
    {'m.py': '0'}
    >>> read_fingerprint(b'{"dice": 0.9}') is None
    True
    """
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("kind") != FINGERPRINT_KIND or not isinstance(obj.get("files"), dict):
        return None
    return {str(k): str(v) for k, v in obj["files"].items()}


def stale_files(files: dict[str, str], root: str | os.PathLike) -> list[str]:
    """Files of a fingerprint whose content is not what it records, as ``"<path>: ..."``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.py").write_text("")
    >>> stale_files({"a.py": "d41d8cd98f00b204e9800998ecf8427e", "b.py": "0"}, root)
    ['b.py: missing']
    """
    problems = []
    for rel, md5 in sorted(files.items()):
        path = Path(root, rel)
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif file_md5(path) != md5:
            problems.append(f"{rel}: changed since the fingerprint was written")
    return problems
