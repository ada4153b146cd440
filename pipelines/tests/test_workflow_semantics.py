"""The pure helpers behind parameters, virtual jobs and restarts in `pipelines.workflow`."""

from __future__ import annotations

from pipelines import workflow

GRAPH = {
    "nodes": [
        {"name": "~commit"},
        {"name": "main"},
        {"name": "gate", "virtual": True},
        {"name": "deploy"},
        {"name": "docs"},
    ],
    "edges": [
        {"src": "~commit", "dest": "main"},
        {"src": "main", "dest": "gate", "join": True},
        {"src": "gate", "dest": "deploy", "join": True},
        {"src": "~commit", "dest": "docs"},
    ],
}


def test_parameters_take_the_choice_else_the_default_and_the_first_of_a_list() -> None:
    params = workflow.event_parameters(
        pipeline_parameters={"a": "x", "b": ["p", "q"], "c": {"value": "z", "description": "d"}},
        job_parameters={"main": {"size": "s"}, "docs": {}},
        chosen={"a": {"value": "chosen"}, "main": {"size": "l"}, "extra": "e"},
    )

    assert params == {
        "a": {"value": "chosen", "default": "x"},
        "b": {"value": "p", "default": ["p", "q"]},
        "c": {"value": "z", "default": "z"},
        "main": {"size": {"value": "l", "default": "s"}},
        "extra": {"value": "e"},
    }


def test_only_nodes_marked_virtual_are_virtual() -> None:
    assert workflow.is_virtual(GRAPH, "gate")
    assert not workflow.is_virtual(GRAPH, "main")
    assert not workflow.is_virtual(GRAPH, "missing")


def test_downstream_follows_every_edge_from_the_start() -> None:
    assert workflow.downstream(GRAPH, "main") == {"main", "gate", "deploy"}
    assert workflow.downstream(GRAPH, "docs") == {"docs"}
