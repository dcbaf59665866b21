"""OciRunner end to end with real runc and real overlayfs (and the copied-rootfs fallback)."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from idpbuilder.errors import BuildError, RunFailedError, UsageError
from idpbuilder.image import Layer
from idpbuilder.sandbox import MountSpec, OciRunner, RunSpec, mounts_under, runtime
from idpbuilder.store import Store

from .conftest import layer_file, layer_members, needs_root, needs_runtime

pytestmark = [needs_root, needs_runtime]

ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def sh(cmd: str, **kw: object) -> RunSpec:
    return RunSpec(argv=["/bin/sh", "-c", cmd], env=list(kw.pop("env", ENV)), **kw)  # type: ignore[arg-type]


def our_mounts(store: Store) -> list[str]:
    """Mounts this code could have left behind: under the store home or staged secrets in /dev/shm."""
    found = mounts_under(store.home)
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if "/dev/shm/idpbuilder-" in line.split()[4]]
    return found


def _state_dirs(store: Store) -> list[Path]:
    """Run state directories of this process (one per runner, holding run dirs, runc state, secrets)."""
    root = store.path_for("state")
    return sorted(root.iterdir()) if root.is_dir() else []


@pytest.fixture(params=["overlay", "copy"])
def runner(request: pytest.FixtureRequest, store: Store) -> Iterator[OciRunner]:
    before = our_mounts(store)
    r = OciRunner(use_overlay=request.param == "overlay")
    yield r
    runtime.settle()  # exited containers are deleted in the background while the build goes on
    assert our_mounts(store) == before
    for d in _state_dirs(store):  # each run removes its own run dir, runc state and secrets
        assert sorted(p.name for p in d.iterdir()) in ([], ["runc"], ["runc", "secrets"]), list(d.iterdir())
        assert not [p for p in d.rglob("*") if p.is_file()], "run files left behind"
    r.close()  # other runners of this process may still hold the state dir: atexit removes it
    assert not [p for p in Path("/dev/shm").glob(f"idpbuilder-{os.geteuid()}-*/**/*") if p.is_file()]


def run(runner: OciRunner, store: Store, base: list[Layer], spec: RunSpec) -> tuple[Layer, list[str]]:
    out: list[str] = []
    layer = runner.run(store, base, spec, on_output=out.append)
    assert layer is not None
    return layer, out


def test_echo_creates_only_that_file(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    layer, out = run(runner, store, base_layers, sh("echo hi > /hi && echo done"))
    assert out == ["done"]
    members = layer_members(store, layer)
    assert list(members) == ["hi"]
    assert layer_file(store, layer, "hi") == b"hi\n"
    assert abs(members["hi"].mtime - time.time()) < 120


def test_rm_gives_whiteout(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    layer, _ = run(runner, store, base_layers, sh("rm /bin/ls"))
    members = layer_members(store, layer)
    assert list(members) == ["bin", "bin/.wh.ls"]


def test_recreated_dir_is_opaque(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    # /etc itself cannot go: resolv.conf/hosts/hostname are bind-mounted there (as with docker build)
    layer, _ = run(runner, store, base_layers, sh("rm -rf /root && mkdir /root && echo x > /root/new"))
    assert list(layer_members(store, layer)) == ["root", "root/.wh..wh..opq", "root/new"]


def test_rm_rf_etc_fails_like_docker(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    with pytest.raises(RunFailedError) as ei:
        runner.run(store, base_layers, sh("rm -rf /etc"))
    assert "busy" in ei.value.output_tail.lower()


def test_failure_carries_exit_code_and_output(
    runner: OciRunner, store: Store, base_layers: list[Layer]
) -> None:
    lines: list[str] = []
    cmd = "for i in $(seq 1 30); do echo line$i; done; echo oops >&2; exit 3"
    with pytest.raises(RunFailedError) as ei:
        runner.run(store, base_layers, sh(cmd), on_output=lines.append)
    e = ei.value
    assert e.exit_status == 3
    assert str(e).startswith("RUN failed (exit 3): /bin/sh -c for i in")
    tail = e.output_tail.splitlines()
    # runc relays stdout and stderr through separate pipes: their relative order is not guaranteed
    assert "oops" in lines and len(lines) == 31 and lines[0] == "line1"
    assert tail == lines[-20:]


def test_missing_command_is_127(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    with pytest.raises(RunFailedError) as ei:
        runner.run(store, base_layers, RunSpec(argv=["no-such-cmd"], env=ENV))
    assert ei.value.exit_status == 127
    assert "no-such-cmd" in ei.value.output_tail


def test_user_workdir_env_hostname(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    spec = sh(
        'id; pwd; echo "$GREETING|$HOME"; hostname; cat /etc/hostname; touch /tmp/f',
        env=[*ENV, "GREETING=hello there"],
        user="nobody",
        workdir="/work/dir",
        hostname="builder1",
    )
    layer, out = run(runner, store, base_layers, spec)
    assert out == [
        # the primary gid leads the supplementary groups, as containerd/BuildKit set them
        "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)",
        "/work/dir",
        "hello there|/home",
        "builder1",
        "builder1",
    ]
    members = layer_members(store, layer)
    assert list(members) == ["tmp", "tmp/f", "work", "work/dir"]
    assert members["tmp/f"].uid == 65534 and members["work/dir"].uid == 0


def test_numeric_user_and_group(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    _, out = run(runner, store, base_layers, sh("id -u; id -g", user="1234:5678"))
    assert out == ["1234", "5678"]
    with pytest.raises(BuildError, match="unable to find user ghost"):
        runner.run(store, base_layers, sh("true", user="ghost"))


def test_network_none_has_only_lo(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    cmd = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
    _, out = run(runner, store, base_layers, sh(cmd, network="none"))
    assert out == ["lo"]
    _, out = run(runner, store, base_layers, sh(cmd, network="host"))
    assert "lo" in out and len(out) > 1


def test_system_mounts_and_limits(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    cmd = (
        "ls /dev | tr '\\n' ' '; echo; grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "
        "ulimit -n; grep -c . /etc/hosts; test -c /dev/pts/ptmx && echo pts"
    )
    layer, out = run(runner, store, base_layers, sh(cmd))
    for node in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"):
        assert node in out[0].split()
    assert out[1] == "ro"
    import resource

    assert int(out[2]) <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert out[4] == "pts"
    assert layer_members(store, layer) == {}  # /proc, /dev, /sys, /etc/hosts… never in the layer


def test_empty_change(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    layer, _ = run(runner, store, base_layers, sh("true"))
    assert layer_members(store, layer) == {}
    assert runner.run(store, base_layers, RunSpec(argv=["true"], env=ENV, none_if_unchanged=True)) is None


def test_chained_runs(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    l1, _ = run(runner, store, base_layers, sh("mkdir /data && echo 1 > /data/a && echo 2 > /data/b"))
    l2, _ = run(runner, store, [*base_layers, l1], sh("rm /data/a && echo 3 >> /data/b"))
    assert list(layer_members(store, l2)) == ["data", "data/.wh.a", "data/b"]
    _, out = run(runner, store, [*base_layers, l1, l2], sh("ls /data; cat /data/b"))
    assert out == ["b", "2", "3"]


def test_cache_mount_persists(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    cid = f"c-{os.getpid()}-{time.monotonic_ns()}"
    m = MountSpec(kind="cache", target="/var/cache/x", readonly=False, id=cid)
    l1, _ = run(runner, store, base_layers, sh("echo v1 > /var/cache/x/f", mounts=(m,)))
    _, out = run(runner, store, base_layers, sh("cat /var/cache/x/f", mounts=(m,)))
    assert out == ["v1"]
    assert layer_members(store, l1) == {}  # the cache's content and its mount point stay out of the layer
    locked = MountSpec(
        kind="cache", target="/c", readonly=False, id=cid, sharing="locked", uid=65534, mode=0o700
    )
    _, out = run(runner, store, base_layers, sh("cat /c/f", mounts=(locked,), user="nobody"))
    assert out == ["v1"]


def test_secret_mount_not_in_layer(
    runner: OciRunner, store: Store, base_layers: list[Layer], tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    m = MountSpec(kind="secret", target="", source=secret, id="token")
    cmd = "cat /run/secrets/token; echo; stat -c %a /run/secrets/token; cp /run/secrets/token /copied"
    layer, out = run(runner, store, base_layers, sh(cmd, mounts=(m,)))
    assert out == ["s3cr3t", "400"]
    assert list(layer_members(store, layer)) == ["copied"]  # nothing under /run
    m2 = MountSpec(kind="secret", target="/etc/passwd-secret", source=secret, id="t", mode=0o440, gid=65534)
    layer, out = run(runner, store, base_layers, sh("stat -c '%a %g' /etc/passwd-secret", mounts=(m2,)))
    assert out == ["440 65534"] and layer_members(store, layer) == {}


def test_bind_and_tmpfs_mounts(
    runner: OciRunner, store: Store, base_layers: list[Layer], tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "in.txt").write_text("from context")
    ro = MountSpec(kind="bind", target="/src", source=ctx)
    with pytest.raises(RunFailedError):
        runner.run(store, base_layers, sh("touch /src/nope", mounts=(ro,)))
    rw = MountSpec(kind="bind", target="/src", source=ctx, readonly=False)
    tmpfs = MountSpec(kind="tmpfs", target="/scratch", size=1 << 20)
    cmd = "cat /src/in.txt; echo; echo w > /src/new; echo t > /scratch/t; grep -c scratch /proc/mounts"
    layer, out = run(runner, store, base_layers, sh(cmd, mounts=(rw, tmpfs)))
    assert out == ["from context", "1"]
    assert sorted(os.listdir(ctx)) == ["in.txt"]  # rw bind writes are discarded
    assert layer_members(store, layer) == {}


def test_interrupt_cleans_up(runner: OciRunner, store: Store, base_layers: list[Layer]) -> None:
    started = threading.Event()
    marker = 100_000 + os.getpid() * 10 + time.monotonic_ns() % 10

    def on_output(line: str) -> None:
        if line == "started":
            started.set()

    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        started.wait(30)
        # aimed at the main thread: a process-wide signal taken by this thread would leave the main thread
        # blocked in its read until the container prints again
        signal.pthread_kill(main, signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.run(store, base_layers, sh(f"echo started; sleep {marker}"), on_output=on_output)
    t.join()
    assert time.monotonic() - t0 < 30
    # the fixture checks mounts and run dirs; no container process may survive either
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert f"sleep\x00{marker}".encode() not in cmdline


def test_overlay_and_copy_give_same_layers(store: Store, base_layers: list[Layer]) -> None:
    cmds = [
        "echo hi > /hi",
        "rm /bin/ls",
        "rm -rf /root && mkdir /root && echo x > /root/new",
        "mkdir -p /a/b && echo 1 > /a/b/c && ln /a/b/c /a/d && ln -s /etc/passwd /a/l && chmod 4755 /a/b/c",
        "rm -rf /tmp /usr/sbin && chmod 700 /etc && echo more >> /etc/group && chown 1:1 /etc/passwd",
    ]
    for cmd in cmds:
        # pin mtimes so two runs (seconds apart) are byte-identical
        full = f"{cmd}; find / -xdev -newer /bin/busybox -exec touch -h -d '2020-01-01 00:00:00' {{}} + 2>/dev/null; true"
        ov = OciRunner(use_overlay=True).run(store, base_layers, sh(full))
        cp = OciRunner(use_overlay=False).run(store, base_layers, sh(full))
        assert ov is not None and cp is not None
        assert list(layer_members(store, ov)) == list(layer_members(store, cp)), cmd
        assert ov.diff_id == cp.diff_id, cmd


def test_env_switch_forces_copy(
    store: Store, base_layers: list[Layer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDPBUILDER_NO_OVERLAY", "1")
    seen: list[str] = []
    runner = OciRunner()
    layer = runner.run(
        store, base_layers, sh("grep ' / ' /proc/mounts | cut -d' ' -f3; echo a > /a"), seen.append
    )
    assert seen == ["ext4"] or seen[0] != "overlay"
    assert layer is not None and list(layer_members(store, layer)) == ["a"]


def test_bad_spec_values() -> None:
    with pytest.raises(UsageError):
        RunSpec(argv=["true"], network="bridge")
    with pytest.raises(UsageError):
        MountSpec(kind="nfs", target="/x")
    with pytest.raises(UsageError):
        MountSpec(kind="cache", target="/x", sharing="sometimes")


def test_layers_are_deterministic(store: Store, base_layers: list[Layer]) -> None:
    spec = sh("mkdir /d && echo a > /d/z && echo b > /d/a && touch -d '2020-01-01 00:00:00' /d/z /d/a /d")
    a = OciRunner(use_overlay=True).run(store, base_layers, spec)
    b = OciRunner(use_overlay=True).run(store, base_layers, spec)
    assert a is not None and b is not None and a.descriptor.digest == b.descriptor.digest
    assert list(layer_members(store, a)) == ["d", "d/a", "d/z"]
    assert stat.S_IMODE(layer_members(store, a)["d"].mode) == 0o755
