"""Pure functions over a workflow graph (``{"nodes": [...], "edges": [...]}``); no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Graph = dict[str, Any]

# ~commit:/^release-.*$/ style edge sources: the text between the slashes is a branch regex.
_BRANCH_REGEX_SOURCE = re.compile(r"^~(pr|pr-closed|commit|release|tag|subscribe):/(.+)/$")
_BRANCH_TRIGGER = re.compile(r"^~(pr|pr-closed|commit|release|tag|subscribe):(.+)$")
_EXTERNAL = re.compile(r"^~?sd@\d+:")


@dataclass(frozen=True)
class NextJob:
    """A job to consider after another finished; ``parents`` are all its AND-join sources."""

    name: str
    join: bool
    parents: tuple[str, ...]


def is_job_node(name: str) -> bool:
    """Return whether a node name is a job of this pipeline (not a trigger or remote job)."""
    return not name.startswith("~") and not _EXTERNAL.match(name)


def _node_names(graph: Graph) -> list[str]:
    """Return the names of all nodes."""
    return [node["name"] for node in graph.get("nodes", [])]


def start_jobs(graph: Graph, start_from: str) -> list[str]:
    """Return the jobs an event starting from ``start_from`` runs first, in graph order."""
    if not start_from.startswith("~"):
        if start_from not in _node_names(graph) or not is_job_node(start_from):
            raise ValueError(f"{start_from!r} is not a job in this workflow")
        return [start_from]
    branch = _BRANCH_TRIGGER.match(start_from)
    jobs: dict[str, None] = {}
    for edge in graph.get("edges", []):
        source_regex = _BRANCH_REGEX_SOURCE.match(edge["src"])
        if source_regex:
            # ~commit:main starts jobs that require ~commit:/^ma.*$/ (a regex on the branch).
            if branch and branch.group(1) == source_regex.group(1):
                try:
                    matches = re.search(source_regex.group(2), branch.group(2)) is not None
                except re.error:
                    matches = False
                if matches:
                    jobs[edge["dest"]] = None
        elif edge["src"] == start_from:
            jobs[edge["dest"]] = None
    return list(jobs)


def join_parents(graph: Graph, job: str) -> tuple[str, ...]:
    """Return every AND-join source of ``job`` (its plain-name ``requires``), in graph order."""
    parents = dict.fromkeys(
        edge["src"] for edge in graph.get("edges", []) if edge["dest"] == job and edge.get("join")
    )
    return tuple(parents)


def next_jobs(graph: Graph, finished_job: str) -> list[NextJob]:
    """Return the jobs to consider after ``finished_job`` succeeded.

    An OR edge (``requires: [~a]``) starts the job outright (``join=False``) even when the job
    also has AND parents; otherwise the job is a join and runs once all ``parents`` succeeded.
    """
    if finished_job not in _node_names(graph):
        raise ValueError(f"{finished_job!r} is not a job in this workflow")
    order: dict[str, bool] = {}
    for edge in graph.get("edges", []):
        if edge["src"] != finished_job:
            continue
        is_or = not edge.get("join")
        order[edge["dest"]] = order.get(edge["dest"], False) or is_or
    return [
        NextJob(name=name, join=not is_or, parents=join_parents(graph, name))
        for name, is_or in order.items()
    ]


def _declared_default(declared: Any) -> Any:
    # `name: value`, `name: [a, b]` or `name: {value, description}`; a list offers choices.
    return declared.get("value") if isinstance(declared, dict) else declared


def _chosen_value(chosen: Any) -> Any:
    # Screwdriver's UI sends `{name: {value: v}}`; a bare `{name: v}` is accepted too.
    return chosen.get("value") if isinstance(chosen, dict) and "value" in chosen else chosen


def _scope_parameters(declared: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in declared.items():
        default = _declared_default(spec)
        if name in chosen:
            value = _chosen_value(chosen[name])
        else:
            value = default[0] if isinstance(default, list) and default else default
        out[str(name)] = {"value": value, "default": default}
    return out


def event_parameters(
    *,
    pipeline_parameters: dict[str, Any],
    job_parameters: dict[str, dict[str, Any]],
    chosen: dict[str, Any],
) -> dict[str, Any]:
    """Return an event's ``meta.parameters``: each declared one as ``{value, default}``.

    Pipeline parameters sit at ``NAME``, a job's at ``JOB.NAME``; a choice given at start wins
    over the default (the first item when the default is a list). Undeclared choices are kept.
    """
    params = _scope_parameters(pipeline_parameters, chosen)
    for job, declared in job_parameters.items():
        if declared:
            own = chosen.get(job)
            params[job] = _scope_parameters(declared, own if isinstance(own, dict) else {})
    for name, value in chosen.items():
        if name not in params:
            params[str(name)] = {"value": _chosen_value(value)}
    return params


def is_virtual(graph: Graph, job: str) -> bool:
    """Return whether ``job`` is virtual (``screwdriver.cd/virtualJob``): it succeeds unrun."""
    return any(n["name"] == job and n.get("virtual") for n in graph.get("nodes", []))


def downstream(graph: Graph, start: str) -> set[str]:
    """Return ``start`` and every node an edge path leads to from it."""
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for edge in graph.get("edges", []):
            if edge["src"] == node and edge["dest"] not in seen:
                seen.add(edge["dest"])
                todo.append(edge["dest"])
    return seen


# --- stages and remote jobs ----------------------------------------------------------------

_REMOTE = re.compile(r"^(~?)sd@(\d+):([\w-]+)$")
_STAGE_JOB = re.compile(r"^stage@([\w-]+):(setup|teardown)$")


@dataclass(frozen=True)
class RemoteJob:
    """A job of another pipeline named in a graph: ``~sd@ID:job`` (OR) or ``sd@ID:job`` (AND)."""

    pipeline_id: int
    job: str
    join: bool

    def node(self) -> str:
        return f"{'' if self.join else '~'}sd@{self.pipeline_id}:{self.job}"


def remote_job(name: str) -> RemoteJob | None:
    """Parse a remote job reference, or None when ``name`` is not one."""
    found = _REMOTE.match(name)
    if not found:
        return None
    return RemoteJob(pipeline_id=int(found.group(2)), job=found.group(3), join=not found.group(1))


def remote_sources(graph: Graph) -> list[tuple[str, str]]:
    """Return ``(remote source, local job)`` for every edge that comes from another pipeline."""
    pairs: dict[tuple[str, str], None] = {}
    for edge in graph.get("edges", []):
        if remote_job(edge["src"]) and is_job_node(edge["dest"]):
            pairs[(edge["src"], edge["dest"])] = None
    return list(pairs)


def stage_of(graph: Graph, job: str) -> str | None:
    """Return the name of the stage ``job`` belongs to (setup and teardown included)."""
    for node in graph.get("nodes", []):
        if node["name"] == job:
            return node.get("stageName") or None
    found = _STAGE_JOB.match(job)
    return found.group(1) if found else None


def stage_teardown(stage: str) -> str:
    return f"stage@{stage}:teardown"


def stage_setup(stage: str) -> str:
    return f"stage@{stage}:setup"


def stage_jobs(graph: Graph, stage: str) -> list[str]:
    """Return the jobs of ``stage`` other than its setup and teardown, in graph order."""
    return [
        node["name"]
        for node in graph.get("nodes", [])
        if node.get("stageName") == stage and not _STAGE_JOB.match(node["name"])
    ]


def is_stage_teardown(job: str) -> bool:
    found = _STAGE_JOB.match(job)
    return bool(found and found.group(2) == "teardown")


def stage_graph(graph: Graph, stage: str) -> Graph:
    """Return the part of ``graph`` inside ``stage``: its nodes and the edges between them."""
    names = {n["name"] for n in graph.get("nodes", []) if n.get("stageName") == stage}
    return {
        "nodes": [n for n in graph.get("nodes", []) if n["name"] in names],
        "edges": [e for e in graph.get("edges", []) if e["src"] in names and e["dest"] in names],
    }
