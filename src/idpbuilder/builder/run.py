"""RUN: turn the instruction into a sandbox ``RunSpec`` (argv with SHELL, env with ARGs, mounts) and run it."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from idpbuilder.builder.cache import chain_next, source_digest
from idpbuilder.builder.context import BuildSession, Runner, StepContext
from idpbuilder.builder.fs import Meta, _meta_from_stat, clean, resolve_path
from idpbuilder.builder.options import PROXY_ARGS
from idpbuilder.builder.rootfs import LayerMember
from idpbuilder.builder.state import StageState
from idpbuilder.dockerfile import Mount, Run
from idpbuilder.errors import BuildError, UsageError
from idpbuilder.image import Layer

if TYPE_CHECKING:
    from idpbuilder.sandbox.spec import MountSpec

__all__ = ["SSH_AGENT_TARGET", "do_run", "run_argv"]

SSH_AGENT_TARGET = "/run/buildkit/ssh_agent.0"  # BuildKit's default target of RUN --mount=type=ssh

INSECURE_ENTITLEMENT = "security.insecure"


def run_argv(st: StageState, cmd: Run) -> list[str]:
    """The argv a RUN executes: exec form as is; shell form (heredoc bodies appended) under SHELL."""
    if cmd.json:
        return list(cmd.args)
    script = " ".join(cmd.args)
    docs = list(cmd.heredocs)
    if docs:
        first = script.strip()
        only = len(docs) == 1 and first in (
            f"<<{docs[0].name}",
            f"<<-{docs[0].name}",
            f"<<'{docs[0].name}'",
            f'<<"{docs[0].name}"',
            f"<<-'{docs[0].name}'",
            f'<<-"{docs[0].name}"',
        )
        if only:
            body = docs[0].content
            if body.startswith("#!"):
                interp = body[2:].splitlines()[0].strip().split()
                return [*interp, "-c", body] if interp and interp[0].endswith("sh") else [*st.shell, body]
            return [*st.shell, body]
        for h in docs:
            script += "\n" + h.content + h.name
    return [*st.shell, script]


def _shebang_script(s: BuildSession, cmd: Run) -> tuple[Path, str] | None:
    """A lone ``RUN <<EOF`` whose body starts with ``#!`` runs as a script file (as BuildKit does)."""
    if cmd.json or len(cmd.heredocs) != 1:
        return None
    h = cmd.heredocs[0]
    if not h.content.startswith("#!") or " ".join(cmd.args).strip().lstrip("<-").strip("'\"") != h.name:
        return None
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="heredoc-", dir=s.scratch_dir()))
    f = d / h.name
    f.write_text(h.content)
    os.chmod(f, 0o755)
    return f, f"/dev/pipes/{h.name}"


def _runner(s: BuildSession) -> Runner:
    """The session's runner; the sandbox's OCI runner (crun/runc) unless one was passed in."""
    if s.runner is not None:
        return s.runner
    try:
        from idpbuilder.sandbox.runner import OciRunner
    except ImportError as e:
        raise BuildError(
            f"RUN needs the sandbox, which is not available: {e}",
            hint="install crun or runc, or build without RUN instructions",
        ) from None
    runner = OciRunner()
    s.runner = runner
    s.on_close.append(runner.close)
    return runner


