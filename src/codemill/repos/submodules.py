"""Submodules of a git source, fetched when the snapshot is taken.

A commit records a submodule as a gitlink (a path and a commit sha); ``.gitmodules`` maps the
path to a URL. ``fetch_submodules`` mirrors each submodule's repository into the cache
(``gitcmd.ensure_mirror``: network allowed, nothing of the repository runs) and exports the
recorded commit into the staging tree at its path, recursively (nested submodules, to
``MAX_DEPTH``). What cannot be had (no URL, an unreachable or refused URL, a commit the
repository no longer has) is left absent and reported in a ``SubmoduleResult`` with the
reason; the environment builder later names the tests that needed it
(``missing_submodules`` reads what is absent back from a stored tree).

URLs are data from an untrusted repository. Relative URLs (``../lib.git``) resolve against
the superproject's own URL, as git does. A superproject fetched from a network URL may only
name network URLs: a local path or ``file://`` URL would copy files of this machine into the
snapshot. A URL that starts with ``-`` is refused (it would read as an option). The git
command line keeps its safety flags (no ``ext::`` transport, no hooks, no prompts).

Non-goals: git-lfs objects, submodules that need credentials, branches tracked by
``submodule.<name>.branch`` (the gitlink's commit is what the superproject recorded).
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.errors import SourceError
from codemill.repos.gitcmd import ensure_mirror, git, has_commit
from codemill.repos.history import export_tree

MAX_DEPTH = 3
_NETWORK = ("http://", "https://", "ssh://", "git://", "git+ssh://", "ftp://", "ftps://")


@dataclass(frozen=True)
class Submodule:
    path: str
    url: str
    """As ``.gitmodules`` spells it (may be relative)."""


@dataclass(frozen=True)
class SubmoduleResult:
    path: str
    url: str
    """Resolved URL ('' when ``.gitmodules`` has none for the path)."""
    fetched: bool
    reason: str = ""
    """Why it was not fetched."""


def parse_gitmodules(text: bytes) -> list[Submodule]:
    """The submodules ``.gitmodules`` declares, read by git's own config parser (reading a
    config file with ``--file`` runs nothing)."""
    with tempfile.NamedTemporaryFile(suffix=".gitmodules") as fh:
        fh.write(text)
        fh.flush()
        out = git(["config", "--no-includes", "--file", fh.name, "-z", "--get-regexp",
                   r"^submodule\..*\.(path|url)$"], check=False, global_config=False)
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    for rec in out.decode("utf-8", errors="replace").split("\0"):
        if "\n" not in rec:
            continue
        key, value = rec.split("\n", 1)
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        (paths if field == "path" else urls)[name] = value
    return [Submodule(path.strip("/"), urls.get(name, "")) for name, path in paths.items()]


def gitlinks(mirror: Path, commit: str) -> dict[str, str]:
    """``{path: commit sha}`` of the submodules recorded in ``commit``."""
    listing = git(["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit],
                  git_dir=mirror)
    out = {}
    for rec in listing.split(b"\0"):
        if rec:
            meta, path = rec.split(b"\t", 1)
            mode, kind, sha = meta.split(b" ")
            if kind == b"commit":
                out[path.decode("utf-8", errors="replace")] = sha.decode()
    return out


def resolve_url(url: str, parent: str) -> str:
    """``url`` as git would fetch it for a superproject at ``parent`` (a URL or a path);
    ``SourceError`` for a URL codemill refuses (see the module doc)."""
    url = url.strip()
    if not url or url.startswith("-"):
        raise SourceError(f"refused submodule URL {url!r}")
    if url.startswith(("./", "../")):
        base = parent.rstrip("/")
        for part in url.split("/"):
            if part == "..":
                base = base.rsplit("/", 1)[0] if "/" in base else base
            elif part not in (".", ""):
                base = f"{base}/{part}"
        url = base if "://" in base or not base.startswith("/") else posixpath.normpath(base)
    if _network(parent) and not _network(url):
        raise SourceError(f"refused submodule URL {url!r}: a repository fetched over the "
                          "network may not name a local path")
    return url


def _network(url: str) -> bool:
    """A URL git fetches over the network (scheme or ``user@host:path``), not a path."""
    if url.startswith(_NETWORK):
        return True
    head = url.split("/", 1)[0]
    return ":" in head and "@" in head.split(":", 1)[0]


def fetch_submodules(mirror: Path, commit: str, parent_url: str, dest: Path, home: Path,
                     say: Callable[[str], None], *, depth: int = 0) -> list[SubmoduleResult]:
    """Export the submodules of ``commit`` (read from ``mirror``, the superproject's
    mirror) into ``dest`` (the exported tree of that commit); see the module doc."""
    links = gitlinks(mirror, commit)
    if not links:
        return []
    try:
        declared = git(["cat-file", "blob", f"{commit}:.gitmodules"], git_dir=mirror)
    except SourceError:
        declared = b""
    urls = {s.path: s.url for s in parse_gitmodules(declared)}
    results = []
    for path, sha in sorted(links.items()):
        results.extend(_fetch_one(path, sha, urls.get(path, ""), parent_url, dest, home, say,
                                  depth))
    return results


def fetch_worktree_submodules(root: Path, dest: Path, home: Path, say: Callable[[str], None],
                              checked_out: Callable[[Path, str], bool]
                              ) -> list[SubmoduleResult]:
    """The submodules of a local work tree ``root`` whose copy in ``dest`` is missing:
    ``checked_out(dest, path)`` copies a checked-out one and says whether it did; the others
    are fetched at the commit the index records. Relative URLs resolve against the work
    tree's ``origin`` remote (git's rule), else the work tree itself."""
    out = git(["ls-files", "-s", "-z"], cwd=root)
    links = {}
    for rec in out.split(b"\0"):
        if rec.startswith(b"160000 "):
            meta, path = rec.split(b"\t", 1)
            links[path.decode("utf-8", errors="replace")] = meta.split(b" ")[1].decode()
    if not links:
        return []
    try:
        urls = {s.path: s.url for s in parse_gitmodules((root / ".gitmodules").read_bytes())}
    except OSError:
        urls = {}
    origin = git(["config", "--get", "remote.origin.url"], cwd=root, check=False)
    parent = origin.decode().strip() or str(root)
    results = []
    for path, sha in sorted(links.items()):
        if checked_out(dest, path):
            results.append(SubmoduleResult(path, urls.get(path, ""), True))
        else:
            results.extend(_fetch_one(path, sha, urls.get(path, ""), parent, dest, home, say,
                                      0))
    return results


def _fetch_one(path: str, sha: str, url: str, parent_url: str, dest: Path, home: Path,
               say: Callable[[str], None], depth: int) -> list[SubmoduleResult]:
    if not url:
        return [SubmoduleResult(path, "", False, "no URL for it in .gitmodules")]
    try:
        resolved = resolve_url(url, parent_url)
        target = _inside(dest, path)
        say(f"fetching submodule {path} from {resolved}")
        sub = ensure_mirror(resolved, home, fetch=False)
        if not has_commit(sub, sha):
            ensure_mirror(resolved, home)
        if not has_commit(sub, sha):
            raise SourceError(f"commit {sha[:12]} is not in {resolved}")
        export_tree(sub, sha, target)
    except SourceError as exc:
        say(f"submodule {path} not fetched: {exc}")
        return [SubmoduleResult(path, url, False, str(exc))]
    nested: list[SubmoduleResult] = []
    if depth + 1 < MAX_DEPTH:
        nested = fetch_submodules(sub, sha, resolved, target, home, say, depth=depth + 1)
    return [SubmoduleResult(path, resolved, True),
            *(SubmoduleResult(f"{path}/{r.path}", r.url, r.fetched, r.reason) for r in nested)]


def _inside(dest: Path, path: str) -> Path:
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
        raise SourceError(f"refused submodule path {path!r}")
    target = dest.joinpath(*parts)
    if target.exists() and any(target.iterdir()):
        raise SourceError(f"submodule path {path!r} is not empty in the tree")
    return target


def missing_submodules(tree: Path) -> list[Submodule]:
    """Submodules ``tree/.gitmodules`` declares whose path is absent or empty in ``tree``
    (a stored snapshot: reading it runs nothing)."""
    try:
        text = (tree / ".gitmodules").read_bytes()
    except OSError:
        return []
    out = []
    for sub in parse_gitmodules(text):
        target = tree / sub.path
        try:
            empty = not target.is_dir() or not any(target.iterdir())
        except OSError:
            empty = True
        if empty and ".." not in sub.path.split("/"):
            out.append(sub)
    return out
