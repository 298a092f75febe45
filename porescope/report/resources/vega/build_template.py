"""Rebuild ``offline_template.html``: a DVC plots HTML template with Vega inlined.

``dvc plots show`` / ``dvc plots diff`` write an HTML page whose Vega-Lite plots are drawn by
vega, vega-lite and vega-embed loaded from a CDN, so the page stays blank without network.
DVC accepts a custom page template (``--html-template`` or ``plots.html_template`` in
``.dvc/config``); dvc-render 1.0.x fills it by plain string replacement of three markers:
the plot-divs marker (required), the refresh marker (optional) and the scripts marker
(optional; it receives the CDN ``<script src=...>`` tags). This template carries the plot-divs
and refresh markers but deliberately NOT the scripts marker, so no CDN tag is ever written, and
it inlines the three libraries in ``<head>`` so that DVC's per-plot ``vegaEmbed(...)`` calls
find them already defined.

Usage (from anywhere; needs ``npm`` and network access to the npm registry)::

    python porescope/report/resources/vega/build_template.py           # rebuild the files beside it
    python porescope/report/resources/vega/build_template.py --check   # rebuild in memory, compare

Steps: ``npm pack`` the pinned versions into a temporary folder, read the minified browser
(UMD) builds and the licence files straight from the tarballs, check the pins against each
package's ``peerDependencies``, refuse any bundle text that could break the inline
``<script>`` or collide with DVC's markers, and write ``offline_template.html``,
``LICENSE.<package>.txt`` and ``VERSIONS.txt`` (versions, npm integrity, sha256 of every
inlined file and of the template) atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE_NAME = "offline_template.html"

# Mutually compatible pins. vega-lite 5.23.0 peers vega ^5.24.0; vega-embed 6.29.0 peers
# vega ^5.21.0 and any vega-lite. DVC's built-in plot templates emit Vega-Lite v5 specs
# ($schema .../vega-lite/v5.json), so the 5.x line of vega-lite (and vega 5, embed 6) is kept.
PINS: dict[str, str] = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
# Order matters: each bundle reads the globals defined by the previous ones.
BUNDLES: dict[str, str] = {
    "vega": "package/build/vega.min.js",
    "vega-lite": "package/build/vega-lite.min.js",
    "vega-embed": "package/build/vega-embed.min.js",
}
LICENSE_MEMBERS = ("package/LICENSE", "package/LICENSE.md", "package/LICENSE.txt")

# Text that must not occur in an inlined bundle: it would end the <script> element early, put
# the HTML parser into an escaped state, or be replaced by dvc-render's str.replace markers.
FORBIDDEN = re.compile(r"</script|<!--|<script|\{plot_divs\}|\{scripts\}|\{refresh_tag\}", re.I)

# vega-embed's "Open in Vega Editor" action posts the spec to https://vega.github.io, which
# cannot work offline; default it off while keeping export/source/compiled. Options that DVC or
# a user pass explicitly still win. Properties of the original function (vega, vegaLite,
# version, ...) are copied onto the wrapper.
EMBED_DEFAULTS_JS = """(function () {
  var embed = window.vegaEmbed;
  function offlineEmbed(el, spec, opt) {
    var defaults = {actions: {"export": true, source: true, compiled: true, editor: false}};
    return embed(el, spec, Object.assign(defaults, opt || {}));
  }
  Object.assign(offlineEmbed, embed);
  window.vegaEmbed = offlineEmbed;
})();"""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    tarball: str
    integrity: str
    bundle_member: str
    bundle: bytes
    license_text: str | None
    peer_dependencies: dict[str, str]


def npm_pack(pins: dict[str, str], dest: Path, npm: str = "npm") -> list[dict]:
    """Run ``npm pack --json name@version ...`` in ``dest``; return npm's JSON records."""
    if shutil.which(npm) is None:
        raise RuntimeError(f"'{npm}' not on PATH; install Node.js/npm to rebuild the template")
    specs = [f"{name}@{version}" for name, version in pins.items()]
    proc = subprocess.run(
        [npm, "pack", "--json", *specs], cwd=dest, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm pack {' '.join(specs)} failed:\n{proc.stderr.strip()}")
    records = json.loads(proc.stdout)
    if len(records) != len(specs):
        raise RuntimeError(f"npm pack returned {len(records)} records for {len(specs)} packages")
    return records


def read_package(record: dict, dest: Path, bundle_member: str) -> Package:
    """Read the bundle, licence and package.json of one packed tarball (nothing is extracted)."""
    path = dest / record["filename"]
    with tarfile.open(path, "r:gz") as tar:
        names = set(tar.getnames())

        def member(name: str) -> bytes:
            handle = tar.extractfile(name)
            if handle is None:
                raise RuntimeError(f"{path.name}: '{name}' is not a regular file")
            return handle.read()

        if bundle_member not in names:
            raise RuntimeError(f"{path.name}: no '{bundle_member}' in the tarball")
        meta = json.loads(member("package/package.json"))
        licence = next((member(n).decode("utf-8") for n in LICENSE_MEMBERS if n in names), None)
        bundle = member(bundle_member)
    if meta["version"] != record["version"]:
        raise RuntimeError(f"{path.name}: package.json says {meta['version']}")
    return Package(
        name=record["name"],
        version=record["version"],
        tarball=record["filename"],
        integrity=record["integrity"],
        bundle_member=bundle_member,
        bundle=bundle,
        license_text=licence,
        peer_dependencies=dict(meta.get("peerDependencies", {})),
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split("."))


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` meets an npm range of the forms used here: ``*``, ``^x.y.z``,
    ``~x.y.z``, ``>=x.y.z`` or an exact ``x.y.z`` (anything else raises ``ValueError``)."""
    spec = spec.strip()
    if spec in ("*", ""):
        return True
    v = _version_tuple(version)
    if spec.startswith("^"):
        lo = _version_tuple(spec[1:])
        # caret: same left-most non-zero component
        pivot = next((i for i, x in enumerate(lo) if x != 0), len(lo) - 1)
        return v >= lo and v[: pivot + 1] == lo[: pivot + 1]
    if spec.startswith("~"):
        lo = _version_tuple(spec[1:])
        return v >= lo and v[:2] == lo[:2]
    if spec.startswith(">="):
        return v >= _version_tuple(spec[2:])
    if re.fullmatch(r"\d+(\.\d+)*", spec):
        return v == _version_tuple(spec)
    raise ValueError(f"unsupported npm range '{spec}'")


def check_peers(packages: list[Package]) -> None:
    """Raise when a pinned package does not meet another's ``peerDependencies``."""
    versions = {p.name: p.version for p in packages}
    for pkg in packages:
        for peer, spec in pkg.peer_dependencies.items():
            if peer in versions and not satisfies(versions[peer], spec):
                raise RuntimeError(
                    f"{pkg.name}@{pkg.version} needs {peer} {spec}, pinned {versions[peer]}"
                )


def licence_for(pkg: Package, out_dir: Path) -> str:
    """The package's licence text: from its tarball, else the committed LICENSE file.

    The vega npm tarball ships no LICENSE file; ``LICENSE.vega.txt`` was copied from the
    ``LICENSE`` at the root of https://github.com/vega/vega (BSD-3-Clause, the licence that
    ``package.json`` declares) and is kept in the repository for that reason.
    """
    if pkg.license_text is not None:
        return pkg.license_text
    fallback = out_dir / f"LICENSE.{pkg.name}.txt"
    if not fallback.is_file():
        raise RuntimeError(f"{pkg.tarball} has no LICENSE and {fallback} is missing")
    return fallback.read_text(encoding="utf-8")


def render_template(packages: list[Package], licences: dict[str, str]) -> str:
    """The HTML template text (UTF-8), with DVC's plot-divs and refresh markers."""
    notice = [
        "Inlined third-party code, each under the BSD-3-Clause licence reproduced below.",
        "The minified bundles also contain their own dependencies (d3 modules and others,",
        "ISC/MIT/BSD); see each package's package.json on npm.",
        "",
    ]
    for pkg in packages:
        text = licences[pkg.name].strip()
        if "--" in text:
            raise RuntimeError(f"{pkg.name} licence contains '--', not allowed in an HTML comment")
        notice += [f"==== {pkg.name} {pkg.version} ({pkg.bundle_member[8:]}) ====", text, ""]
    scripts = []
    for pkg in packages:
        js = pkg.bundle.decode("utf-8")
        bad = FORBIDDEN.search(js)
        if bad:
            raise RuntimeError(f"{pkg.tarball}:{pkg.bundle_member} contains {bad.group(0)!r}")
        scripts.append(f"<script>/* {pkg.name}@{pkg.version} */\n{js}\n</script>")
    scripts.append(f"<script>\n{EMBED_DEFAULTS_JS}\n</script>")
    head_comment = "<!--\n" + "\n".join(notice) + "-->"
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta charset="utf-8">\n'
        "{refresh_tag}\n"
        "<title>DVC Plot</title>\n"
        f"{head_comment}\n"
        + "\n".join(scripts)
        + "\n<style>\n  table { border-spacing: 15px; }\n</style>\n"
        "</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )


def versions_text(packages: list[Package], template: str) -> str:
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    lines = [
        "# Inlined into offline_template.html by build_template.py (npm pack of these pins).",
        "# package  version  file-in-tarball  sha256(file)  npm-integrity",
    ]
    for pkg in packages:
        lines.append(
            f"{pkg.name}  {pkg.version}  {pkg.bundle_member}  {sha(pkg.bundle)}  {pkg.integrity}"
        )
    lines.append(f"{TEMPLATE_NAME}  -  -  {sha(template.encode('utf-8'))}  -")
    return "\n".join(lines) + "\n"


def build(
    pins: dict[str, str] = PINS, npm: str = "npm"
) -> tuple[list[Package], dict[str, str], str]:
    """Pack, check and render; returns (packages, licences, template text). Writes nothing."""
    with tempfile.TemporaryDirectory(prefix="vega-pack-") as tmp:
        records = npm_pack(pins, Path(tmp), npm=npm)
        by_name = {r["name"]: r for r in records}
        packages = [read_package(by_name[name], Path(tmp), BUNDLES[name]) for name in pins]
    check_peers(packages)
    licences = {pkg.name: licence_for(pkg, HERE) for pkg in packages}
    return packages, licences, render_template(packages, licences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npm", default="npm", help="npm executable (default: npm)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild in memory and exit 1 if the committed template or VERSIONS.txt differ",
    )
    args = parser.parse_args(argv)

    packages, licences, template = build(PINS, npm=args.npm)
    versions = versions_text(packages, template)
    if args.check:
        same = (HERE / TEMPLATE_NAME).read_text(encoding="utf-8") == template and (
            HERE / "VERSIONS.txt"
        ).read_text(encoding="utf-8") == versions
        print("up to date" if same else "OUT OF DATE: run build_template.py without --check")
        return 0 if same else 1

    sys.path.insert(0, str(HERE.parents[2]))  # the repo root, for porescope.io.atomic
    from porescope.io.atomic import write_text

    for pkg in packages:
        write_text(HERE / f"LICENSE.{pkg.name}.txt", licences[pkg.name])
    write_text(HERE / TEMPLATE_NAME, template)
    write_text(HERE / "VERSIONS.txt", versions)
    size = len(template.encode("utf-8"))
    print(f"wrote {HERE / TEMPLATE_NAME} ({size / 1e6:.2f} MB)")
    for pkg in packages:
        print(f"  {pkg.name}@{pkg.version}: {len(pkg.bundle)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
