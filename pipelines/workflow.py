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
