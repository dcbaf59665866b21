"""The README's master workflow as a normal user (rootless): build with RUN, list, push to the TLS + auth
registry, pull back and run; file ownership exactly as a root build gives it; no subordinate ids; state kept
private per user; RUN networking."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from fixtures.cli import run_cli
from fixtures.debian import BASE_REF, debian_rootfs_tar, install_debian_base
from fixtures.registry import RegistryInfo, skopeo
from fixtures.users import NormalUser

HELLO = '#!/bin/sh\necho "hello from the demo image"\ncat /etc/motd\n'
OWNERS_DOCKERFILE = """FROM {base}
RUN mkdir /d && touch /d/a /d/b /d/c /d/e && chown 33:33 /d/a && chown 1000:1000 /d/b \\
 && chown 65534:65534 /d/c && chown 0:5 /d/e && cp /bin/busybox /d/suid && chmod 4755 /d/suid \\
 && mkdir /d/sticky && chmod 1777 /d/sticky && ln -s /d/a /d/link && mkfifo /d/fifo
RUN rm /d/e && mkdir -p /opt/x && touch /opt/x/1
COPY --chown=33:44 f /f33
COPY --chown=1000 g /g1000
"""


def _context(root: Path, dockerfile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (root / name).write_text(text)
        os.chmod(root / name, 0o644)
    return root


def _user_env(reg: RegistryInfo, user: NormalUser, shared: Path) -> dict[str, str]:
    assert reg.username and reg.password and reg.ca_file
    return {
        "IDPBUILDER_REGISTRY_USERNAME": reg.username,
        "IDPBUILDER_REGISTRY_PASSWORD": reg.password,
        "IDPBUILDER_CA_FILE": str(user.readable_copy(reg.ca_file, shared / "ca")),
    }


def _layers(store: Path, ref: str) -> list[list[tuple[str, str, int, int, int]]]:
    """Per layer: (name, type, uid, gid, mode) of every entry, from the store's blobs (read as root)."""
    idx = json.loads((store / "index.json").read_text())
    desc = next(m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == ref)
    manifest = json.loads((store / "blobs/sha256" / desc["digest"].split(":")[1]).read_text())
    out = []
    for layer in manifest["layers"]:
        with tarfile.open(store / "blobs/sha256" / layer["digest"].split(":")[1], "r:*") as tf:
            out.append(sorted((m.name, m.type.decode(), m.uid, m.gid, m.mode) for m in tf))
    return out


