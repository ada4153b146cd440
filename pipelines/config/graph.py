"""Build the workflow graph from flattened jobs, with the reference's node and edge rules."""

from __future__ import annotations

import re
from typing import Any

# A "~" before these names is part of the trigger's name; before anything else it means OR.
_KEEPS_TILDE = re.compile(r"^~((pr|pr-closed|commit|release|tag)(?:$|:)|(sd@))")
TRIGGER_NODES = ("~pr", "~commit")


def node_name(requirement: str) -> str:
    """Return the graph node a ``requires`` entry points at (``~main`` -> ``main``)."""
    return requirement if _KEEPS_TILDE.search(requirement) else requirement.replace("~", "", 1)


def _requires_list(requires: Any) -> list[str]:
    """Return requires as a list; a plain string means one entry."""
    if isinstance(requires, list):
        return requires
    return [requires] if requires else []


def build_workflow_graph(jobs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return ``{"nodes", "edges"}`` for flattened jobs (before permutation)."""
    names: dict[str, None] = dict.fromkeys(TRIGGER_NODES)
    for job_name, job in jobs.items():
        names[job_name] = None
        # The reference adds nodes only for list-form requires; string-form ones stay edge-only.
        if isinstance(job.get("requires"), list):
            names.update((node_name(entry), None) for entry in job["requires"])
    nodes = [_node(name, jobs.get(name)) for name in names]

    edges: list[dict[str, Any]] = []
    for job_name, job in jobs.items():
        requires = _requires_list(job.get("requires"))
        either = list(dict.fromkeys(entry for entry in requires if entry.startswith("~")))
        every = list(dict.fromkeys(entry for entry in requires if not entry.startswith("~")))
        edges.extend({"src": node_name(entry), "dest": job_name} for entry in either)
        edges.extend({"src": entry, "dest": job_name, "join": True} for entry in every)
    for node in nodes:
        if node["name"] == "subscribe":
            node["name"] = "~subscribe"
    for edge in edges:
        if edge["src"] == "subscribe":
            edge["src"] = "~subscribe"
    return {"nodes": nodes, "edges": edges}


def _node(name: str, job: dict[str, Any] | None) -> dict[str, Any]:
    """Return one node, with displayName/virtual taken from the job's annotations."""
    node: dict[str, Any] = {"name": name}
    annotations = (job or {}).get("annotations") or {}
    for annotation, field_name in (
        ("screwdriver.cd/displayName", "displayName"),
        ("screwdriver.cd/virtualJob", "virtual"),
    ):
        # A null annotation still shows on the node, as in the reference.
        if annotation in annotations:
            node[field_name] = annotations[annotation]
    stage = (job or {}).get("stage")
    if isinstance(stage, dict) and stage.get("name"):
        node["stageName"] = stage["name"]
    return node


def has_cycle(graph: dict[str, list[dict[str, Any]]]) -> bool:
    """Return whether following edges from any node can come back to it."""
    children: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        children.setdefault(edge["src"], []).append(edge["dest"])
    done: set[str] = set()
    for root in children:
        if root in done:
            continue
        # Iterative DFS with an explicit path, so a long chain cannot exhaust Python's stack.
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(children.get(root, []))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if child in on_path:
                return True
            if child in done:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(children.get(child, [])))
    return False
