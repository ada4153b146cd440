"""Child pipelines (external config), startAll and `~subscribe`, on real git repositories.

A parent's screwdriver.yaml lists its children in `childPipelines.scmUrls`; a sync of the parent
at its branch head creates, updates and deactivates them. The slow test runs the children's
builds for real through the worker and the launcher.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus
from builds.secrets import allowed_secrets, secret_values
from builds.tests.step_logs import step_log
from conftest import GitRepo, wait_until
from pipelines.models import Event, Job, Pipeline
from pipelines.services import (
    Creator,
    PipelineError,
    create_pipeline,
    delete_pipeline,
    grant_permission,
    set_secret,
    start_event,
    sync_child_pipelines,
    sync_pipeline,
    update_pipeline,
)
from scm.github import repo_prefix
from scm.signing import SIGNATURE_HEADER, repository_key, sign
from scm.webhooks.actions import perform
from scm.webhooks.github import translate_push

MakeRepo = Callable[..., GitRepo]

PARENT = """
childPipelines:
  scmUrls:
{urls}
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hello: echo "child $SD_PIPELINE_ID"
"""

CHILD_OWN = """
jobs:
  own:
    image: alpine
    requires: [~commit]
    steps:
      - own: echo own
"""

SUBSCRIBER = """
subscribe:
  scmUrls:
    - {url}: ['~commit']
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - main: echo main
  watch:
    image: alpine
    requires: [~subscribe]
    steps:
      - watch: echo watched
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


def parent_yaml(*repos: GitRepo) -> str:
    return PARENT.format(urls="\n".join(f"    - {r.checkout_url}" for r in repos))


def family(make_repo: MakeRepo, owner: User) -> tuple[GitRepo, GitRepo, GitRepo, Pipeline]:
    one = make_repo({"screwdriver.yaml": CHILD_OWN}, name="one")
    two = make_repo({"README.md": "no file of its own"}, name="two")
    parent_repo = make_repo({"screwdriver.yaml": parent_yaml(one, two)}, name="parent")
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=owner)
    sync_child_pipelines(parent=parent)
    return parent_repo, one, two, parent


def children_of(parent: Pipeline) -> dict[str, Pipeline]:
    """The parent's children by the checkout URL the parent lists them with."""
    return {
        p.checkout_url.removeprefix("file://"): p
        for p in Pipeline.objects.filter(config_pipeline=parent)
    }


@pytest.mark.django_db
def test_a_parent_listing_two_repositories_creates_both_children_with_its_jobs(
    make_repo: MakeRepo, owner: User, member: User
) -> None:
    one = make_repo({"screwdriver.yaml": CHILD_OWN}, name="one")
    two = make_repo({"README.md": "no file of its own"}, name="two")
    parent_repo = make_repo({"screwdriver.yaml": parent_yaml(one, two)}, name="parent")
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=owner)
    grant_permission(pipeline=parent, user=member, role="admin", granted_by="owner")

    sync_child_pipelines(parent=parent)

    children = children_of(parent)
    assert sorted(children) == sorted([one.checkout_url, two.checkout_url])
    for child in children.values():
        assert child.state == Pipeline.State.ACTIVE
        # The parent's file defines the child's jobs, never the child's own.
        assert list(Job.objects.filter(pipeline=child).values_list("name", flat=True)) == ["main"]
        assert child.child_pipelines_config == {}
        assert child.is_admin(member) and child.is_admin(owner)
        assert child.admins == {owner.username: True, member.username: True}
    parent.refresh_from_db()
    assert parent.child_pipelines_config["scmUrls"] == [one.checkout_url, two.checkout_url]


@pytest.mark.django_db
def test_dropping_a_child_from_the_list_deactivates_it_and_nothing_starts_it(
    make_repo: MakeRepo, owner: User
) -> None:
    parent_repo, one, two, parent = family(make_repo, owner)

    parent_repo.push({"screwdriver.yaml": parent_yaml(one)}, "drop two")
    start_event(pipeline=parent, start_from="~commit", creator=Creator("Owner", "owner"))

    children = children_of(parent)
    assert children[one.checkout_url].state == Pipeline.State.ACTIVE
    dropped = children[two.checkout_url]
    assert dropped.state == Pipeline.State.INACTIVE
    assert dropped.state_changer == f"sd:pipeline:{parent.pk}"
    with pytest.raises(PipelineError, match="inactive"):
        start_event(pipeline=dropped, start_from="~commit", creator=Creator("Owner", "owner"))

    # Listed again, it comes back.
    parent_repo.push({"screwdriver.yaml": parent_yaml(one, two)}, "add two back")
    start_event(pipeline=parent, start_from="~commit", creator=Creator("Owner", "owner"))
    assert children_of(parent)[two.checkout_url].state == Pipeline.State.ACTIVE


