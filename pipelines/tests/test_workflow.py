"""Behaviour of the pure workflow-graph helpers (pipelines.workflow)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.config import parse_pipeline_yaml
from pipelines.workflow import NextJob, join_parents, next_jobs, start_jobs


def graph_of(jobs: str) -> dict[str, Any]:
    """Return the workflow graph of a pipeline whose jobs are given as YAML."""
    result = parse_pipeline_yaml("shared: {image: alpine, steps: [x]}\njobs:\n" + jobs)
    assert "errors" not in result, result.get("errors")
    return result["workflowGraph"]  # type: ignore[no-any-return]


GRAPH = graph_of(
    "  build: {requires: [~commit, ~pr]}\n"
    "  lint: {requires: [~pr]}\n"
    "  unit: {requires: [build]}\n"
    "  integration: {requires: [build]}\n"
    "  publish: {requires: [unit, integration]}\n"
    "  notify: {requires: [~unit, ~integration]}\n"
    "  mixed: {requires: [~publish, unit, integration]}\n"
    "  release: {requires: [~commit:/^release-.*$/]}\n"
)


def test_commit_starts_the_jobs_that_require_commit() -> None:
    assert start_jobs(GRAPH, "~commit") == ["build"]


def test_pr_starts_the_jobs_that_require_pr() -> None:
    assert start_jobs(GRAPH, "~pr") == ["build", "lint"]


def test_a_commit_on_a_branch_also_starts_jobs_whose_branch_regex_matches() -> None:
    assert start_jobs(GRAPH, "~commit:release-1") == ["release"]
    assert start_jobs(GRAPH, "~commit:main") == []


def test_a_job_name_starts_just_that_job() -> None:
    assert start_jobs(GRAPH, "publish") == ["publish"]


def test_starting_from_an_unknown_job_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nope"):
        start_jobs(GRAPH, "nope")


def test_a_single_plain_require_is_a_join_with_one_parent() -> None:
    assert next_jobs(GRAPH, "build") == [
        NextJob(name="unit", join=True, parents=("build",)),
        NextJob(name="integration", join=True, parents=("build",)),
    ]


def test_an_and_join_lists_every_parent_and_tilde_requires_are_or() -> None:
    assert next_jobs(GRAPH, "unit") == [
        NextJob(name="publish", join=True, parents=("unit", "integration")),
        NextJob(name="notify", join=False, parents=()),
        NextJob(name="mixed", join=True, parents=("unit", "integration")),
    ]


def test_an_or_edge_wins_over_and_parents_of_the_same_job() -> None:
    assert next_jobs(GRAPH, "publish") == [
        NextJob(name="mixed", join=False, parents=("unit", "integration")),
    ]


def test_a_job_with_no_children_has_no_next_jobs() -> None:
    assert next_jobs(GRAPH, "notify") == []


def test_next_jobs_of_an_unknown_job_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ghost"):
        next_jobs(GRAPH, "ghost")


def test_join_parents_are_listed_once_in_graph_order() -> None:
    assert join_parents(GRAPH, "publish") == ("unit", "integration")
    assert join_parents(GRAPH, "build") == ()
