"""Builds in containers on a real Docker engine: real worker, real launcher, a local image."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.dispatch import reap
from builds.models import Build, BuildStatus, Step
from conftest import wait_until
from executors.tests.docker_engine import IMAGE, containers_of, docker_engine
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Jobs here pick the Docker executor, which a server allows only when told to."""
    return {"SD_EXECUTORS": "docker"}


def _no_container_left(settings: Any) -> bool:
    return not containers_of(settings.SD_INSTANCE)


def _admin() -> User:
    return User.objects.create_user(username="alice", password="pw-alice-123")


def _event_done(pipeline: Pipeline) -> Event | None:
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").first()
    if event is None:
        return None
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


def _log(build: Build, step: str) -> list[str]:
    from builds.logs import read_page

    return [
        line["m"]
        for line in read_page(step=Step.objects.get(build=build, name=step), pages=100).lines
    ]


def _run(make_repo: Any, yaml: str) -> tuple[Pipeline, Event]:
    repo = make_repo({"screwdriver.yaml": yaml})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    return pipeline, event


IN_CONTAINER = f"""
shared:
  image: {IMAGE}
  annotations:
    screwdriver.cd/executor: docker
jobs:
  main:
    requires: [~commit]
    steps:
      - where: |
          test ! -e /etc/debian_version && echo "no Debian here"
          command -v python3 python git || echo "no python, no git"
          echo "image says $IMAGE_VAR; source is $(basename "$SD_SOURCE_DIR")"
          ls screwdriver.yaml
      - setup: |
          export GREETING="hello there"
          mkdir -p sub/dir && cd sub/dir
      - check: echo "$GREETING from $(basename "$PWD")"
      - version: meta set app.version 1.2.3
      - teardown-report: echo "teardown saw $SD_STEP_EXIT_CODE"
  deploy:
    requires: [main]
    steps:
      - deploy: echo "deploying $(meta get app.version)"
"""


def test_steps_run_in_the_container_in_one_shell_session_and_meta_reaches_the_next_job(
    docker_stack, make_repo, settings
) -> None:
    pipeline, _event = _run(make_repo, IN_CONTAINER)
    done = wait_until(lambda: _event_done(pipeline), timeout=90, what="the event to finish")

    builds = {b.job.name: b for b in Build.objects.filter(event=done).select_related("job")}
    assert {name: b.status for name, b in builds.items()} == {
        "main": BuildStatus.SUCCESS,
        "deploy": BuildStatus.SUCCESS,
    }, [b.status_message for b in builds.values()]
    main = builds["main"]
    assert main.executor == "docker"
    # Build.stats as Screwdriver keeps them: queued, then this engine's image pull, on a host.
    assert {"queueEnterTime", "imagePullStartTime", "hostname"} <= set(main.stats)
    assert main.stats["queueEnterTime"] <= main.stats["imagePullStartTime"]
    assert main.start_time is not None and main.end_time is not None
    assert _log(main, "where") == [
        "no Debian here",
        "no python, no git",
        "image says from-the-image; source is app",
        "screwdriver.yaml",
    ]
    assert _log(main, "check") == ["hello there from dir"]
    assert _log(main, "teardown-report") == ["teardown saw 0"]
    assert _log(builds["deploy"], "deploy") == ["deploying 1.2.3"]
    wait_until(lambda: _no_container_left(settings), timeout=30, what="the containers to go")


FOLDER_JOB = f"""
jobs:
  main:
    image: {IMAGE}
    annotations:
      screwdriver.cd/executor: docker
    requires: [~commit]
    steps:
      - where: |
          echo "start=$(basename "$PWD") source=$(basename "$SD_SOURCE_DIR")"
          test "$PWD" = "$SD_SOURCE_DIR" && echo "starts in the source folder"
          test "$(dirname "$SD_SOURCE_DIR")" = "$SD_CHECKOUT_DIR" && echo "inside the checkout"
          ls
"""