@pytest.mark.django_db
def test_a_childs_event_runs_the_parents_file_at_the_parents_head(
    make_repo: MakeRepo, owner: User
) -> None:
    parent_repo, one, _, parent = family(make_repo, owner)
    child = children_of(parent)[one.checkout_url]
    parent_head = parent_repo.push(
        {
            "screwdriver.yaml": parent_yaml(*[one]) + "  second:\n    image: alpine\n"
            "    requires: [main]\n    steps:\n      - s: echo s\n"
        },
        "add a job",
    )

    event = start_event(pipeline=child, start_from="~commit", creator=Creator("Owner", "owner"))

    assert event.sha == one.pushes[-1]
    assert event.config_pipeline_sha == parent_head
    assert sorted(event.job_configs) == ["main", "second"]
    body = APIClient()
    body.force_authenticate(owner)
    assert body.get(f"/v4/events/{event.pk}").json()["configPipelineSha"] == parent_head
    got = body.get(f"/v4/pipelines/{child.pk}").json()
    assert got["configPipelineId"] == parent.pk


@pytest.mark.django_db
def test_a_repository_with_a_pipeline_of_its_own_is_not_taken_as_a_child(
    make_repo: MakeRepo, owner: User
) -> None:
    one = make_repo({"screwdriver.yaml": CHILD_OWN}, name="one")
    own = create_pipeline(checkout_url=one.checkout_url, user=owner)
    parent_repo = make_repo({"screwdriver.yaml": parent_yaml(one)}, name="parent")
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=owner)

    assert sync_child_pipelines(parent=parent) == []

    own.refresh_from_db()
    assert own.config_pipeline_id is None
    assert list(Job.objects.filter(pipeline=own).values_list("name", flat=True)) == ["own"]


@pytest.mark.django_db
def test_a_child_repository_outside_the_allowed_folders_is_not_created(
    make_repo: MakeRepo, settings: Any, tmp_path: Any
) -> None:
    creator = User.objects.create_user("carol")
    one = make_repo({"screwdriver.yaml": CHILD_OWN}, name="one")
    parent_repo = make_repo({"screwdriver.yaml": parent_yaml(one)}, name="parent")
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=creator)
    settings.SD_LOCAL_REPO_ROOTS = [str(tmp_path / "elsewhere")]

    assert sync_child_pipelines(parent=parent) == []
    assert not Pipeline.objects.filter(config_pipeline=parent).exists()


@pytest.mark.django_db
def test_an_active_child_cannot_be_deleted_or_repointed_but_an_inactive_one_can_be_deleted(
    make_repo: MakeRepo, owner: User
) -> None:
    _, one, two, parent = family(make_repo, owner)
    child = children_of(parent)[two.checkout_url]

    with pytest.raises(PipelineError, match="childPipelines"):
        delete_pipeline(pipeline=child)
    with pytest.raises(PipelineError, match="childPipelines"):
        update_pipeline(pipeline=child, checkout_url=one.checkout_url, user=owner)

    update_pipeline(pipeline=child, state="INACTIVE")
    delete_pipeline(pipeline=child)
    assert not Pipeline.objects.filter(pk=child.pk).exists()


# --- startAll -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_startall_starts_commit_on_every_active_child(make_repo: MakeRepo, owner: User) -> None:
    _, _, _, parent = family(make_repo, owner)
    client = APIClient()
    client.force_authenticate(owner)

    response = client.post(f"/v4/pipelines/{parent.pk}/startall")

    assert response.status_code == 201, response.content
    for child in children_of(parent).values():
        event = Event.objects.get(pipeline=child)
        assert event.start_from == "~commit"
        assert event.cause_message == f"Started by {owner.username}"
        assert [b.job.name for b in Build.objects.filter(event=event)] == ["main"]
    assert not Event.objects.filter(pipeline=parent).exists()