def test_master_workflow_as_normal_user(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path
) -> None:
    reg = seeded_registries["tls"]
    env = _user_env(reg, dev_user, shared_dir)
    ctx = _context(
        shared_dir / "demo",
        f"FROM {reg.ref('library/busybox:latest')}\n"
        'RUN echo "built without docker" > /etc/motd\nWORKDIR /app\nCOPY hello.sh .\n'
        'RUN chmod +x hello.sh\nCMD ["./hello.sh"]\n',
        {"hello.sh": HELLO},
    )
    ref = reg.ref("giteaadmin/rootless-demo:v1")
    r = dev_user.idp("build", "-t", ref, str(ctx), env=env)
    assert r.code == 0, r.stderr
    assert "WARN" not in r.stderr, r.stderr  # a user with a subordinate range gets no warning
    assert "giteaadmin/rootless-demo" in dev_user.idp("images").check().stdout
    pushed = dev_user.idp("push", ref, env=env).check().stdout.strip().splitlines()[-1]
    assert pushed.startswith(ref + "@sha256:"), pushed
    info = json.loads(skopeo("inspect", *reg.skopeo_args(), f"docker://{ref}").stdout)
    assert info["Digest"] == pushed.rsplit("@", 1)[1]

    # pull back into a fresh store as the same user, then run it (umoci + runc, as the demo does)
    dev_user.idp("--store", str(dev_user.home / "pulled"), "pull", ref, env=env).check()
    layout = shared_dir.parent / "layout"
    skopeo("copy", "-q", f"oci:{dev_user.home / 'pulled' / 'store'}:{ref}", f"oci:{layout}:demo")
    bundle = shared_dir.parent / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:demo", str(bundle)], check=True, capture_output=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    out = subprocess.run(
        ["runc", "run", "-b", str(bundle), f"idpb-rootless-{os.getpid()}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "hello from the demo image" in out and "built without docker" in out


def test_ownership_is_what_a_root_build_gives(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path, tmp_path: Path
) -> None:
    reg = seeded_registries["tls"]
    ctx = _context(
        shared_dir / "owners",
        OWNERS_DOCKERFILE.format(base=reg.ref("library/busybox:latest")),
        {"f": "f\n", "g": "g\n"},
    )
    r = dev_user.idp("build", "-t", "owners:rootless", str(ctx), env=_user_env(reg, dev_user, shared_dir))
    assert r.code == 0, r.stderr
    root_home = tmp_path / "root-home"
    run_cli(["build", "-t", "owners:root", str(ctx)], home=root_home, env=reg.env()).check()
    rootless = _layers(dev_user.home / ".idpbuilder" / "store", "owners:rootless")
    rooted = _layers(root_home / "store", "owners:root")
    assert rootless == rooted
    run_layer = {e[0]: e for e in rootless[1]}
    assert run_layer["d/a"][2:4] == (33, 33) and run_layer["d/b"][2:4] == (1000, 1000)
    assert run_layer["d/c"][2:4] == (65534, 65534)
    assert run_layer["d/suid"][4] & stat.S_ISUID and run_layer["d/sticky"][4] & stat.S_ISVTX
    assert {e[0]: e for e in rootless[3]}["f33"][2:4] == (33, 44)
    assert {e[0]: e for e in rootless[2]}["d/.wh.e"]  # the whiteout of a root-owned file in a lower layer


def test_without_subordinate_ids_builds_root_owned_files_with_a_warning(
    nosub_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path
) -> None:
    reg = seeded_registries["tls"]
    ctx = _context(
        shared_dir / "nosub",
        f"FROM {reg.ref('library/busybox:latest')}\nRUN echo hi > /hi && mkdir /d && touch /d/x\n"
        "COPY --chown=33:33 f /f\n",
        {"f": "f\n"},
    )
    r = nosub_user.idp("build", "-t", "nosub:1", str(ctx), env=_user_env(reg, nosub_user, shared_dir))
    assert r.code == 0, r.stderr
    assert "no subordinate uid/gid range" in r.stderr and "usermod --add-subuids" in r.stderr, r.stderr
    layers = _layers(nosub_user.home / ".idpbuilder" / "store", "nosub:1")
    assert {(e[2], e[3]) for e in layers[1]} == {(0, 0)}  # RUN's files: all root's
    assert {e[0]: e for e in layers[2]}["f"][2:4] == (33, 33)  # COPY --chown writes the header it is told


def test_run_network_host_by_default_and_none_isolated(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path
) -> None:
    registry_plain = seeded_registries["plain"]
    url = f"http://{registry_plain.host}/v2/"
    ctx = _context(
        shared_dir / "net",
        f"FROM {registry_plain.ref('library/busybox:latest')}\n"
        f"RUN wget -q -O /host.txt {url} && cat /host.txt\n"
        f"RUN --network=none sh -c 'ip -o link > /links; wget -q -T 3 -O- {url} && exit 1 || true'\n",
        {},
    )
    r = dev_user.idp("build", "--progress", "plain", "-t", "net:1", str(ctx))
    assert r.code == 0, r.stderr
    layers = _layers(dev_user.home / ".idpbuilder" / "store", "net:1")
    assert "host.txt" in {e[0] for e in layers[1]}


def test_state_is_private_to_each_user(
    dev_user: NormalUser, other_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path
) -> None:
    reg = seeded_registries["tls"]
    ctx = _context(
        shared_dir / "private",
        f"FROM {reg.ref('library/busybox:latest')}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null\n",
        {},
    )
    (shared_dir / "tok").write_text("s3cret-value\n")
    os.chmod(shared_dir / "tok", 0o644)
    env = _user_env(reg, dev_user, shared_dir)
    dev_user.idp("build", "--secret", f"id=tok,src={shared_dir / 'tok'}", "-t", "private:1", str(ctx), env=env).check()
    home = dev_user.home / ".idpbuilder"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    # every directory of the tool's own layout is 0700 (image content lives only below those)
    for d in [home, *home.iterdir(), *(home / "work").iterdir()]:
        if d.is_dir():
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    r = other_user.run(["ls", str(home / "store")])
    assert r.code != 0 and "Permission denied" in r.stderr
    # nothing of the run is left: no run state, no secret copy, in the runtime dir or on /dev/shm
    assert list((dev_user.runtime_dir / "idpbuilder").iterdir()) == []
    assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith(f"idpbuilder-{dev_user.uid}-")]


@pytest.mark.timeout(900)
def test_debian_apt_get_install_rootless(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path, tmp_path: Path
) -> None:
    rootfs = debian_rootfs_tar()
    reg = seeded_registries["tls"]
    home = tmp_path / "debian-home"
    install_debian_base(home, rootfs)
    base = reg.ref("library/debian:bookworm-minbase")
    skopeo("copy", "-q", *reg.skopeo_args(dest=True), f"oci:{home / 'store'}:{BASE_REF}", f"docker://{base}")
    ctx = _context(
        shared_dir / "debian",
        f"FROM {base}\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"
        'CMD ["curl", "--version"]\n',
        {},
    )
    r = dev_user.idp("build", "--progress", "plain", "-t", "debian-curl:rootless", str(ctx),
                     env=_user_env(reg, dev_user, shared_dir), timeout=800)  # fmt: skip
    assert r.code == 0, r.stderr[-4000:]
    assert "Setting up curl" in r.stderr
    entries = {e[0]: e for e in _layers(dev_user.home / ".idpbuilder" / "store", "debian-curl:rootless")[1]}
    assert entries["usr/bin/curl"][2:4] == (0, 0)
    # apt's sandbox user (_apt) owns its partial dirs: ids above 0 survive the user namespace
    assert any(e[2] not in (0,) for e in entries.values()), "expected some non-root owned entries"


