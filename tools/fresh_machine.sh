#!/usr/bin/env bash
# The README's promise, checked where nothing else could help it: on a clean Debian bookworm
# root filesystem holding only Python 3.11, python3-venv, git, make and CA certificates, a
# fresh clone's `make run` serves and runs the demo to SUCCESS, Ctrl-C leaves nothing running,
# and `make test` passes. Needs root, debootstrap and the package registries.
#
#   tools/fresh_machine.sh            (or: make fresh-machine)
#   SD_FRESH_KEEP=1 keeps the root filesystem; SD_FRESH_SKIP_TEST=1 skips `make test`.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
say() { printf '[fresh-machine] %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  say "skipped: run as root (it builds a root filesystem with debootstrap and chroots into it)."
  exit 77
fi
if ! command -v debootstrap >/dev/null; then
  say "skipped: install debootstrap (apt-get install debootstrap)."
  exit 77
fi

work=$(mktemp -d /tmp/sd-fresh.XXXXXX)
root=$work/root
server=""
in_machine() {  # the processes running inside the new machine (their root is $root)
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  set +e
  trap - EXIT INT TERM
  [ -n "$server" ] && kill -KILL -- "-$server" 2>/dev/null
  # Builds and the test suite's processes live in sessions of their own: end them all.
  for _ in 1 2 3; do
    pids=$(in_machine)
    [ -z "$pids" ] && break
    kill -KILL $pids 2>/dev/null
    sleep 0.5
  done
  for m in "$root/dev/ptmx" "$root/dev/pts" "$root/dev/shm" "$root/proc"; do
    mountpoint -q "$m" && umount -l "$m"
  done
  if [ -z "${SD_FRESH_KEEP:-}" ]; then rm -rf "$work"; else say "kept $root"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

started=$(date +%s)
say "debootstrap: a minimal bookworm with python3, python3-venv, git, make, ca-certificates"
debootstrap --variant=minbase --include=python3,python3-venv,git,ca-certificates,make \
  bookworm "$root" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
# What any machine of this kind has: a resolver, localhost, the CA bundle, /proc, shared
# memory and terminals (a devpts of its own, which /dev/ptmx opens).
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
mount -t proc proc "$root/proc"
mkdir -p "$root/dev/shm" && mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mkdir -p "$root/dev/pts" && mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
touch "$root/dev/ptmx" && mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
say "root filesystem ready in $(( $(date +%s) - started )) s: $(chroot "$root" python3 -V), $(chroot "$root" git --version)"

git clone --quiet --no-local "$repo" "$root/src"
say "cloned $(git -C "$root/src" rev-parse --short HEAD) into the new machine"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    TERM=dumb "$@"
}
say "make run on port $port"
setsid chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  LANG=C.UTF-8 PORT="$port" /bin/sh -c 'cd /src && exec make run' >"$work/run.log" 2>&1 &
server=$!
url="http://127.0.0.1:$port"
for _ in $(seq 600); do
  python3 - "$url" <<'PY' 2>/dev/null && break
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/v4/status", timeout=2).status == 200 else 1)
PY
  kill -0 "$server" 2>/dev/null || { tail -40 "$work/run.log"; say "FAILED: make run exited"; exit 1; }
  sleep 1
done
say "the server answers at $url after $(( $(date +%s) - started )) s"

token=$(in_root /bin/sh -c 'cd /src && .venv/bin/python manage.py sd_token create --username admin')
python3 - "$url" "$token" <<'PY' || { tail -40 "$work/run.log"; say "FAILED: the demo did not succeed"; exit 1; }
import json, sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
def get(path):
    request = urllib.request.Request(url + "/v4" + path, headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(request, timeout=10))
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    pipelines = [p for p in get("/pipelines") if p["name"].endswith("/demo")]
    if pipelines:
        events = get(f"/pipelines/{pipelines[0]['id']}/events")
        builds = get(f"/events/{events[-1]['id']}/builds") if events else []
        statuses = sorted(f"{b['id']}:{b['status']}" for b in builds)
        if any(b["status"] in ("FAILURE", "ABORTED") for b in builds):
            print("[fresh-machine] a demo build did not succeed:", ", ".join(statuses))
            sys.exit(1)
        if len(builds) >= 4 and all(b["status"] == "SUCCESS" for b in builds):
            print("[fresh-machine] the demo's first event ended:", ", ".join(statuses))
            sys.exit(0)
    time.sleep(2)
print("[fresh-machine] the demo's first event did not end within 5 minutes")
sys.exit(1)
PY

say "Ctrl-C to make run"
kill -INT -- "-$server"
for _ in $(seq 40); do kill -0 "$server" 2>/dev/null || break; sleep 0.25; done
left=$(in_machine)
if [ -n "$left" ]; then
  say "FAILED: still running after Ctrl-C:"; for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline"; echo; done
  exit 1
fi
server=""
say "everything stopped"

if [ -z "${SD_FRESH_SKIP_TEST:-}" ]; then
  say "make test"
  set +e
  in_root /bin/sh -c 'cd /src && make test' 2>&1 | tee "$work/test.log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 0 ] || { say "FAILED: make test (exit $rc)"; exit 1; }
fi
say "passed in $(( $(date +%s) - started )) s"
