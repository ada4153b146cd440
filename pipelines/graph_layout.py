"""Lay out a workflow graph for the pipeline page's SVG: columns by depth, rows by order.

Pure functions, no database: the view passes the statuses and links of the selected event's
builds. The template draws what this returns; every text it shows is escaped there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NODE_W = 168
NODE_H = 36
TRIGGER_W = 104
COL_GAP = 56
ROW_GAP = 16
PAD = 16
STAGE_PAD = 10
STAGE_LABEL = 18
LABEL_CHARS = 20
# A matrix job's permutations are small squares in rows under its label.
MARK = 10
MARK_GAP = 4
MARK_LEFT = 10
MARKS_PER_ROW = (NODE_W - 2 * MARK_LEFT + MARK_GAP) // (MARK + MARK_GAP)

_REMOTE = re.compile(r"^~?sd@(\d+):(.+)$")


@dataclass(frozen=True)
class Permutation:
    """One build of a job as the view hands it over: status, link and what tells it apart."""

    status: str
    href: str
    title: str


@dataclass(frozen=True)
class Mark:
    """A permutation's status square inside its job's node."""

    status: str
    href: str
    title: str
    x: int
    y: int
    size: int = MARK

    @property
    def css_status(self) -> str:
        return (self.status or "none").lower()


@dataclass(frozen=True)
class NodeBox:
    """One node placed on the canvas."""

    name: str
    label: str
    kind: str  # "job", "trigger" or "remote"
    x: int
    y: int
    w: int
    h: int
    status: str = ""
    href: str = ""
    stage: str = ""
    virtual: bool = False
    marks: tuple[Mark, ...] = ()
    note: str = ""

    @property
    def css_status(self) -> str:
        return (self.status or "none").lower()

    @property
    def text_x(self) -> int:
        return self.x + (self.w // 2 if self.kind != "job" else 26)

    @property
    def mid_y(self) -> int:
        # The label row: a matrix node grows downwards for its marks, edges still meet its label.
        return self.y + NODE_H // 2

    @property
    def text_y(self) -> int:
        return self.mid_y + 5

    @property
    def dot_x(self) -> int:
        return self.x + 14

    @property
    def radius(self) -> int:
        return self.h // 2 if self.kind == "trigger" else 6


@dataclass(frozen=True)
class EdgePath:
    """One edge as an SVG path; `join` edges are AND requirements, the others OR or triggers."""

    src: str
    dest: str
    join: bool
    d: str


@dataclass(frozen=True)
class StageBox:
    """A rectangle around the jobs of one stage, with the status of the event's stage build."""

    name: str
    x: int
    y: int
    w: int
    h: int
    status: str = ""

    @property
    def css_status(self) -> str:
        return (self.status or "none").lower()


@dataclass(frozen=True)
class GraphLayout:
    """Everything the SVG template needs."""

    nodes: list[NodeBox] = field(default_factory=list)
    edges: list[EdgePath] = field(default_factory=list)
    stages: list[StageBox] = field(default_factory=list)
    width: int = 0
    height: int = 0


def remote_pipeline_id(name: str) -> int | None:
    """The pipeline id of a remote node (`sd@12:main` or `~sd@12:main`), else None."""
    match = _REMOTE.match(name)
    return int(match.group(1)) if match else None


def kind_of(name: str) -> str:
    if remote_pipeline_id(name) is not None:
        return "remote"
    return "trigger" if name.startswith("~") else "job"


def short_label(text: str, limit: int = LABEL_CHARS) -> str:
    """Cut a long label with an ellipsis; the full name is in the node's title."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def depths(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path depth of each node from the nodes nothing points at; cycles cannot loop."""
    children: dict[str, list[str]] = {n: [] for n in names}
    incoming = dict.fromkeys(names, 0)
    for src, dest in edges:
        if src in children and dest in incoming and src != dest:
            children[src].append(dest)
            incoming[dest] += 1
    depth = dict.fromkeys(names, 0)
    ready = [n for n in names if incoming[n] == 0]
    # Kahn's order: a node is placed once all its parents are, one column after the deepest.
    while ready:
        node = ready.pop()
        for child in children[node]:
            depth[child] = max(depth[child], depth[node] + 1)
            incoming[child] -= 1
            if incoming[child] == 0:
                ready.append(child)
    return depth


