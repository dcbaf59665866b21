"""``OciRunner``: one RUN step = rootfs (overlay or copy) + OCI bundle + crun/runc + change → layer.

Everything a run creates (mounts, the container, temp dirs, staged secrets, cache locks) is registered
on one ExitStack, so it is undone on success, on failure and on KeyboardInterrupt (the CLI turns SIGTERM
into KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder.errors import BuildError, RunFailedError
from idpbuilder.image import Layer
from idpbuilder.owner import stamped
from idpbuilder.sandbox.diff import overlay_changes, snapshot_changes, take_snapshot, write_layer
from idpbuilder.sandbox.extract import extract_layers, layer_dir
from idpbuilder.sandbox.isolation import id_mapped, in_user_namespace
from idpbuilder.sandbox.ocispec import SYSTEM_DIRS, OciMount, build_config, default_env
from idpbuilder.sandbox.promote import promote_upper
from idpbuilder.sandbox.rootfs import (
    MountError,
    TargetPlan,
    ensure_dir,
    mount_overlay,
    prepare_targets,
    undo_targets,
    unmount,
)
from idpbuilder.sandbox.runtime import ContainerResult, detect_runtime, run_container, settle
from idpbuilder.sandbox.spec import MountSpec, RunSpec
from idpbuilder.sandbox.state import RunState, mounts_under
from idpbuilder.sandbox.users import resolve_user

if TYPE_CHECKING:
    from idpbuilder.store import Store

__all__ = ["DEFAULT_HOSTNAME", "OciRunner", "mounts_under"]  # mounts_under: re-exported from state

log = logging.getLogger("idpbuilder.sandbox")

DEFAULT_HOSTNAME = "idpbuilder-sandbox"
NO_OVERLAY_ENV = "IDPBUILDER_NO_OVERLAY"
_ETC_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname")


def _remove_run_dir(run_dir: Path) -> None:
    for mp in sorted(mounts_under(run_dir), key=len, reverse=True):
        with contextlib.suppress(BuildError):
            unmount(Path(mp))
    if mounts_under(run_dir):
        log.warning("leaving %s in place: something is still mounted below it", run_dir)
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def _exit_status(result: ContainerResult) -> int:
    err = result.runtime_error.lower()
    if result.exit_status != 0 and "unable to start container process" in err:
        if "not found" in err or "no such file" in err:
            return 127
        if "permission denied" in err:
            return 126
    return result.exit_status


def _command_text(argv: Sequence[str]) -> str:
    # one line, as BuildKit quotes it: a heredoc script's newlines are shown as \n
    text = " ".join(argv).replace("\n", "\\n")
    return text if len(text) <= 200 else text[:197] + "..."


def _hosts_file(hostname: str, extra: Sequence[tuple[str, str]]) -> str:
    lines = [f"127.0.0.1\tlocalhost {hostname}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for name, ip in extra]
    return "\n".join(lines) + "\n"


class OciRunner:
    """Runs RUN steps with an OCI runtime (crun/runc) over an overlayfs (or copied) rootfs."""

    def __init__(
        self,
        *,
        runtime: str | None = None,
        use_overlay: bool | None = None,
        compression: str | None = None,
    ) -> None:
        self._runtime = runtime
        self._use_overlay = use_overlay
        self._compression = compression
        self._state: RunState | None = None

    def _state_for(self, store: Store) -> RunState:
        if self._state is None:
            self._state = RunState.acquire(store)
        return self._state

    def close(self) -> None:
        """Release this runner's run state (runtime state, secrets); its runs are over."""
        settle()  # the runtime's deletes of exited containers, before its state directory goes
        if self._state is not None:
            self._state.release()
            self._state = None

    def _want_overlay(self) -> bool | None:
        """True: overlay required; None: overlay if it mounts; False: copied rootfs."""
        if self._use_overlay is not None:
            return self._use_overlay
        if os.environ.get(NO_OVERLAY_ENV, "") not in ("", "0"):
            return False
        return None

    def run(
        self,
        store: Store,
        base_layers: Sequence[Layer],
        spec: RunSpec,
        on_output: Callable[[str], None] | None = None,
    ) -> Layer | None:
        """Run ``spec`` on a rootfs of ``base_layers``; the change as a new stored layer (see RunSpec)."""
        # a file in the work directory (earlier versions made "runtime-probe.json" a directory by mistake)
        runtime = detect_runtime(self._runtime, cache=store.path_for() / "runtime-probes.json")
        state = self._state_for(store)
        run_dir = state.run_dir()
        with contextlib.ExitStack() as stack:
            stack.callback(_remove_run_dir, run_dir)
            want = self._want_overlay()
            lowers: list[Path] | None = None
            rootfs = run_dir / "merged"
            if want is not False:
                lowers = [layer_dir(store, layer) for layer in reversed(base_layers)]
                if not lowers:
                    lowers = [run_dir / "empty"]
                    lowers[0].mkdir()
                for d in ("upper", "work", "merged"):
                    (run_dir / d).mkdir()
                try:
                    mount_overlay(lowers, run_dir / "upper", run_dir / "work", rootfs)
                except MountError as e:
                    if want:
                        raise BuildError(
                            f"cannot mount overlayfs for RUN: {e.strerror}",
                            hint=f"set {NO_OVERLAY_ENV}=1 to use a copied rootfs instead",
                        ) from e
                    log.debug("overlayfs unavailable (%s); using a copied rootfs", e.strerror)
                    lowers = None
                else:
                    stack.callback(unmount, rootfs)
            snap = None
            if lowers is None:
                rootfs = run_dir / "rootfs"
                extract_layers(store, base_layers, rootfs)
                os.chmod(rootfs, 0o755)
                snap = take_snapshot(rootfs)
                stack.callback(snap.close)

            cwd = ensure_dir(rootfs, spec.workdir or "/")
            user = resolve_user(rootfs, spec.user)
            hostname = spec.hostname or DEFAULT_HOSTNAME
            extra, targets = self._mounts(
                store, state, spec, run_dir, hostname, stack, overlay=lowers is not None
            )
            plan = TargetPlan()
            try:
                resolved = prepare_targets(rootfs, [(t, is_dir) for t, is_dir in targets], plan)
                # the runtime's own targets (/proc, /dev, /sys) come first in config.json
                user_mounts = [
                    OciMount(dest, m.type, m.source, m.options)
                    for dest, m in zip(resolved[len(SYSTEM_DIRS) :], extra, strict=True)
                ]
                config = build_config(
                    rootfs=str(rootfs),
                    argv=spec.argv,
                    env=default_env(spec.env, user),
                    user=user,
                    cwd=cwd,
                    hostname=hostname,
                    network=spec.network,
                    mounts=user_mounts,
                    bind_sys=spec.network != "none" and in_user_namespace(),
                    tty_gid=id_mapped("gid", 5),
                    privileged=spec.privileged,
                )
                bundle = run_dir / "bundle"
                bundle.mkdir()
                (bundle / "config.json").write_text(json.dumps(config, separators=(",", ":")))
                result = run_container(runtime, state.runtime_root, bundle, on_output=on_output)
            finally:
                undo_targets(rootfs, plan)
            status = _exit_status(result)
            if status != 0:
                tail = list(result.tail)
                if result.runtime_error and not any(result.runtime_error in t for t in tail):
                    tail.append(result.runtime_error)
                raise RunFailedError(
                    f"RUN failed (exit {status}): {_command_text(spec.argv)}",
                    exit_status=status,
                    output_tail="\n".join(tail),
                    hint=result.runtime_error or None,
                )
            if lowers is not None:
                unmount(rootfs)
                changes = overlay_changes(run_dir / "upper", lowers)
            else:
                assert snap is not None
                changes = snapshot_changes(rootfs, snap, touched=plan.touched_dirs)
            if not changes and spec.none_if_unchanged:
                return None
            layer = write_layer(store, changes, compression=self._compression)
            if lowers is not None:
                promote_upper(store, layer, run_dir / "upper", changes)  # the next RUN need not extract it
            return layer
        raise AssertionError("unreachable")  # pragma: no cover - the with block always returns or raises

    # ---------------------------------------------------------------- mounts
    def _mounts(
        self,
        store: Store,
        state: RunState,
        spec: RunSpec,
        run_dir: Path,
        hostname: str,
        stack: contextlib.ExitStack,
        *,
        overlay: bool,
    ) -> tuple[list[OciMount], list[tuple[str, bool]]]:
        """OCI mounts (destinations unresolved) for /etc files and RUN --mount, plus all targets."""
        etc = run_dir / "etc"
        etc.mkdir()
        try:
            resolv = Path("/etc/resolv.conf").read_bytes()
        except OSError:
            resolv = b""
        (etc / "resolv.conf").write_bytes(resolv)
        (etc / "hosts").write_text(_hosts_file(hostname, spec.extra_hosts))
        (etc / "hostname").write_text(hostname + "\n")
        mounts = [OciMount(t, "bind", str(etc / Path(t).name), ("rbind", "rw")) for t in _ETC_FILES]
        targets = [(d, True) for d in SYSTEM_DIRS] + [(t, False) for t in _ETC_FILES]
        for i, m in enumerate(spec.mounts):
            om, is_dir = self._one_mount(store, state, m, i, run_dir, stack, overlay=overlay)
            mounts.append(om)
            targets.append((m.container_path, is_dir))
        return mounts, targets

    def _one_mount(
        self,
        store: Store,
        state: RunState,
        m: MountSpec,
        i: int,
        run_dir: Path,
        stack: contextlib.ExitStack,
        *,
        overlay: bool,
    ) -> tuple[OciMount, bool]:
        dest = m.container_path
        if m.kind == "tmpfs":
            opts = ("nosuid", "nodev", "mode=1777") + ((f"size={m.size}",) if m.size else ())
            return OciMount(dest, "tmpfs", "tmpfs", opts), True
        if m.kind == "secret":
            assert m.source is not None
            return OciMount(dest, "bind", str(self._stage_secret(m, state, stack)), ("rbind", "ro")), False
        if m.kind == "cache":
            return OciMount(dest, "bind", str(self._cache_dir(store, m, stack)), ("rbind", "rw")), True
        if m.kind == "ssh":  # the agent socket itself, never copied or stored
            assert m.source is not None
            return OciMount(dest, "bind", str(m.source), ("rbind", "rw")), False
        assert m.source is not None
        src = Path(m.source)
        if not src.exists():
            raise BuildError(f"bind mount source {src} does not exist (target {dest})")
        is_dir = src.is_dir()
        if m.readonly:
            return OciMount(dest, "bind", str(src), ("rbind", "ro")), is_dir
        return OciMount(
            dest, "bind", str(self._scratch_copy(src, i, run_dir, stack, overlay)), ("rbind", "rw")
        ), is_dir

    @staticmethod
    def _scratch_copy(src: Path, i: int, run_dir: Path, stack: contextlib.ExitStack, overlay: bool) -> Path:
        """A writable view of ``src`` whose writes are thrown away after the run."""
        base = run_dir / f"bind{i}"
        base.mkdir()
        if not src.is_dir():
            dst = base / "file"
            shutil.copy2(src, dst)
            return dst
        if overlay:
            for d in ("upper", "work", "merged"):
                (base / d).mkdir()
            try:
                mount_overlay([src], base / "upper", base / "work", base / "merged")
            except MountError:
                pass
            else:
                stack.callback(unmount, base / "merged")
                return base / "merged"
        dst = base / "copy"
        shutil.copytree(src, dst, symlinks=True)
        return dst

    @staticmethod
    def _stage_secret(m: MountSpec, state: RunState, stack: contextlib.ExitStack) -> Path:
        """Copy the secret to a private tmpfs file with the requested owner and mode (default 0400)."""
        assert m.source is not None
        try:
            data = Path(m.source).read_bytes()
        except OSError as e:
            raise BuildError(f"cannot read secret {m.id or m.container_path}: {e.strerror}") from e
        dst = state.write_secret(
            "secret", data, uid=m.uid or 0, gid=m.gid or 0, mode=0o400 if m.mode is None else m.mode
        )
        stack.callback(shutil.rmtree, dst.parent, True)
        return dst

    @staticmethod
    def _cache_dir(store: Store, m: MountSpec, stack: contextlib.ExitStack) -> Path:
        """The persistent dir of a cache mount, locked per its sharing mode for the run."""
        base = store.path_for("cache-mounts")
        key = hashlib.sha256(m.cache_id.encode()).hexdigest()[:32]
        n = 0
        while True:
            name = key if n == 0 else f"{key}-{n}"
            fd = os.open(base / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if m.sharing == "shared":
                    fcntl.flock(fd, fcntl.LOCK_SH)
                elif m.sharing == "locked":
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                n += 1  # private: someone uses this instance, take the next one
                continue
            except BaseException:
                os.close(fd)
                raise
            stack.callback(os.close, fd)
            break
        path = base / name
        if not path.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=base, prefix=stamped(f".tmp-{name}-")))
            if m.source is not None and Path(m.source).is_dir():
                shutil.copytree(m.source, tmp, symlinks=True, dirs_exist_ok=True)
            os.chown(tmp, m.uid or 0, m.gid or 0)
            os.chmod(tmp, 0o755 if m.mode is None else m.mode)
            try:
                os.rename(tmp, path)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # created meanwhile by a shared user
        return path