@pytest.mark.django_db
def test_startall_skips_an_inactive_child(make_repo: MakeRepo, owner: User) -> None:
    _, one, two, parent = family(make_repo, owner)
    update_pipeline(pipeline=children_of(parent)[two.checkout_url], state="INACTIVE")
    client = APIClient()
    client.force_authenticate(owner)

    assert client.post(f"/v4/pipelines/{parent.pk}/startall").status_code == 201

    assert Event.objects.filter(pipeline__config_pipeline=parent).count() == 1
    started = Event.objects.get(pipeline__config_pipeline=parent).pipeline
    assert started == children_of(parent)[one.checkout_url]


@pytest.mark.django_db
def test_neither_an_outsider_nor_a_pusher_may_startall(
    make_repo: MakeRepo, owner: User, member: User
) -> None:
    _, _, _, parent = family(make_repo, owner)
    client = APIClient()
    client.force_authenticate(member)
    # A local repository's pipeline is public: anyone signed in reads it, only admins start.
    assert client.post(f"/v4/pipelines/{parent.pk}/startall").status_code == 403

    grant_permission(pipeline=parent, user=member, role="push", granted_by="owner")
    response = client.post(f"/v4/pipelines/{parent.pk}/startall")

    assert response.status_code == 403
    assert "admin" in response.json()["message"]
    assert not Event.objects.exists()


# --- ~subscribe -----------------------------------------------------------------------------


def deliver_push(repo: GitRepo, sha: str) -> Any:
    path = os.path.realpath(repo.bare)
    refs = [{"before": "0" * 40, "after": sha, "ref": f"refs/heads/{repo.branch}"}]
    body = json.dumps({"repository": path, "refs": refs}).encode()
    signature = sign(body, repository_key(path))
    return APIClient().post(
        "/v4/webhooks/local",
        body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: signature},
    )


@pytest.mark.django_db
def test_a_push_to_a_subscribed_repository_starts_the_subscribers_subscribe_job(
    make_repo: MakeRepo, owner: User
) -> None:
    watched = make_repo({"README.md": "watched"}, name="watched")
    subscriber_repo = make_repo(
        {"screwdriver.yaml": SUBSCRIBER.format(url=watched.checkout_url)}, name="subscriber"
    )
    subscriber = create_pipeline(checkout_url=subscriber_repo.checkout_url, user=owner)
    assert subscriber.subscribed_scm_urls == [
        {"scmUri": f"local:{os.path.realpath(watched.bare)}:main", "actions": ["commit"]}
    ]

    sha = watched.push({"README.md": "v2"}, "watched change")
    response = deliver_push(watched, sha)

    assert response.status_code == 202, response.content
    event = Event.objects.get(pipeline=subscriber)
    assert response.json() == {"events": [event.pk]}
    assert event.start_from == "~subscribe"
    assert event.subscribed_event and event.subscribed_config_sha == sha
    # The subscriber runs its own branch head, as in Screwdriver.
    assert event.sha == subscriber_repo.pushes[-1]
    assert [b.job.name for b in Build.objects.filter(event=event)] == ["watch"]
    client = APIClient()
    client.force_authenticate(owner)
    shown = client.get(f"/v4/events/{event.pk}").json()
    assert shown["subscribedEvent"] is True and shown["subscribedConfigSha"] == sha


@pytest.mark.django_db
def test_a_push_to_another_branch_of_the_subscribed_repository_starts_nothing(
    make_repo: MakeRepo, owner: User
) -> None:
    watched = make_repo({"README.md": "watched"}, name="watched")
    subscriber_repo = make_repo(
        {"screwdriver.yaml": SUBSCRIBER.format(url=watched.checkout_url)}, name="subscriber"
    )
    create_pipeline(checkout_url=subscriber_repo.checkout_url, user=owner)
    watched.branch = "other"
    sha = watched.push({"README.md": "v2"}, "elsewhere")

    response = deliver_push(watched, sha)

    assert response.json() == {"events": []}
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_subscriber_asking_only_for_pull_requests_is_not_started_by_a_push(
    make_repo: MakeRepo, owner: User
) -> None:
    watched = make_repo({"README.md": "watched"}, name="watched")
    yaml = SUBSCRIBER.format(url=watched.checkout_url).replace("['~commit']", "['~pr']")
    subscriber_repo = make_repo({"screwdriver.yaml": yaml}, name="subscriber")
    create_pipeline(checkout_url=subscriber_repo.checkout_url, user=owner)

    deliver_push(watched, watched.push({"README.md": "v2"}, "change"))

    assert not Event.objects.exists()


