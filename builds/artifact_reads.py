"""Reading a build's artifacts: what kind of file each is, its folders, and the tree of them.

A build is untrusted code and so are its files' names, bytes and recorded content types:
`kind_of` decides from a short allowlist how a file may be shown (text, a raster image, an HTML
report for a sandboxed frame), and everything else is a file to download, never shown.
Listings and trees come from one query of the build's rows, shaped in Python, so a build
with thousands of files costs what one with ten does.
"""

from __future__ import annotations

import codecs
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

from builds.models import Artifact, Build
from screwdriver_site.outputs import read_chunks

Kind = Literal["text", "image", "html", "binary"]

# Raster images a browser shows without running anything. SVG is not one: it holds scripts.
INLINE_IMAGES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/avif",
        "image/x-icon",
        "image/vnd.microsoft.icon",
    }
)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/x-sh",
        "application/x-shellscript",
        "application/x-ruby",
        "application/x-perl",
        "application/x-python",
        "application/sql",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-ndjson",
        "application/junit+xml",
    }
)
# Names the platform's type table may not know, written by build tools as plain text.
TEXT_EXTENSIONS = frozenset(
    {
        "log", "txt", "out", "err", "yaml", "yml", "toml", "ini", "cfg", "conf", "properties",
        "env", "md", "rst", "adoc", "csv", "tsv", "json", "jsonl", "ndjson", "xml", "lcov",
        "info", "diff", "patch", "sh", "bash", "zsh", "py", "rb", "pl", "go", "rs", "c", "h",
        "cc", "cpp", "hpp", "cs", "java", "kt", "kts", "scala", "swift", "m", "lua", "js",
        "mjs", "cjs", "ts", "tsx", "jsx", "css", "scss", "less", "sql", "gradle", "tf", "hcl",
        "dockerfile", "gitignore", "editorconfig", "lock", "sum", "mod", "vb", "dtd", "tox",
    }
)  # fmt: skip
TEXT_NAMES = frozenset(
    {"readme", "license", "licence", "changelog", "authors", "notice", "copying", "version"}
)

# How much of a text file the build page shows, and the largest image or report it loads.
TEXT_PREVIEW_BYTES = 64 * 1024
INLINE_LOAD_BYTES = 10 * 1024 * 1024


def kind_of(path: str, content_type: str) -> Kind:
    """How a file may be shown: as text, as an image, as a sandboxed report, or not at all."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    if content_type in INLINE_IMAGES:
        return "image"
    if content_type in HTML_TYPES:
        return "html"
    if (content_type.startswith("text/") and content_type != "text/html") or (
        content_type in TEXT_APPLICATION_TYPES
    ):
        return "text"
    name = posixpath.basename(path).lower()
    stem, dot, extension = name.rpartition(".")
    if (dot and extension in TEXT_EXTENSIONS) or (
        not dot and (name in TEXT_NAMES or name.endswith("file"))
    ):
        return "text"
    if dot and stem in TEXT_NAMES and extension in ("md", "txt", "rst"):
        return "text"
    return "binary"


def is_missing(error: BaseException) -> bool:
    """Whether a storage read failed because the stored file is not there (folder or S3)."""
    if isinstance(error, FileNotFoundError):
        return True
    answer: Any = getattr(error, "response", None)
    code = answer.get("Error", {}).get("Code") if isinstance(answer, dict) else None
    return code in ("NoSuchKey", "404", "NotFound")


def stored_chunks(artifact: Artifact, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The artifact's bytes from `start` to `end` (at most its recorded size), in chunks.

    A stored file that is gone raises FileNotFoundError with either storage.
    """
    stop = artifact.size if end is None else min(end, artifact.size)
    try:
        yield from read_chunks(artifact.storage_name, start, stop)
    except Exception as error:
        if is_missing(error) and not isinstance(error, FileNotFoundError):
            raise FileNotFoundError(artifact.storage_name) from error
        raise


class Row(NamedTuple):
    """What listings and trees need of one artifact."""

    path: str
    size: int
    content_type: str
    sha256: str
    created_at: datetime


def rows_of(build: Build) -> list[Row]:
    """The build's artifacts in path order, in one query."""
    values = Artifact.objects.filter(build=build).values_list(
        "path", "size", "content_type", "sha256", "created_at"
    )
    return sorted((Row(*value) for value in values), key=lambda row: row.path)


def artifacts_under(build: Build, folder: str) -> list[Artifact]:
    """The build's artifacts in the folder `folder` (all of them for ""), in path order."""
    found = Artifact.objects.filter(build=build)
    if folder:
        found = found.filter(path__startswith=f"{folder}/")
    return sorted(found, key=lambda artifact: artifact.path)