def test_a_folder_pipeline_runs_in_its_folder_in_the_container(
    docker_stack, make_repo, settings
) -> None:
    repo = make_repo({"app/screwdriver.yaml": FOLDER_JOB, "app/main.c": "", "other/x": ""})
    pipeline = create_pipeline(checkout_url=f"{repo.checkout_url}:app", user=_admin())
    start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    done = wait_until(lambda: _event_done(pipeline), timeout=90, what="the event to finish")

    build = Build.objects.get(event=done)
    assert (build.executor, build.status) == ("docker", BuildStatus.SUCCESS), build.status_message
    assert _log(build, "where") == [
        "start=app source=app",
        "starts in the source folder",
        "inside the checkout",
        "main.c",
        "screwdriver.yaml",
    ]


def test_a_missing_image_fails_with_a_message_naming_it(docker_stack, make_repo, settings) -> None:
    # A registry on a closed local port: the pull is really tried, and fails at once.
    image = "127.0.0.1:9/sd-test/no-such-image:1"
    yaml = IN_CONTAINER.replace(f"image: {IMAGE}", f"image: {image}")
    pipeline, event = _run(make_repo, yaml)
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")

    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.FAILURE
    assert f"Could not pull the image '{image}'" in build.status_message
    assert _no_container_left(settings)


SLEEPER = f"""
jobs:
  main:
    image: {IMAGE}
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: docker
      screwdriver.cd/timeout: %(timeout)s
      screwdriver.cd/ram: MICRO
    steps:
      - started: echo started
      - stubborn: |
          trap '' TERM
          sleep 300 &
          sleep 300
      - teardown-after: echo "teardown ran with $SD_STEP_EXIT_CODE"
"""


def _running(event: Event) -> Build:
    build = wait_until(
        lambda: Build.objects.filter(event=event, status="RUNNING").first(),
        timeout=30,
        what="RUNNING",
    )
    wait_until(
        lambda: Step.objects.filter(
            build=build, name="stubborn", start_time__isnull=False
        ).exists(),
        timeout=30,
        what="the stubborn step to start",
    )
    # The launcher may report RUNNING before the worker has stored where the build runs.
    wait_until(
        lambda: "workspace" in Build.objects.get(pk=build.pk).executor_state,
        timeout=10,
        what="the executor state to be stored",
    )
    build.refresh_from_db()
    return build


def test_a_stopped_build_runs_teardown_in_its_safe_container_and_leaves_none(
    docker_stack, make_repo, settings
) -> None:
    _pipeline, event = _run(make_repo, SLEEPER % {"timeout": "30"})
    build = _running(event)
    (container,) = containers_of(settings.SD_INSTANCE)
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert sorted(c.removeprefix("CAP_") for c in host["CapAdd"]) == [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
    ]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == settings.SD_DOCKER_PIDS_LIMIT
    assert host["Memory"] == 1024**3  # screwdriver.cd/ram: MICRO
    assert host["NanoCpus"] > 0
    assert [b.split(":")[0] for b in host["Binds"]] == [build.executor_state["workspace"]]
    assert "docker.sock" not in str(container.attrs["Mounts"])
    assert container.labels["screwdriver.cd/build"] == str(build.pk)

    client = APIClient()
    client.force_authenticate(User.objects.get(username="alice"))
    response = client.put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")
    assert response.status_code == 200, response.content

    teardown = Step.objects.get(build=build, name="teardown-after")
    wait_until(
        lambda: Step.objects.get(pk=teardown.pk).end_time, timeout=20, what="teardown to finish"
    )
    assert _log(build, "teardown-after") == ["teardown ran with 137"]  # TERM ignored: KILL
    assert Build.objects.get(pk=build.pk).status == BuildStatus.ABORTED
    wait_until(lambda: _no_container_left(settings), timeout=20, what="the container to go")


def test_a_timed_out_build_fails_and_leaves_no_container(docker_stack, make_repo, settings) -> None:
    pipeline, event = _run(make_repo, SLEEPER % {"timeout": "0.1"})
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the timeout to end the build")

    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.FAILURE
    assert build.status_message == "Build timed out after 0.1 minutes"
    assert _log(build, "teardown-after") == ["teardown ran with 137"]  # TERM ignored: KILL
    wait_until(lambda: _no_container_left(settings), timeout=20, what="the container to go")