# --- real builds ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_startall_really_runs_both_childrens_builds(
    stack: Any, make_repo: MakeRepo, owner: User
) -> None:
    _, _, _, parent = family(make_repo, owner)
    children = list(children_of(parent).values())
    client = APIClient()
    client.force_authenticate(owner)

    assert client.post(f"/v4/pipelines/{parent.pk}/startall").status_code == 201

    def all_done() -> list[Build] | None:
        builds = list(Build.objects.filter(job__pipeline__config_pipeline=parent))
        done = len(builds) == 2 and all(b.is_finished for b in builds)
        return builds if done else None

    builds = wait_until(all_done, timeout=120, what="both children's builds to finish")
    assert {b.status for b in builds} == {BuildStatus.SUCCESS}
    assert {b.job.pipeline_id for b in builds} == {c.pk for c in children}


CONFIG_READER = """
childPipelines:
  scmUrls:
    - {url}
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - where: echo "$SD_CONFIG_DIR"
      - shared: cat "$SD_CONFIG_DIR/shared.txt"
      - own: cat README.md
      - head: git -C "$SD_CONFIG_DIR" rev-parse HEAD
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_childs_build_reads_its_parents_repository_in_sd_config_dir(
    stack: Any, make_repo: MakeRepo, owner: User
) -> None:
    child_repo = make_repo({"README.md": "the child's own file"}, name="reader")
    parent_repo = make_repo(
        {
            "screwdriver.yaml": CONFIG_READER.format(url=child_repo.checkout_url),
            "shared.txt": "kept in the parent",
        },
        name="config",
    )
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=owner)
    sync_child_pipelines(parent=parent)
    # The parent moves on after the child's event read it: the build gets what it read.
    child = Pipeline.objects.get(config_pipeline=parent)
    event = start_event(pipeline=child, start_from="~commit", creator=Creator("A", "alice"))
    read_at = parent_repo.pushes[-1]
    parent_repo.push({"shared.txt": "changed later"}, "later")

    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        return build if build and build.is_finished else None

    build = wait_until(done, timeout=120, what="the child's build to finish")
    assert build.status == BuildStatus.SUCCESS, step_log(build, "sd-setup-scm")
    (config_dir,) = step_log(build, "where")
    assert config_dir.endswith("/config") and config_dir != ""
    assert step_log(build, "shared") == ["kept in the parent"]
    assert step_log(build, "own") == ["the child's own file"]
    assert step_log(build, "head") == [read_at]


# --- secrets --------------------------------------------------------------------------------

SECRETS_PARENT = """
childPipelines:
  scmUrls:
    - {url}
jobs:
  main:
    image: alpine
    requires: [~commit]
    secrets: [SHARED, OVERRIDDEN, PARENT_PR_ONLY]
    steps:
      - shared: test "$SHARED" = "parent-shared-7f3a" && echo "shared is $SHARED"
      - overridden: test "$OVERRIDDEN" = "child-own-9c1e" && echo "overridden is $OVERRIDDEN"