@dataclass(frozen=True)
class FolderEntry:
    """A file, or a folder with the number and total size of the files under it."""

    name: str
    path: str
    is_folder: bool
    size: int
    files: int = 1
    row: Row | None = None


def folder_entries(rows: list[Row], folder: str) -> list[FolderEntry] | None:
    """What the folder `folder` ("" for the top) holds, folders first; None if it holds nothing.

    A name may be a file and a folder at once (an upload of `a` and `a/b`): both are listed.
    """
    prefix = f"{folder}/" if folder else ""
    files: list[FolderEntry] = []
    folders: dict[str, list[int]] = {}
    for row in rows:
        if not row.path.startswith(prefix):
            continue
        head, slash, _rest = row.path[len(prefix) :].partition("/")
        if slash:
            totals = folders.setdefault(head, [0, 0])
            totals[0] += 1
            totals[1] += row.size
        else:
            files.append(FolderEntry(head, row.path, False, row.size, row=row))
    if not files and not folders:
        return None
    subfolders = [
        FolderEntry(name, f"{prefix}{name}", True, size, count)
        for name, (count, size) in sorted(folders.items())
    ]
    return subfolders + sorted(files, key=lambda entry: entry.name)


# --- the build page's tree ---------------------------------------------------------------


@dataclass
class _Node:
    folders: dict[str, _Node] = field(default_factory=dict)
    files: list[Row] = field(default_factory=list)
    size: int = 0
    count: int = 0


@dataclass(frozen=True)
class TreeRow:
    """One line of the tree, flattened: a folder opens a nested list that `closes` lists end."""

    name: str
    path: str
    depth: int
    is_folder: bool
    size: int
    files: int
    quoted: str  # the path as a URL's path holds it
    expanded: bool = False
    selected: bool = False
    closes: range = range(0)


# A build with at most this many files shows its tree fully open.
OPEN_TREE_FILES = 200


def tree_rows(rows: list[Row], *, selected: str) -> list[TreeRow]:
    """The tree of `rows` as flat lines, folders before files, each level by name.

    The folders on the way to `selected` are open, all of them for a small build.
    """
    root = _Node()
    for row in rows:
        node = root
        node.size += row.size
        node.count += 1
        *folders, _name = row.path.split("/")
        for name in folders:
            node = node.folders.setdefault(name, _Node())
            node.size += row.size
            node.count += 1
        node.files.append(row)
    open_all = len(rows) <= OPEN_TREE_FILES
    out: list[TreeRow] = []

    def walk(node: _Node, prefix: str, depth: int) -> None:
        for name, child in sorted(node.folders.items()):
            path = f"{prefix}{name}"
            out.append(
                TreeRow(
                    name=name,
                    path=path,
                    depth=depth,
                    is_folder=True,
                    size=child.size,
                    files=child.count,
                    quoted=quote(path),
                    expanded=open_all or selected == path or selected.startswith(f"{path}/"),
                    selected=selected == path,
                )
            )
            walk(child, f"{path}/", depth + 1)
            # A folder holds at least one file: its nested list ends after its last line.
            last = out[-1]
            out[-1] = replace(last, closes=range(len(last.closes) + 1))
        for row in node.files:
            name = row.path.rpartition("/")[2]
            out.append(
                TreeRow(
                    name=name,
                    path=row.path,
                    depth=depth,
                    is_folder=False,
                    size=row.size,
                    files=1,
                    quoted=quote(row.path),
                    selected=selected == row.path,
                )
            )

    walk(root, "", 0)
    return out


# --- one file on the build page ----------------------------------------------------------


@dataclass(frozen=True)
class FileView:
    """What the build page shows of one artifact: never more than it must load."""

    artifact: Artifact
    kind: Kind
    text: str = ""
    truncated: bool = False
    looks_binary: bool = False
    too_large: bool = False
    missing: bool = False


def file_view(artifact: Artifact) -> FileView:
    """The artifact as the build page shows it: the head of a text, or what to load."""
    kind = kind_of(artifact.path, artifact.content_type)
    if kind in ("image", "html"):
        return FileView(artifact, kind, too_large=artifact.size > INLINE_LOAD_BYTES)
    if kind != "text":
        return FileView(artifact, kind)
    try:
        head = b"".join(stored_chunks(artifact, 0, TEXT_PREVIEW_BYTES))
    except FileNotFoundError:
        return FileView(artifact, kind, missing=True)
    if b"\0" in head:
        # Named like text, holds binary bytes: offered for download like any other binary.
        return FileView(artifact, kind, looks_binary=True)
    # A cut in the middle of a character shows nothing rather than a replacement mark.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=False)
    return FileView(artifact, kind, text=text, truncated=artifact.size > len(head))
