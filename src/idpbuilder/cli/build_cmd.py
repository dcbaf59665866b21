"""``idpbuilder build``: run a Dockerfile build into the local store (and optionally push every tag).

Step lines go to stderr (``[2/6] COPY app.sh /app.sh``, ``CACHED``, durations); stdout gets the
image id (``sha256:<config digest>``) with ``-q``, else nothing but the final summary on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from idpbuilder.cli.build_progress import make_step_reporter
from idpbuilder.cli.options import registry_flags, registry_options
from idpbuilder.cli.progress import PROGRESS_MODES
from idpbuilder.errors import Interrupted, NotFoundError, RunFailedError, UsageError

if TYPE_CHECKING:
    from idpbuilder.builder.outputs import OutputSpec
    from idpbuilder.builder.remote_cache import CacheSpec
    from idpbuilder.cli.main import AppContext
    from idpbuilder.cluster.session import RegistryOptions
    from idpbuilder.oci import Descriptor, Platform
    from idpbuilder.store.layout import Store

__all__ = ["command", "parse_build_args", "parse_secret"]


def parse_build_args(values: tuple[str, ...], environ: dict[str, str] | None = None) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` takes its value from the environment (skipped when unset, as docker)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid --build-arg {v!r}", hint="use --build-arg NAME=VALUE or NAME")
        if sep:
            out[k] = val
        elif k in env:
            out[k] = env[k]
    return out


def _parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid --label {v!r}", hint="use --label KEY=VALUE")
        out[k] = val
    return out


def parse_secret(text: str, write_env_secret: Callable[[str, bytes], Path]) -> tuple[str, Path]:
    """``id=x,src=FILE`` or ``id=x,env=VAR``; an env value is staged by ``write_env_secret(id, value)``
    (a 0400 file on the build's private tmpfs), never written to the store."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"invalid --secret {text!r}", hint="use id=NAME,src=FILE or id=NAME,env=VAR")
        fields[k.strip().lower()] = v
    sid = fields.get("id")
    src = fields.get("src") or fields.get("source")
    envname = fields.get("env")
    if not sid:
        sid = Path(src).name if src else envname
    if not sid:
        raise UsageError(f"--secret {text!r} needs an id", hint="use id=NAME,src=FILE")
    if src:
        p = Path(src).expanduser()
        if not p.is_file():
            raise NotFoundError(f"secret file {src!r} not found", hint="check the src= path of --secret")
        return sid, p.absolute()
    var = envname or sid
    if var not in os.environ:
        raise UsageError(f"secret environment variable {var} is not set", hint="export it, or use src=FILE")
    return sid, write_env_secret(sid, os.environ[var].encode())


def _parse_ssh(text: str) -> tuple[str, Path]:
    """``default`` (``$SSH_AUTH_SOCK``) or ``ID=SOCKET``: an agent socket (key files are not supported)."""
    sid, sep, path = text.partition("=")
    sid = sid.strip()
    if not sid:
        raise UsageError(f"invalid --ssh {text!r}", hint="use --ssh default or --ssh ID=/path/to/agent.sock")
    if not sep:
        path = os.environ.get("SSH_AUTH_SOCK", "")
        if not path:
            raise UsageError(
                f"--ssh {sid}: SSH_AUTH_SOCK is not set", hint="start an agent (eval $(ssh-agent); ssh-add)"
            )
    if "," in path:
        raise UsageError(f"--ssh {text!r}: one agent socket per id", hint="use --ssh ID=/path/to/agent.sock")
    p = Path(path).expanduser().absolute()
    import stat

    try:
        is_sock = stat.S_ISSOCK(p.stat().st_mode)
    except OSError:
        raise NotFoundError(
            f"--ssh {sid}: {str(p)!r} not found", hint="give the path of a running agent's socket"
        ) from None
    if not is_sock:
        raise UsageError(
            f"--ssh {sid}: {str(p)!r} is not a socket (key files are not supported)",
            hint="load the key into an agent (ssh-add KEY) and pass the agent's socket",
        )
    return sid, p


def _read_stdin_text() -> str:
    """The Dockerfile of ``-f -``."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            "the Dockerfile on stdin is not UTF-8 text", hint="pipe a Dockerfile into -f -"
        ) from None
    if not text.strip():
        raise UsageError("the Dockerfile on stdin is empty", hint="pipe a Dockerfile into `build -f - DIR`")
    return text


def _base_image_puller(
    home: Path, ropts: RegistryOptions
) -> Callable[[Store, str, Platform | None], Descriptor]:
    """The builder's FROM puller; the registry code is imported when a base image is really pulled."""

    def pull(store: Store, ref: str, platform: Platform | None) -> Descriptor:
        from idpbuilder.cluster.transfer import base_image_puller

        return base_image_puller(home, ropts)(store, ref, platform)

    return pull


def _connector(home: Path, ropts: Any) -> Any:
    """Opens the registry of a cache ref (credentials, TLS, cluster defaults as push/pull)."""
    from idpbuilder.cluster.session import open_registry
    from idpbuilder.reference import Reference

    def connect(ref: str, push: bool) -> Any:
        return open_registry(home, ropts, Reference.parse(ref), push=push)

    return connect


@click.command("build")
@click.argument("context_arg", metavar="[CONTEXT]", required=False)
@click.option(
    "--context",
    "context_opt",
    default=None,
    help="Build context directory (same as CONTEXT; - reads a context tar or a Dockerfile from stdin).",
)
@click.option(
    "-f",
    "--file",
    "--dockerfile",
    "dockerfile",
    default=None,
    help="Dockerfile [default: CONTEXT/Dockerfile]; - reads it from stdin.",
)
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="K=V", help="Build argument (K alone: from env)."
)
@click.option("--target", default=None, help="Build this stage (and the stages it needs).")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Add an image label.")
@click.option("--platform", default=None, help="Target platform (os/arch[/variant]).")
@click.option("--no-cache", is_flag=True, default=False, help="Do not use the build cache.")
@click.option(
    "--network",
    type=click.Choice(["host", "none"]),
    default="host",
    show_default=True,
    help="Network for RUN.",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    type=click.Choice(["security.insecure", "network.host"]),
    help="Grant an entitlement, as buildx: security.insecure lets RUN --security=insecure run privileged "
    "(network.host is always granted).",
)
@click.option(
    "--secret", "secrets", multiple=True, metavar="id=x,src=FILE|env=VAR", help="Secret for RUN --mount."
)
@click.option("-q", "--quiet", is_flag=True, default=False, help="Print only the image id.")
@click.option(
    "--iidfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the image id to this file.",
)
@click.option(
    "--progress",
    type=click.Choice(PROGRESS_MODES),
    default="auto",
    show_default=True,
    help="Progress display on stderr.",
)
@click.option("--push", "do_push", is_flag=True, default=False, help="Push every tag after the build.")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    metavar="type=local|tar|oci|docker,dest=PATH",
    help="Also write the result: the filesystem (local, tar) or the image (oci, docker); -o DIR = type=local.",
)
@click.option("--pull", is_flag=True, default=False, help="Always pull base images, even when in the store.")
@click.option(
    "--cache-to",
    "cache_to",
    multiple=True,
    metavar="type=registry,ref=REF[,mode=max]|type=local,dest=DIR",
    help="Export the build cache (BuildKit cache manifest).",
)
@click.option(
    "--cache-from",
    "cache_from",
    multiple=True,
    metavar="type=registry,ref=REF|type=local,src=DIR",
    help="Import a build cache exported with --cache-to.",
)
@click.option(
    "--build-context",
    "build_contexts",
    multiple=True,
    metavar="NAME=DIR|NAME=docker-image://REF",
    help="Named context for FROM NAME and COPY --from=NAME.",
)
@click.option(
    "--ssh",
    "ssh",
    multiple=True,
    metavar="default|ID=SOCKET",
    help="SSH agent socket for RUN --mount=type=ssh (default: $SSH_AUTH_SOCK).",
)
@registry_flags("build")
@click.pass_obj
def command(app: AppContext, /, **kw: Any) -> None:
    """Build an image from a Dockerfile into the local store (no daemon needed)."""
    # only what every build needs is imported here: outputs, remote caches, build contexts and pushes
    # import their modules when asked for (a cached build stays quick to start)
    from idpbuilder.builder import Builder, BuildOptions
    from idpbuilder.oci import Platform
    from idpbuilder.reference import Reference
    from idpbuilder.store.layout import Store

    ctx_arg, ctx_opt = kw["context_arg"], kw["context_opt"]
    if ctx_arg and ctx_opt and Path(ctx_arg) != Path(ctx_opt):
        raise UsageError(
            "give the build context once (CONTEXT or --context)", hint="drop one of CONTEXT and --context"
        )
    stdin_context = (ctx_opt or ctx_arg) == "-"
    if stdin_context and kw["dockerfile"] == "-":
        raise UsageError(
            "stdin cannot be both the context and the Dockerfile (build - with -f -)",
            hint="use `build - < Dockerfile`, `build - < context.tar` or `build -f - DIR < Dockerfile`",
        )
    context = Path(ctx_opt or ctx_arg or ".").expanduser()
    from idpbuilder.builder import default_dockerfile

    # a missing context or Dockerfile is the builder's to report; a directory given as the file is a usage error
    dockerfile = Path(kw["dockerfile"]).expanduser() if kw["dockerfile"] else default_dockerfile(context)
    if kw["dockerfile"] != "-" and not stdin_context and dockerfile.is_dir():
        raise UsageError(
            f"Dockerfile {str(dockerfile)!r} is a directory",
            hint="give -f/--file the path of the Dockerfile itself",
        )
    for t in kw["tags"]:
        Reference.parse(t)
    ropts = registry_options(kw)
    if kw["do_push"] and not kw["tags"]:
        raise UsageError(
            "--push needs at least one -t/--tag", hint="name the image with -t REGISTRY/REPO:TAG"
        )
    iidfile: Path | None = kw["iidfile"]
    if iidfile is not None and not iidfile.absolute().parent.is_dir():
        raise UsageError(
            f"cannot write --iidfile {str(iidfile)!r}: its directory does not exist",
            hint="create the directory first, or give another path",
        )
    platform = Platform.parse(kw["platform"]) if kw["platform"] else None
    outputs: list[OutputSpec] = []
    if kw["outputs"]:
        from idpbuilder.builder.outputs import parse_output

        outputs = [parse_output(o) for o in kw["outputs"]]
    cache_to: list[CacheSpec] = []
    cache_from: list[CacheSpec] = []
    if kw["cache_to"] or kw["cache_from"]:
        from idpbuilder.builder.remote_cache import parse_cache_spec

        cache_to = [parse_cache_spec(c, export=True) for c in kw["cache_to"]]
        cache_from = [parse_cache_spec(c, export=False) for c in kw["cache_from"]]
    named: dict[str, str] = {}
    if kw["build_contexts"]:
        from idpbuilder.builder.inputs import parse_build_context

        named = dict(parse_build_context(b) for b in kw["build_contexts"])
    ssh = dict(_parse_ssh(v) for v in kw["ssh"])
    to_stdout = any(o.dest == "-" for o in outputs)
    if to_stdout and sys.stdout.isatty():
        raise UsageError(
            "refusing to write a tar to the terminal (--output dest=-)", hint="redirect stdout to a file"
        )
    store = Store.open(app.home)
    from idpbuilder.sandbox.state import RunState

    run_state = RunState.acquire(store)
    stdin_dir: Path | None = None
    try:

        def env_secret(sid: str, value: bytes) -> Path:
            return run_state.write_secret(
                Path(sid).name or "secret", value, uid=os.geteuid(), gid=os.getegid()
            )

        dockerfile_text: str | None = None
        if kw["dockerfile"] == "-":
            dockerfile_text = _read_stdin_text()
            dockerfile = context / "Dockerfile"
        elif stdin_context:
            import tempfile

            from idpbuilder.builder.inputs import read_stdin_input
            from idpbuilder.owner import stamped

            stdin_dir = Path(tempfile.mkdtemp(prefix=stamped("stdin-"), dir=store.path_for("build", "tmp")))
            got = read_stdin_input(sys.stdin.buffer, stdin_dir / "context")
            if got.context is None:  # a Dockerfile and no context, as `docker build - < Dockerfile`
                context = stdin_dir / "empty"
                context.mkdir(parents=True, exist_ok=True)
                dockerfile_text = got.dockerfile_text
                dockerfile = context / "Dockerfile"
            else:
                context = got.context
                dockerfile = context / kw["dockerfile"] if kw["dockerfile"] else default_dockerfile(context)
        secrets = dict(parse_secret(s, env_secret) for s in kw["secrets"])
        epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        opts = BuildOptions(
            context=context.absolute(),
            dockerfile=dockerfile.absolute(),
            dockerfile_text=dockerfile_text,
            pull=kw["pull"],
            build_contexts=named,
            ssh=ssh,
            tags=tuple(kw["tags"]),
            build_args=parse_build_args(kw["build_args"]),
            target=kw["target"],
            labels=_parse_labels(kw["labels"]),
            platform=platform,
            no_cache=kw["no_cache"],
            network=kw["network"],
            allow=frozenset(kw["allow"]),
            secrets=secrets,
            source_date_epoch=int(epoch_text) if epoch_text.isdigit() else None,
        )
        mode = "quiet" if kw["quiet"] else kw["progress"]
        reporter = make_step_reporter(mode, color=app.color)
        t0 = time.monotonic()
        failed, canceled = True, False
        connect = (
            _connector(app.home, ropts) if any(c.type == "registry" for c in cache_to + cache_from) else None
        )
        try:
            for spec in cache_from:
                from idpbuilder.builder.remote_cache import import_cache

                n = import_cache(store, spec, connect)
                if n and not kw["quiet"]:
                    sys.stderr.write(f"Imported {n} build cache records from {spec.describe()}\n")
            result = Builder(store, opts, reporter=reporter, pull=_base_image_puller(app.home, ropts)).build()
            failed = False
        except (KeyboardInterrupt, Interrupted):
            canceled = True
            raise
        except RunFailedError as e:
            if reporter.mode == "quiet" and e.output_tail:
                # the output was not streamed: show its tail above the error, as docker build -q does
                sys.stderr.write(f"--- last lines of the RUN output ---\n{e.output_tail.rstrip()}\n---\n")
            raise
        finally:
            reporter.close(failed=failed, canceled=canceled)
        for o in outputs:
            from idpbuilder.builder.outputs import export_output

            export_output(store, o, layers=result.layers, image=str(result.image_id), names=result.tags)
            if o.dest != "-" and not kw["quiet"]:
                sys.stderr.write(f"Wrote {o.type} output to {o.dest}\n")
        for spec in cache_to:
            from idpbuilder.builder.remote_cache import export_cache

            where = export_cache(store, spec, result, connect)
            if not kw["quiet"]:
                sys.stderr.write(f"Exported build cache ({spec.mode}) to {where}\n")
    finally:
        run_state.release()
        if stdin_dir is not None:
            import shutil

            shutil.rmtree(stdin_dir, ignore_errors=True)
    image_id = str(result.image_id)
    if iidfile is not None:
        try:
            iidfile.write_text(image_id)
        except OSError as e:
            raise UsageError(
                f"cannot write --iidfile {str(iidfile)!r}: {e.strerror or e}",
                hint=f"the image was built: {image_id}",
            ) from None
    if kw["quiet"] and not to_stdout:
        click.echo(image_id)
    else:
        took = time.monotonic() - t0
        sys.stderr.write(
            f"Built {image_id[:19]} in {took:.1f}s ({result.cached}/{result.steps} steps cached)\n"
        )
        for t in result.tags:
            sys.stderr.write(f"Tagged {t}\n")
    if kw["do_push"]:
        from idpbuilder.cli.progress import reporting
        from idpbuilder.cluster.transfer import push_from

        for t in result.tags:
            with reporting("quiet" if kw["quiet"] else kw["progress"], verb="pushed") as rep:
                pushed = push_from(app.home, t, None, ropts, reporter=rep)
            click.echo(pushed.pinned)