def do_run(ctx: StepContext, cmd: Run) -> bool:
    """Dispatch one RUN through the cache and the sandbox runner; True when the layer came from cache."""
    from idpbuilder.sandbox.spec import MountSpec, RunSpec

    s, st = ctx.session, ctx.state
    env_map = dict(st.env)
    # declared ARGs reach RUN's environment (the later of ENV and ARG wins); proxy args do too, undeclared
    run_env = st.expansion_env()
    for k, v in s.opts.build_args.items():
        if k in PROXY_ARGS:
            # BuildKit's proxy env: both spellings reach the command
            for name in (k.upper(), k.lower()):
                run_env.setdefault(name, v)
    argv = run_argv(st, cmd)
    privileged = _privileged(ctx, cmd)
    network = cmd.network or s.opts.network
    if network == "default":
        network = s.opts.network
    mounts_raw = cmd.expanded_mounts(s.lex, st.expansion_env()) if cmd.mounts else ()
    mount_keys: list[Any] = []
    specs: list[MountSpec] = []
    script = _shebang_script(s, cmd)
    if script is not None:
        host, target = script
        argv = [target]
        specs.append(MountSpec(kind="bind", target=target, source=host, readonly=True))
    secret_env: dict[str, str] = {}  # values stay out of cache keys and history
    for m in mounts_raw:
        spec, mount_key = _mount_spec(ctx, m)
        mount_keys.append(mount_key)
        if spec is None:
            continue
        if m.type == "secret" and m.env:
            assert spec.source is not None
            secret_env[m.env] = Path(spec.source).read_text()
            if not m.target:
                continue
        if spec.kind == "ssh":
            secret_env.setdefault("SSH_AUTH_SOCK", spec.target)  # as BuildKit: the first agent socket
        specs.append(spec)
    args_shown = [f"{k}={v}" for k, v in st.args.items() if k not in env_map or k in st.arg_wins]
    prefix = f"|{len(args_shown)} {' '.join(args_shown)} " if args_shown else ""
    created_by = f"RUN {prefix}{' '.join(argv)} # buildkit"
    key = chain_next(
        st.chain,
        {
            "run": argv,
            "env": sorted(f"{k}={v}" for k, v in run_env.items()),
            "user": st.c.get("User") or "",
            "workdir": st.workdir,
            "network": network,
            "mounts": mount_keys,
            "heredocs": [h.content for h in cmd.heredocs],
            **({"security": "insecure"} if privileged else {}),
        },
    )

    def make() -> tuple[Layer, list[LayerMember] | None] | None:
        runner = _runner(s)
        try:
            spec = RunSpec(
                argv=argv,
                env=[f"{k}={v}" for k, v in {**run_env, **secret_env}.items()],
                user=str(st.c.get("User") or ""),
                workdir=st.workdir,
                network=network,
                mounts=tuple(specs),
                privileged=privileged,
            )
        except UsageError as e:
            raise BuildError(e.message, hint=e.hint) from None

        def on_output(line: str | bytes) -> None:
            s.reporter.step_output(ctx.step, line.encode() if isinstance(line, str) else line)

        layer = runner.run(s.store, list(st.layers), spec, on_output)
        if layer is None:
            return None
        return layer, None

    return ctx.layer_step(created_by, key, make)


def _privileged(ctx: StepContext, cmd: Run) -> bool:
    """``RUN --security=insecure``: allowed only with the ``security.insecure`` entitlement, as BuildKit."""
    if cmd.security is None:
        return False
    mode = ctx.session.lex.process_word(cmd.security, ctx.state.expansion_env())
    if mode == "sandbox":
        return False
    if mode != "insecure":
        raise BuildError(f"unsupported security mode {mode!r} for RUN", hint="use --security=sandbox or insecure")
    if INSECURE_ENTITLEMENT not in ctx.session.opts.allow:
        raise BuildError(
            f"RUN --security=insecure needs the {INSECURE_ENTITLEMENT} entitlement, which this build does not grant",
            hint=f"pass --allow {INSECURE_ENTITLEMENT} to build (the step then runs with every capability and "
            "no seccomp filter): only for Dockerfiles you trust",
        )
    return True


