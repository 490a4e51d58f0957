"""Fetching a PyPI source distribution, without running any of it.

``pip download`` is not used on purpose: for an sdist it runs the project's build backend
(``setup.py``) to prepare metadata, i.e. untrusted code outside a sandbox. Instead we read
the JSON API (``/pypi/NAME/json`` or ``/pypi/NAME/VERSION/json``), pick the sdist
(``.tar.gz`` preferred, else ``.zip``), download it with httpx, check its sha256 against
the index, and keep it under ``<home>/cache/sdists/``. The release's upload time is the
snapshot's ``created_at``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from codemill.core.errors import SourceError
from codemill.core.ids import file_sha256

PYPI_JSON = "https://pypi.org/pypi"
MAX_SDIST_BYTES = 1 << 30
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    uploaded_at: str
    """ISO 8601 upload time of the file."""


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME==VERSION`` (after ``pypi:``) -> (name, version or None)."""
    name, _, version = spec.partition("==")
    name, version = name.strip(), version.strip()
    if not _NAME.match(name) or (version and not _VERSION.match(version)):
        raise SourceError(f"pypi:{spec}: expected pypi:NAME or pypi:NAME==VERSION")
    return name, version or None


def find_sdist(name: str, version: str | None, client: httpx.Client,
               index: str = PYPI_JSON) -> Sdist:
    """Ask the JSON API for the sdist of ``name`` (latest release when ``version`` is None).

    A pinned version is read from ``/NAME/VERSION/json``; where that endpoint is missing
    (some mirrors), from the ``releases`` of ``/NAME/json``. File URLs may be relative
    (mirrors again) and are resolved against the JSON URL."""
    what = f"{name}=={version}" if version else name
    url = f"{index}/{name}/{version}/json" if version else f"{index}/{name}/json"
    status, data = _get_json(client, url, what)
    if status == 404 and version:
        url = f"{index}/{name}/json"
        status, data = _get_json(client, url, what)
        if status == 200:
            releases = data.get("releases") or {}
            if version not in releases:
                raise SourceError(f"pypi:{what}: PyPI has no version {version} of {name}")
            data = {"info": {**data["info"], "version": version}, "urls": releases[version]}
    if status == 404:
        raise SourceError(f"pypi:{what}: no such project or version on PyPI")
    if status != 200:
        raise SourceError(f"pypi:{what}: the index answered HTTP {status}")
    try:
        info, files = data["info"], data["urls"]
        sdists = [f for f in files if f.get("packagetype") == "sdist"
                  and f.get("filename", "").endswith((".tar.gz", ".zip"))]
        if not sdists:
            raise SourceError(f"pypi:{what}: release {info.get('version')} has no source "
                              "distribution (.tar.gz or .zip)")
        best = sorted(sdists, key=lambda f: not f["filename"].endswith(".tar.gz"))[0]
        filename = best["filename"]
        if "/" in filename or filename.startswith("."):
            raise SourceError(f"pypi:{what}: suspicious file name {filename!r}")
        return Sdist(info["name"], info["version"], filename, urljoin(url, best["url"]),
                     best["digests"]["sha256"], best.get("upload_time_iso_8601") or "")
    except (KeyError, TypeError, AttributeError) as exc:
        raise SourceError(f"pypi:{what}: unexpected answer from the index ({exc})") from exc


def _get_json(client: httpx.Client, url: str, what: str) -> tuple[int, dict[str, Any]]:
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        raise SourceError(f"pypi:{what}: cannot reach the index: {exc}") from exc
    if resp.status_code != 200:
        return resp.status_code, {}
    try:
        data = resp.json()
    except ValueError as exc:
        raise SourceError(f"pypi:{what}: the index answered something not JSON") from exc
    if not isinstance(data, dict):
        raise SourceError(f"pypi:{what}: unexpected answer from the index")
    return 200, data


def fetch_sdist(spec: str, home: Path, *, index: str = PYPI_JSON,
                timeout_s: float = 60.0) -> tuple[Sdist, Path]:
    """Resolve ``NAME[==VERSION]`` and return it with its verified archive in the cache."""
    name, version = parse_spec(spec)
    cache = home / "cache" / "sdists"
    cache.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        sdist = find_sdist(name, version, client, index)
        path = cache / sdist.filename
        if path.exists() and file_sha256(path) == sdist.sha256:
            return sdist, path
        _download(client, sdist, path)
    return sdist, path


def _download(client: httpx.Client, sdist: Sdist, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".dl-", dir=path.parent)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", sdist.url) as resp:
            if resp.status_code != 200:
                raise SourceError(f"{sdist.filename}: download answered HTTP "
                                  f"{resp.status_code}")
            for chunk in resp.iter_bytes(1 << 20):
                size += len(chunk)
                if size > MAX_SDIST_BYTES:
                    raise SourceError(f"{sdist.filename}: larger than "
                                      f"{MAX_SDIST_BYTES >> 20} MiB")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sdist.sha256:
            raise SourceError(f"{sdist.filename}: sha256 does not match the index")
        os.replace(tmp, path)
    except httpx.HTTPError as exc:
        raise SourceError(f"{sdist.filename}: download failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