def test_killing_the_worker_and_launcher_leaves_no_container_once_reaped(
    docker_stack, make_repo, settings
) -> None:
    import os
    import signal

    _pipeline, event = _run(make_repo, SLEEPER % {"timeout": "30"})
    build = _running(event)
    build.refresh_from_db()
    docker_stack.kill_worker()
    os.killpg(build.executor_state["pid"], signal.SIGKILL)

    docker_stack.start_worker()
    wait_until(
        lambda: reap()["failed"] or Build.objects.get(pk=build.pk).status == "FAILURE",
        timeout=60,
        interval=1,
        what="the reaper to fail the lost build",
    )
    assert "was lost: it stopped reporting" in Build.objects.get(pk=build.pk).status_message
    wait_until(lambda: _no_container_left(settings), timeout=30, what="the container to go")


def test_the_reaper_removes_containers_of_builds_it_does_not_know(settings, busybox_image) -> None:
    settings.SD_INSTANCE = f"sdtest-{uuid.uuid4().hex[:10]}"
    engine = docker_engine()
    labels = {"screwdriver.cd/instance": settings.SD_INSTANCE, "screwdriver.cd/build": "999999"}
    other = {**labels, "screwdriver.cd/instance": settings.SD_INSTANCE + "-other"}
    orphan = engine.containers.create(IMAGE, ["sleep", "60"], labels=labels)
    foreign = engine.containers.create(IMAGE, ["sleep", "60"], labels=other)
    try:
        settings.SD_EXECUTOR = "docker"
        reap()
        ids = {c.id for c in engine.containers.list(all=True)}
        assert orphan.id not in ids
        assert foreign.id in ids  # another server's container is not ours to remove
    finally:
        foreign.remove(force=True)


# Every step below tries to reach the host through the launcher, which runs there as the
# server's user. Step numbers matter: the launcher writes `.launcher/cmd-K.sh` and
# `.launcher/step-K.sh` for the K-th shell step (plant=1 ... teardown-z=6).
RED_TEAM = f"""
shared:
  image: {IMAGE}
  annotations:
    screwdriver.cd/executor: docker
jobs:
  redteam:
    requires: [~commit]
    environment:
      HOST: %(host)s
      DATA: %(data)s
    steps:
      - plant: |
          L=$SD_ROOT_DIR/.launcher
          for k in 5 6; do
            ln -s "$HOST/victim-cmd-$k" "$L/cmd-$k.sh"
            ln -s "$HOST/victim-step-$k" "$L/step-$k.sh"
          done
          grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status
          cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max
          cat "$DATA/secret_key" "$DATA/db.sqlite3" || echo "no server data"
          cat /proc/1/environ | tr '\\0' '\\n' | grep -c . || true
          ls /proc | grep -c '^[0-9]' || true
          mkdir -p "$HOST" && echo owned >"$HOST/outside-write" && echo "wrote in the container"
          mknod /tmp/disk b 8 0 || echo "no mknod"
      - meta-spy: |
          ln -s "$HOST/external.json" "$SD_META_DIR/sd@1:spy.json"
          echo "external says: $(meta get --external sd@1:spy -F --skip-store token)"
          ln -s "$HOST/victim-lock" "$SD_META_PATH.lock"
          meta set mine ok || echo "meta set refused"
          rm -f "$SD_META_PATH"
          ln -s "$HOST/host-meta.json" "$SD_META_PATH"
          echo "meta says: $(meta get stolen)"
      - control: |
          c=$SD_ROOT_DIR/.sd-agent
          rm -f "$c/meta.req"
          ln -s "$HOST/host-req" "$c/meta.req"
          echo go >"$c/meta"
          IFS= read -r code <"$c/meta.res"; echo "req answer $code"
          echo done >"$c/meta"
          rm -f "$c/meta.req"
          mv "$c" "$c.old" && ln -s "$HOST/ctrl" "$c"
          echo go >"$c.old/meta"
          sleep 2
          rm "$c" && mv "$c.old" "$c"
          rm -f "$c/meta.res"
          ln -s "$HOST/victim-res" "$c/meta.res"
          meta get anything || true
          sleep 1
      - pwd-trick: |
          trap - EXIT
          ln -s "$HOST/pwd-secret" "$SD_ROOT_DIR/.launcher/pwd-4"
      - teardown-a: echo "teardown-a in $(pwd)"
      - teardown-z: echo "teardown-z ran"
  ordinary:
    requires: [~commit]
    steps:
      - work: |
          echo "root in $(id -u)"
          mkdir -p owned && touch owned/f && chown 1000:1000 owned/f && chmod 600 owned/f
          chmod 644 owned/f && echo "chown and chmod of another user's file"
          mkdir -m 700 locked && chown 1000 locked && touch locked/in && echo "root enters 0700"
          echo 'builder:x:1000:1000::/tmp:/bin/sh' >>/etc/passwd
          su builder -c 'id -u'
          su builder -c 'exec sleep 300' &
          sleep 0.5
          kill $! && echo "ended another user's process"
          meta set ordinary yes
          echo "meta says $(meta get ordinary)"
"""