@pytest.fixture(scope="module")
def probe_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/sandbox/confine_probe.c compiled static (the busybox image has no libc)."""
    src = Path(__file__).resolve().parents[1] / "sandbox" / "confine_probe.c"
    out = tmp_path_factory.mktemp("probe") / "probe"
    p = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {p.stderr.strip()[-300:]}")
    return out


def test_rootless_run_is_confined_too(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path, probe_bin: Path
) -> None:
    reg = seeded_registries["tls"]
    ctx = _context(
        shared_dir / "confine",
        f"FROM {reg.ref('library/busybox:latest')}\nCOPY probe /probe\n"
        "RUN /probe add_key idpb-rootless-probe; /probe keyctl; /probe packet; /probe raw; /probe fork 3000; "
        "mkdir -p /mnt; mount -t tmpfs none /mnt && echo MOUNTED; unshare -U true && echo UNSHARED; "
        "ulimit -n; echo END\n",
        {},
    )
    (ctx / "probe").write_bytes(probe_bin.read_bytes())
    os.chmod(ctx / "probe", 0o755)
    r = dev_user.idp("build", "--progress", "plain", "-t", "confine:rootless", str(ctx),
                     env=_user_env(reg, dev_user, shared_dir))  # fmt: skip
    assert r.code == 0, r.stderr
    out = r.stderr
    for what in ("add_key", "keyctl", "packet socket", "raw socket"):
        assert f"DENIED {what}: Operation not permitted" in out, out
    m = re.search(r"BOUNDED fork: (\d+) children", out)
    assert m is not None and int(m.group(1)) < 2048, out
    assert not re.search(r"^#\d+ (MOUNTED|UNSHARED)$", out, re.M), out
    assert re.search(r"^#\d+ 1024$", out, re.M), out  # RLIMIT_NOFILE inside, as podman


def test_killed_rootless_builds_leave_nothing_behind(
    dev_user: NormalUser, seeded_registries: dict[str, RegistryInfo], shared_dir: Path
) -> None:
    """SIGKILL at random points of rootless builds; the next command (outside the user namespace) removes
    everything, including files owned by the user's subordinate ids."""
    import random
    import signal
    import time

    from e2e.conftest import mounts_under, processes_mentioning

    reg = seeded_registries["tls"]
    env = dev_user.env(_user_env(reg, dev_user, shared_dir))
    (shared_dir / "tok").write_text("rootless-kill-secret\n")
    os.chmod(shared_dir / "tok", 0o644)
    rng = random.Random()
    home = dev_user.home / ".idpbuilder"
    for i in range(3):
        marker = f"{rng.randrange(10**6):06d}"
        ctx = _context(
            shared_dir / f"kill{i}",
            f"FROM {reg.ref('library/busybox:latest')}\n"
            "RUN --mount=type=secret,id=tok cat /run/secrets/tok >/dev/null && mkdir /o && touch /o/f "
            "&& chown -R 33:33 /o\n"
            f"RUN sleep 5.{marker}\n",
            {},
        )
        proc = subprocess.Popen(
            ["setpriv", f"--reuid={dev_user.uid}", f"--regid={dev_user.gid}", "--init-groups", "--",
             dev_user.idpbuilder, "build", "--no-cache", "--secret", f"id=tok,src={shared_dir / 'tok'}",
             "-t", f"kill:{i}", str(ctx)],
            env=env, cwd=str(dev_user.home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        dev_user.idp("images").check()
        deadline = time.monotonic() + 10
        while processes_mentioning(f"5.{marker}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(f"5.{marker}") == [], f"trial {i}"
        assert mounts_under(dev_user.home) == [] and mounts_under(dev_user.runtime_dir) == []
        state = [*(home / "work" / "state").glob("*"), *(dev_user.runtime_dir / "idpbuilder").glob("*")]
        assert state == [], f"trial {i}: {state}"
        stale = [p for d in ("tmp", "work/layers", "work/build/tmp") for p in (home / d).glob("*~*~*")]
        assert stale == [], f"trial {i}: {stale}"
        assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith(f"idpbuilder-{dev_user.uid}-")]