def layout(
    graph: dict[str, Any],
    *,
    statuses: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    permutations: dict[str, list[Permutation]] | None = None,
    remote_links: dict[int, str] | None = None,
    stage_statuses: dict[str, str] | None = None,
    notes: dict[str, str] | None = None,
) -> GraphLayout:
    """Place the graph's nodes in columns by depth; unused triggers are left out.

    A remote node links only where `remote_links` has its pipeline: the caller decides which
    pipelines the viewer may read, so a private one stays plain text.
    """
    statuses, links = statuses or {}, links or {}
    permutations, remote_links, notes = permutations or {}, remote_links or {}, notes or {}
    raw_nodes = [n for n in graph.get("nodes", []) or [] if isinstance(n, dict) and n.get("name")]
    raw_edges = [
        (str(e.get("src", "")), str(e.get("dest", "")), bool(e.get("join")))
        for e in graph.get("edges", []) or []
        if isinstance(e, dict)
    ]
    used = {s for s, _, _ in raw_edges} | {d for _, d, _ in raw_edges}
    info = {
        str(n["name"]): n
        for n in raw_nodes
        if kind_of(str(n["name"])) != "trigger" or str(n["name"]) in used
    }
    names = list(info)
    edges = [(s, d, j) for s, d, j in raw_edges if s in info and d in info]
    depth = depths(names, [(s, d) for s, d, _ in edges])

    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(depth[name], []).append(name)
    row: dict[str, float] = {}
    parents: dict[str, list[str]] = {}
    for s, d, _ in edges:
        parents.setdefault(d, []).append(s)
    for col in sorted(columns):
        # Order each column by where its parents sit, which untangles most crossings.
        members = columns[col]
        keyed = sorted(
            members,
            key=lambda n: (
                _mean([row[p] for p in parents.get(n, []) if p in row], members.index(n)),
                members.index(n),
            ),
        )
        columns[col] = keyed
        for i, n in enumerate(keyed):
            row[n] = i

    col_x: dict[int, int] = {}
    x = PAD
    for col in sorted(columns):
        col_x[col] = x
        wide = any(kind_of(n) != "trigger" for n in columns[col])
        x += (NODE_W if wide else TRIGGER_W) + COL_GAP
    boxes: dict[str, NodeBox] = {}
    for col, members in columns.items():
        y = PAD + STAGE_LABEL
        for name in members:
            node = info[name]
            kind = kind_of(name)
            label = str(node.get("displayName") or name)
            remote = remote_pipeline_id(name)
            href = links.get(name, "")
            if remote is not None:
                href = remote_links.get(remote, "")
            perms = permutations.get(name, []) if kind == "job" else []
            # One build is the node itself; marks only say something when there are several.
            marks = _marks(col_x[col], y, perms) if len(perms) > 1 else ()
            boxes[name] = NodeBox(
                name=name,
                label=short_label(label),
                kind=kind,
                x=col_x[col],
                y=y,
                w=TRIGGER_W if kind == "trigger" else NODE_W,
                h=NODE_H + _marks_height(len(marks)),
                status=statuses.get(name, "") if kind == "job" else "",
                href=href,
                stage=str(node.get("stageName") or ""),
                virtual=bool(node.get("virtual")),
                marks=marks,
                note=notes.get(name, "") if kind == "job" else "",
            )
            y += boxes[name].h + ROW_GAP
    paths = [_edge(boxes[s], boxes[d], join) for s, d, join in edges]
    width = max((b.x + b.w for b in boxes.values()), default=0) + PAD
    height = max((b.y + b.h for b in boxes.values()), default=0) + PAD
    return GraphLayout(
        nodes=[boxes[n] for n in names],
        edges=paths,
        stages=_stages(boxes.values(), stage_statuses or {}),
        width=width,
        height=height,
    )


def _marks_height(count: int) -> int:
    return -(-count // MARKS_PER_ROW) * (MARK + MARK_GAP)


def _marks(x: int, y: int, perms: list[Permutation]) -> tuple[Mark, ...]:
    top = y + NODE_H - MARK_GAP
    return tuple(
        Mark(
            status=p.status,
            href=p.href,
            title=p.title,
            x=x + MARK_LEFT + (i % MARKS_PER_ROW) * (MARK + MARK_GAP),
            y=top + (i // MARKS_PER_ROW) * (MARK + MARK_GAP),
        )
        for i, p in enumerate(perms)
    )


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _edge(src: NodeBox, dest: NodeBox, join: bool) -> EdgePath:
    x1, y1 = src.x + src.w, src.mid_y
    x2, y2 = dest.x, dest.mid_y
    if x2 <= x1:
        # A back edge (only in a cycle the parser would reject): loop under the boxes.
        low = max(src.y + src.h, dest.y + dest.h) + ROW_GAP // 2
        d = f"M{x1} {y1} C{x1 + 30} {low} {x2 - 30} {low} {x2} {y2}"
    else:
        mid = (x1 + x2) // 2
        d = f"M{x1} {y1} C{mid} {y1} {mid} {y2} {x2 - 6} {y2}"
    return EdgePath(src=src.name, dest=dest.name, join=join, d=d)


def _stages(boxes: Any, statuses: dict[str, str]) -> list[StageBox]:
    groups: dict[str, list[NodeBox]] = {}
    for box in boxes:
        if box.stage:
            groups.setdefault(box.stage, []).append(box)
    result = []
    for name, members in groups.items():
        left = min(b.x for b in members) - STAGE_PAD
        top = min(b.y for b in members) - STAGE_PAD - STAGE_LABEL
        right = max(b.x + b.w for b in members) + STAGE_PAD
        bottom = max(b.y + b.h for b in members) + STAGE_PAD
        result.append(
            StageBox(
                name=name,
                x=left,
                y=top,
                w=right - left,
                h=bottom - top,
                status=statuses.get(name, ""),
            )
        )
    return result