def _host_side(tmp_path: Any, data_dir: Any) -> dict[str, Any]:
    """Files of 'the host' outside every workspace, which the build tries to reach."""
    host = tmp_path / "host"
    (host / "ctrl").mkdir(parents=True)
    (host / "secret-dir-7f3a").mkdir()
    files = {
        **{f"victim-{kind}-{k}": f"host {kind} {k}\n" for kind in ("cmd", "step") for k in (5, 6)},
        "host-meta.json": '{"stolen": "host-meta-7f3a"}',
        "external.json": '{"token": "host-external-7f3a"}',
        "host-req": "set\0leaked\0host-req-7f3a\0",
        "ctrl/meta.req": "set\0leaked2\0host-ctrl-7f3a\0",
        "ctrl/meta.lock": "",
        "victim-res": "host res\n",
        "pwd-secret": f"{host / 'secret-dir-7f3a'}\n",
    }
    for name, text in files.items():
        (host / name).write_text(text)
    (data_dir / "secret_key").write_text("server-secret-7f3a")
    (data_dir / "db.sqlite3").write_text("server-database-7f3a")
    return {"host": host, "files": files}


def test_a_build_cannot_reach_the_host_through_the_launcher_or_the_container(
    docker_stack, make_repo, settings, tmp_path
) -> None:
    side = _host_side(tmp_path, docker_stack.data_dir)
    host = side["host"]
    yaml = RED_TEAM % {"host": host, "data": docker_stack.data_dir}
    pipeline, event = _run(make_repo, yaml)
    wait_until(lambda: _event_done(pipeline), timeout=120, what="the event to finish")

    builds = {b.job.name: b for b in Build.objects.filter(event=event).select_related("job")}
    ordinary, redteam = builds["ordinary"], builds["redteam"]
    source = f"{redteam.executor_state['workspace']}/src/app"
    assert ordinary.status == BuildStatus.SUCCESS, _log(ordinary, "work")
    assert _log(ordinary, "work") == [
        "root in 0",
        "chown and chmod of another user's file",
        "root enters 0700",
        "1000",
        "ended another user's process",
        "meta says yes",
    ]
    logs = {s.name: _log(redteam, s.name) for s in Step.objects.filter(build=redteam)}
    everything = "\n".join(line for lines in logs.values() for line in lines)

    # Nothing on the host changed, appeared or went away.
    for name, text in side["files"].items():
        assert (host / name).read_text() == text, name
    assert sorted(p.name for p in host.iterdir()) == sorted(
        [*{n.split("/")[0] for n in side["files"]}, "secret-dir-7f3a"]
    )
    assert sorted(p.name for p in (host / "ctrl").iterdir()) == ["meta.lock", "meta.req"]
    # Nothing of the host reached the build's meta or its logs.
    redteam.refresh_from_db()
    assert "7f3a" not in str(redteam.meta), redteam.meta
    assert "7f3a" not in everything, logs
    assert settings.SECRET_KEY not in everything
    # The container saw its own pid namespace and the reduced capabilities only.
    assert logs["plant"][:4] == [
        "CapEff:\t00000000000000fb",  # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
        "CapBnd:\t00000000000000fb",
        "NoNewPrivs:\t1",
        str(settings.SD_DOCKER_PIDS_LIMIT),
    ], logs["plant"]
    assert "no server data" in logs["plant"]
    assert "no mknod" in logs["plant"]
    assert "wrote in the container" in logs["plant"]
    assert not (host / "outside-write").exists()
    # Every step ran as it would without the tricks (the launcher refused what it could not
    # open safely, and went on).
    assert logs["teardown-z"] == ["teardown-z ran"]
    assert logs["teardown-a"] == [f"teardown-a in {source}"]
    assert redteam.status == BuildStatus.SUCCESS, logs


