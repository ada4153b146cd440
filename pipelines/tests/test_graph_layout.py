"""The workflow graph's layout: columns by depth, unused triggers hidden, stages boxed."""

from __future__ import annotations

from pipelines.graph_layout import (
    MARKS_PER_ROW,
    NODE_H,
    Permutation,
    depths,
    layout,
    remote_pipeline_id,
    short_label,
)


def test_depth_is_the_longest_path_so_a_join_sits_after_all_its_parents() -> None:
    names = ["~commit", "a", "b", "c", "join"]
    edges = [("~commit", "a"), ("a", "b"), ("b", "c"), ("a", "join"), ("c", "join")]
    assert depths(names, edges) == {"~commit": 0, "a": 1, "b": 2, "c": 3, "join": 4}


def test_a_cycle_does_not_loop_forever() -> None:
    assert set(depths(["a", "b"], [("a", "b"), ("b", "a")])) == {"a", "b"}


def test_a_200_job_chain_is_laid_out_without_recursion() -> None:
    names = [f"j{i}" for i in range(200)]
    graph = {
        "nodes": [{"name": n} for n in names],
        "edges": [{"src": names[i - 1], "dest": names[i]} for i in range(1, 200)],
    }
    drawn = layout(graph)
    assert [n.x for n in drawn.nodes] == sorted(n.x for n in drawn.nodes)
    assert drawn.width > 200 * 168


def test_nodes_get_statuses_links_kinds_and_unused_triggers_are_hidden() -> None:
    graph = {
        "nodes": [
            {"name": "~pr"},
            {"name": "~commit"},
            {"name": "main", "stageName": "ci"},
            {"name": "test", "stageName": "ci"},
            {"name": "sd@9:deploy"},
        ],
        "edges": [
            {"src": "~commit", "dest": "main"},
            {"src": "main", "dest": "test", "join": True},
            {"src": "test", "dest": "sd@9:deploy"},
        ],
    }
    drawn = layout(
        graph,
        statuses={"main": "FAILURE"},
        links={"main": "/b/1"},
        remote_links={9: "/pipelines/9"},
        stage_statuses={"ci": "RUNNING"},
    )
    by_name = {n.name: n for n in drawn.nodes}
    assert "~pr" not in by_name
    assert by_name["~commit"].kind == "trigger" and by_name["sd@9:deploy"].kind == "remote"
    assert by_name["main"].css_status == "failure" and by_name["main"].href == "/b/1"
    assert by_name["test"].css_status == "none"
    assert by_name["sd@9:deploy"].href == "/pipelines/9"
    assert [e.join for e in drawn.edges] == [False, True, False]
    (stage,) = drawn.stages
    assert stage.name == "ci" and stage.x < by_name["main"].x and stage.css_status == "running"
    assert stage.x + stage.w > by_name["test"].x + by_name["test"].w


def test_labels_are_cut_and_remote_ids_read() -> None:
    assert short_label("x" * 40).endswith("…") and len(short_label("x" * 40)) == 20
    assert remote_pipeline_id("~sd@123:main") == 123 and remote_pipeline_id("main") is None


def test_a_remote_node_has_no_link_unless_the_caller_passes_one() -> None:
    graph = {
        "nodes": [{"name": "a"}, {"name": "~sd@5:main"}],
        "edges": [{"src": "~sd@5:main", "dest": "a"}],
    }
    (remote,) = [n for n in layout(graph).nodes if n.kind == "remote"]
    assert remote.href == ""


def test_a_matrix_node_grows_to_hold_one_mark_per_permutation_and_pushes_the_next_node_down() -> (
    None
):
    graph = {"nodes": [{"name": "m"}, {"name": "n"}, {"name": "single"}], "edges": []}
    perms = [Permutation("SUCCESS", f"/b/{i}", f"V={i}") for i in range(MARKS_PER_ROW + 1)]
    drawn = layout(
        graph,
        permutations={"m": perms, "single": [Permutation("SUCCESS", "/b/x", "")]},
    )
    m, n, single = drawn.nodes
    assert [k.href for k in m.marks] == [p.href for p in perms]
    assert len({k.y for k in m.marks}) == 2  # wrapped onto a second row
    assert all(m.x < k.x and k.x + k.size < m.x + m.w for k in m.marks)
    assert all(m.y + NODE_H // 2 < k.y and k.y + k.size < m.y + m.h for k in m.marks)
    assert n.y > m.y + m.h and n.h == NODE_H
    assert single.marks == () and single.h == NODE_H
    assert m.mid_y == m.y + NODE_H // 2  # edges still meet the label row
