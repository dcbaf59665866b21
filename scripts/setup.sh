#!/usr/bin/env bash
# Set up this machine and the repo's virtualenv for idpbuilder (Debian 12, run as root or with sudo).
# Idempotent: installs only missing apt packages, creates .venv only when it is missing or broken, and
# reinstalls Python packages only when requirements.lock, pyproject.toml or the interpreter changed.
# Needs nothing but the Debian and PyPI package registries. Override the interpreter with PYTHON=...
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { printf 'setup: %s\n' "$*" >&2; }

# ---- 1. system packages -------------------------------------------------------------------------------------
APT_PACKAGES=(
  docker-registry skopeo buildah runc crun umoci busybox-static oci-image-tool podman mmdebstrap
  apache2-utils openssl jq curl uidmap fuse-overlayfs ca-certificates python3-venv git docker.io
  gcc libc6-dev util-linux passwd procps
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q "${missing[@]}"
else
  log "apt packages present"
fi

# ---- 2. podman settings for tests (this sandbox: low rlimits, hybrid cgroups, no systemd) -----------------------
# Tests point CONTAINERS_CONF at this file. crun cannot run here (hybrid cgroups), so runc; the hard
# RLIMIT_NOFILE/NPROC cannot be raised, so containers get low ulimits; no journald, so file events.
conf="tests/fixtures/containers.conf"
conf_text='# Written by scripts/setup.sh; tests export CONTAINERS_CONF=<repo>/tests/fixtures/containers.conf
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$conf_text" ]; then
  printf '%s\n' "$conf_text" >"$conf"
  log "wrote $conf"
fi

# ---- 3. virtualenv --------------------------------------------------------------------------------------------
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { log "need Python >= 3.11, $python is $("$python" -V 2>&1)"; exit 1; }
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  log "creating .venv with $("$python" -V 2>&1)"
  rm -rf .venv
  "$python" -m venv .venv
fi
stamp=".venv/.idpbuilder-setup"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1) $(.venv/bin/python -V 2>&1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import idpbuilder' 2>/dev/null; then
  log "installing Python packages"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  printf '%s\n' "$want" >"$stamp"
else
  log ".venv up to date"
fi