def _mount_spec(ctx: StepContext, m: Mount) -> tuple[MountSpec | None, list[Any]]:
    """The sandbox mount for one expanded ``--mount`` and what of it enters the cache key (never a secret)."""
    from idpbuilder.sandbox.spec import MountSpec

    s, st = ctx.session, ctx.state
    kind = m.type
    target = m.target or ""
    if target and not target.startswith("/"):
        target = clean(posixpath.join(st.workdir, target))
    if kind == "bind":
        src_rel = m.source or "/"
        key: list[Any]
        if m.from_:
            j = ctx.stages.graph.index_of(m.from_, before=st.index)
            if j is not None and j < st.index:
                layers = ctx.stages.stage_result(j).layers
                ident = "stage:" + ",".join(str(layer.diff_id) for layer in layers)
            else:
                img = ctx.stages.load_image(m.from_, s.opts.platform)
                layers = img.layers
                ident = "image:" + str(img.manifest_descriptor.digest)
            root = _extract_once(s, layers)
            host = Path(root) / resolve_path(_HostTree(root), src_rel).lstrip("/")
            key = ["bind", ident, src_rel, target, m.readonly]
        else:
            ctxfs = s.context()
            resolved = resolve_path(ctxfs, src_rel)
            if ctxfs.lstat(resolved) is None:
                raise BuildError(f"{ctxfs.describe(src_rel)} not found (RUN --mount source)")
            host = Path(ctxfs.host_path(resolved))
            key = [
                "bind",
                "context",
                src_rel,
                target,
                m.readonly,
                source_digest(ctxfs, [resolved], hashes=s.hashes),
            ]
        return MountSpec(kind="bind", target=target, source=host, readonly=m.readonly), key
    if kind == "cache":
        spec = MountSpec(
            kind="cache",
            target=target,
            id=m.id or "",
            sharing=m.sharing or "shared",
            uid=m.uid,
            gid=m.gid,
            mode=m.mode,
            readonly=m.readonly,
        )
        return spec, ["cache", m.id or target, target]
    if kind == "tmpfs":
        return MountSpec(kind="tmpfs", target=target, size=m.size, readonly=False), ["tmpfs", target]
    if kind == "secret":
        sid = m.id or posixpath.basename(target)
        src = s.opts.secrets.get(sid)
        if src is None:
            if m.required:
                raise BuildError(f"secret {sid} not found", hint=f"pass --secret id={sid},src=FILE")
            return None, ["secret-missing", sid]
        path = Path(src)
        return MountSpec(
            kind="secret", target=target, id=sid, source=path, uid=m.uid, gid=m.gid, mode=m.mode
        ), [
            "secret",
            sid,
            target,
        ]
    if kind == "ssh":
        sid = m.id or "default"
        sock = s.opts.ssh.get(sid)
        if sock is None:
            if m.required:
                raise BuildError(
                    f"no SSH agent socket for RUN --mount=type=ssh (id {sid})",
                    hint=f"pass --ssh {sid} (uses $SSH_AUTH_SOCK) or --ssh {sid}=/path/to/agent.sock",
                )
            return None, ["ssh-missing", sid]
        target = target or SSH_AGENT_TARGET
        return MountSpec(kind="ssh", target=target, source=Path(sock), readonly=False), ["ssh", sid, target]
    raise BuildError(f"unsupported mount type {kind!r}", hint="use bind, cache, tmpfs, secret or ssh")


def _extract_once(s: BuildSession, layers: list[Layer]) -> str:
    """A host directory holding ``layers`` extracted (once per build for the same layers)."""
    from idpbuilder.sandbox.extract import extract_layers

    k = ",".join(str(layer.diff_id) for layer in layers)
    if k not in s.mount_roots:
        import tempfile

        d = tempfile.mkdtemp(prefix="mnt-", dir=s.scratch_dir())
        extract_layers(s.store, layers, Path(d))
        s.mount_roots[k] = d
    return s.mount_roots[k]


class _HostTree:
    """A host directory as a minimal view for symlink resolution."""

    def __init__(self, root: str) -> None:
        self.root = root

    def lstat(self, path: str) -> Meta | None:
        try:
            st = os.lstat(self.root + path)
        except OSError:
            return None
        link = os.readlink(self.root + path) if os.path.islink(self.root + path) else ""
        return _meta_from_stat(st, link)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self.root + path))

    def open(self, path: str) -> BinaryIO:
        return open(self.root + path, "rb")

    def describe(self, path: str) -> str:
        return path