"""


def secret_family(make_repo: MakeRepo, owner: User) -> tuple[Pipeline, Pipeline]:
    child_repo = make_repo({"README.md": "child"}, name="secretive")
    parent_repo = make_repo(
        {"screwdriver.yaml": SECRETS_PARENT.format(url=child_repo.checkout_url)}, name="keeper"
    )
    parent = create_pipeline(checkout_url=parent_repo.checkout_url, user=owner)
    sync_child_pipelines(parent=parent)
    child = Pipeline.objects.get(config_pipeline=parent)
    set_secret(pipeline=parent, name="SHARED", value="parent-shared-7f3a")
    set_secret(pipeline=parent, name="OVERRIDDEN", value="parent-loses-2b8d", allow_in_pr=True)
    set_secret(pipeline=parent, name="PARENT_PR_ONLY", value="parent-pr-5e0a", allow_in_pr=True)
    set_secret(pipeline=child, name="OVERRIDDEN", value="child-own-9c1e")
    set_secret(pipeline=parent, name="UNLISTED", value="parent-unlisted-1d4c")
    return parent, child


@pytest.mark.django_db
def test_a_child_inherits_its_parents_secrets_and_its_own_of_a_name_wins(
    make_repo: MakeRepo, owner: User
) -> None:
    parent, child = secret_family(make_repo, owner)
    event = start_event(pipeline=child, start_from="~commit", creator=Creator("A", "alice"))
    build = Build.objects.get(event=event)

    assert secret_values(build) == {
        "SHARED": "parent-shared-7f3a",
        "OVERRIDDEN": "child-own-9c1e",
        "PARENT_PR_ONLY": "parent-pr-5e0a",
    }
    # A pull request sees what the chosen row allows: the child's OVERRIDDEN keeps it out,
    # though the parent's row of that name would let it in.
    Event.objects.filter(pk=event.pk).update(type=Event.Type.PR, pr_num=1)
    build = Build.objects.get(pk=build.pk)
    assert {(s.name, s.pipeline_id) for s in allowed_secrets(build)} == {
        ("PARENT_PR_ONLY", parent.pk)
    }
    # The parent's own builds keep the parent's value.
    own = start_event(pipeline=parent, start_from="~commit", creator=Creator("A", "alice"))
    assert secret_values(Build.objects.get(event=own))["OVERRIDDEN"] == "parent-loses-2b8d"


@pytest.mark.django_db
def test_a_childs_secret_list_holds_the_inherited_ones_under_the_parents_id_as_screwdrivers(
    make_repo: MakeRepo, owner: User, member: User, django_assert_max_num_queries: Any
) -> None:
    parent, child = secret_family(make_repo, owner)
    api = APIClient()
    api.force_authenticate(owner)

    with django_assert_max_num_queries(8):
        listed = api.get(f"/v4/pipelines/{child.pk}/secrets")
    parents = api.get(f"/v4/pipelines/{parent.pk}/secrets")

    assert listed.status_code == 200, listed.content
    # The child's OVERRIDDEN and the parent's of every other name (Screwdriver's uniqBy).
    assert sorted((s["name"], s["pipelineId"]) for s in listed.json()) == [
        ("OVERRIDDEN", child.pk),
        ("PARENT_PR_ONLY", parent.pk),
        ("SHARED", parent.pk),
        ("UNLISTED", parent.pk),
    ]
    assert all("value" not in s for s in listed.json())
    assert b"parent-" not in listed.content and b"child-own" not in listed.content
    # The parent's own list is unchanged; a person with no right on the child reads nothing.
    assert {s["name"] for s in parents.json()} == {
        "SHARED",
        "OVERRIDDEN",
        "PARENT_PR_ONLY",
        "UNLISTED",
    }
    stranger = APIClient()
    stranger.force_authenticate(member)
    assert stranger.get(f"/v4/pipelines/{child.pk}/secrets").status_code in (403, 404)


@pytest.mark.django_db
def test_a_childs_secrets_page_shows_the_inherited_ones_and_offers_to_override_them(
    make_repo: MakeRepo, owner: User, client: Any
) -> None:
    parent, child = secret_family(make_repo, owner)
    client.force_login(owner)

    page = client.get(f"/pipelines/{child.pk}/secrets").content.decode()
    inherited = page[page.index('id="inherited-heading"') :]

    assert f'Inherited from <a href="/pipelines/{parent.pk}">{parent.name}</a>' in page
    for name in ("SHARED", "PARENT_PR_ONLY", "UNLISTED"):
        assert f'id="inherited-{name}"' in inherited
        assert f"/pipelines/{child.pk}/secrets?override={name}#add-secret-heading" in inherited
    # The child's own OVERRIDDEN is in its own table, marked; never among the inherited.
    assert 'id="inherited-OVERRIDDEN"' not in page
    assert "overrides the parent's" in page[: page.index('id="inherited-heading"')]
    for value in ("parent-shared-7f3a", "parent-pr-5e0a", "parent-unlisted-1d4c", "child-own"):
        assert value not in page
    # Override: the form comes with the name, and adding it moves it out of the inherited list.
    form = client.get(f"/pipelines/{child.pk}/secrets?override=SHARED").content.decode()
    assert 'name="name" value="SHARED"' in form
    added = client.post(
        f"/pipelines/{child.pk}/secrets", {"name": "SHARED", "value": "child-shared-3c3c"}
    )
    assert added.status_code == 302
    after = client.get(f"/pipelines/{child.pk}/secrets").content.decode()
    assert 'id="inherited-SHARED"' not in after and 'id="secret-SHARED"' in after
    # A pipeline without a parent has no such section.
    assert "inherited-heading" not in client.get(f"/pipelines/{parent.pk}/secrets").content.decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_childs_real_build_gets_the_inherited_secrets_and_its_log_masks_them(
    stack: Any, make_repo: MakeRepo, owner: User
) -> None:
    _, child = secret_family(make_repo, owner)
    event = start_event(pipeline=child, start_from="~commit", creator=Creator("A", "alice"))

    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        return build if build and build.is_finished else None

    build = wait_until(done, timeout=120, what="the child's build to finish")
    assert build.status == BuildStatus.SUCCESS, step_log(build, "shared")
    assert step_log(build, "shared") == ["shared is ****"]
    assert step_log(build, "overridden") == ["overridden is ****"]


# --- pages ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_parents_page_lists_its_children_and_a_childs_page_links_its_parent(
    make_repo: MakeRepo, owner: User, client: Any
) -> None:
    _, one, _, parent = family(make_repo, owner)
    children = children_of(parent)
    client.force_login(owner)

    page = client.get(f"/pipelines/{parent.pk}").content.decode()
    child_page = client.get(f"/pipelines/{children[one.checkout_url].pk}").content.decode()

    assert "Child pipelines" in page and 'id="start-all-button"' in page
    for child in children.values():
        assert f'href="/pipelines/{child.pk}"' in page
    assert f'<a href="/pipelines/{parent.pk}" data-parent-pipeline>' in child_page
    assert "Child pipelines" not in child_page


@pytest.mark.django_db
def test_start_all_on_the_page_starts_the_children_and_is_refused_to_a_non_admin(
    make_repo: MakeRepo, owner: User, member: User, client: Any
) -> None:
    _, _, _, parent = family(make_repo, owner)
    client.force_login(member)
    assert client.post(f"/pipelines/{parent.pk}/startall").status_code in (403, 404)
    assert not Event.objects.exists()

    client.force_login(owner)
    response = client.post(f"/pipelines/{parent.pk}/startall")

    assert response.status_code == 302
    assert Event.objects.filter(pipeline__config_pipeline=parent).count() == 2


@pytest.mark.django_db
def test_a_subscription_to_a_local_repository_outside_the_allowed_folders_is_not_kept(
    make_repo: MakeRepo, owner: User, settings: Any, tmp_path: Any
) -> None:
    watched = make_repo({"README.md": "watched"}, name="watched")
    subscriber_repo = make_repo(
        {"screwdriver.yaml": SUBSCRIBER.format(url=watched.checkout_url)}, name="subscriber"
    )
    subscriber = create_pipeline(checkout_url=subscriber_repo.checkout_url, user=owner)
    assert subscriber.subscribed_scm_urls
    settings.SD_LOCAL_REPO_ROOTS = [str(subscriber_repo.bare.parent / "nowhere")]

    subscriber = sync_pipeline(pipeline=subscriber)

    assert subscriber.subscribed_scm_urls == []


@pytest.mark.django_db
def test_a_github_push_to_a_subscribed_repository_starts_subscribe_with_its_commit_page(
    make_repo: MakeRepo, owner: User
) -> None:

    subscriber_repo = make_repo(
        {"screwdriver.yaml": SUBSCRIBER.format(url="git@github.com:acme/lib.git#main")},
        name="subscriber",
    )
    subscriber = create_pipeline(checkout_url=subscriber_repo.checkout_url, user=owner)
    # Resolving a GitHub URL asks GitHub; here the resolved form is written as a sync would.
    Pipeline.objects.filter(pk=subscriber.pk).update(
        subscribed_scm_urls=[{"scmUri": f"{repo_prefix('acme/lib')}main", "actions": ["commit"]}]
    )
    sha = "c" * 40
    payload = {
        "ref": "refs/heads/main",
        "after": sha,
        "repository": {"full_name": "acme/lib"},
        "sender": {"login": "octocat"},
        "head_commit": {
            "message": "lib change",
            "url": f"https://github.com/acme/lib/commit/{sha}",
        },
        "commits": [{"modified": ["lib.py"]}],
    }

    events = perform(translate_push(payload), delivery_key="github:1")

    event = Event.objects.get(pipeline=subscriber)
    assert list(events) == [event]
    assert event.start_from == "~subscribe" and event.delivery_key == "github:1"
    assert event.subscribed_config_sha == sha
    assert event.subscribed_source_url == f"https://github.com/acme/lib/commit/{sha}"
    assert [b.job.name for b in Build.objects.filter(event=event)] == ["watch"]
