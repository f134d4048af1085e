"""Install GOV.UK Frontend's compiled assets (CSS, fonts, images, JavaScript) for the pages.

No Python package ships them; the npm registry's `govuk-frontend` package does, as `dist/govuk/`.
This fetches that one tarball (pinned, and checked against the registry's sha512 integrity), and
unpacks its assets beside the virtualenv's packages, where the application serves them at
`/assets`. Nothing of it is copied into this tree. Python's standard library only: it runs before
anything else is installed, on a machine with nothing but Python.

    python scripts/fetch_frontend.py DESTINATION
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "6.3.0"  # the release govuk-frontend-jinja 4.1 was checked against
URL = f"https://registry.npmjs.org/govuk-frontend/-/govuk-frontend-{VERSION}.tgz"
INTEGRITY = "sha512-cXIQxm5PHCsbic47GXZrVBZhAeeshTLRL6ZBKilLsR6rMCjJuWb7Fruq0VUNMBJFlJk/srsRj/q8d5bM9cgKoA=="
DIST = "package/dist/govuk/"
# The compiled files the pages use; the CSS refers to fonts and images as /assets/...
WANTED = ("govuk-frontend.min.css", "govuk-frontend.min.js", "assets/")


def fetch(destination: Path) -> None:
    marker = destination / f".govuk-frontend-{VERSION}"
    if marker.exists():
        return
    with urllib.request.urlopen(URL, timeout=60) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"govuk-frontend {VERSION}: the download does not match its integrity hash")
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix(DIST)
            if not member.isfile() or name == member.name or not name.startswith(WANTED):
                continue
            if name.startswith("assets/"):
                name = name.removeprefix("assets/")
            target = staging / name
            if ".." in Path(name).parts:
                raise SystemExit(f"govuk-frontend {VERSION}: refusing the path {member.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    (staging / marker.name).write_text(URL + "\n", encoding="utf-8")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)  # all or nothing: a half-unpacked folder is never served


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    fetch(Path(sys.argv[1]))
    print(f"GOV.UK Frontend {VERSION} assets in {sys.argv[1]}")