# An image's own /bin/sh is the image author's code: it runs as the container starts, before
# the launcher has prepared the workspace or checked out anything.
HOSTILE_SH = """#!/bin/busybox sh
# Called as: /bin/sh -c AGENT sd-agent CONTROL_DIR. Runs the agent it was given, but with the
# environment dump swapped for a link to a host file; or first puts a link in place of src/.
[ "$3" = sd-agent ] || exec /bin/busybox sh "$@"
c=$4
agent=$2
case $HOSTILE in
  env) agent=$(echo "$2" | sed 's|export -p >"$c/env"|ln -s %(host)s/host-env "$c/env"|') ;;
  src) ln -s %(host)s/host-src "${c%%/*}/src" ;;
esac
exec /bin/busybox sh -c "$agent" "$3" "$c"
"""

HOSTILE_JOBS = """
jobs:
  env:
    image: %(image)s-env
    requires: [~commit]
    annotations: {screwdriver.cd/executor: docker}
    steps:
      - show: echo "stolen=${STOLEN:-nothing}"
  src:
    image: %(image)s-src
    requires: [~commit]
    annotations: {screwdriver.cd/executor: docker}
    steps:
      - show: ls
"""


def _hostile_images(engine: Any, host: Any, tag: str) -> None:
    import io
    import tarfile

    script = (HOSTILE_SH % {"host": host}).encode()
    for kind in ("env", "src"):
        dockerfile = (
            f"FROM {IMAGE}\n"
            'RUN ["/bin/busybox", "rm", "/bin/sh"]\n'
            "COPY sh /bin/sh\n"
            f"ENV HOSTILE={kind}\n"
        ).encode()
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, data in (("Dockerfile", dockerfile), ("sh", script)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        engine.images.build(
            fileobj=context, custom_context=True, tag=f"{tag}-{kind}", rm=True, pull=False
        )


def test_a_hostile_image_cannot_lead_the_launcher_to_host_files_before_the_steps(
    docker_stack, make_repo, tmp_path
) -> None:
    host = tmp_path / "host"
    (host / "host-src").mkdir(parents=True)
    (host / "host-env").write_text("export STOLEN=host-env-7f3a\n")
    tag = f"sd-test-hostile-{uuid.uuid4().hex[:8]}"
    engine = docker_engine()
    _hostile_images(engine, host, tag)
    try:
        pipeline, event = _run(make_repo, HOSTILE_JOBS % {"image": tag})
        wait_until(lambda: _event_done(pipeline), timeout=90, what="the event to finish")
    finally:
        for kind in ("env", "src"):
            engine.images.remove(f"{tag}-{kind}", force=True)

    builds = {b.job.name: b for b in Build.objects.filter(event=event).select_related("job")}
    # The container's environment dump was a link to a host file: refused, so the steps get
    # the launcher's default PATH and nothing of that file.
    assert builds["env"].status == BuildStatus.SUCCESS, _log(builds["env"], "show")
    assert _log(builds["env"], "show") == ["stolen=nothing"]
    # `src` was a link to a host folder: the launcher refuses to prepare the workspace and
    # never clones into the host's folder.
    assert builds["src"].status == BuildStatus.FAILURE
    assert "Not a directory: 'src'" in builds["src"].status_message
    assert list((host / "host-src").iterdir()) == []
