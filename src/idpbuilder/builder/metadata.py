"""The instructions that change the image config only (ARG, ENV, LABEL, USER, EXPOSE, CMD, ...), and
WORKDIR, which also creates its directory as a layer. Each handler takes the typed instruction and a
``StepContext`` and returns True when its layer came from the cache."""

from __future__ import annotations

import posixpath
import re
from typing import Any

import idpbuilder.builder.config as cfgmod
from idpbuilder.builder.cache import chain_next
from idpbuilder.builder.context import StepContext
from idpbuilder.builder.copy import CopyOptions, LayerPlan
from idpbuilder.builder.fs import clean, resolve_path
from idpbuilder.builder.modes import Owner, resolve_owner
from idpbuilder.builder.rootfs import LayerMember
from idpbuilder.dockerfile import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from idpbuilder.errors import BuildError
from idpbuilder.image import Layer

__all__ = [
    "do_arg",
    "do_cmd",
    "do_entrypoint",
    "do_env",
    "do_expose",
    "do_healthcheck",
    "do_label",
    "do_maintainer",
    "do_onbuild",
    "do_shell",
    "do_stopsignal",
    "do_user",
    "do_volume",
    "do_workdir",
]


# BuildKit's SecretsUsedInArgOrEnv check (dockerfile2llb): these words as a whole "_"-separated part of the
# name, case-insensitively, unless "public" is one too (PUBLIC_KEY is fine)
_SECRET_NAME = re.compile(
    r"(?i)(?:_|^)(?:apikey|auth|credentials?|key|password|pword|passwd|secret|token)(?:_|$)"
)
_PUBLIC_NAME = re.compile(r"(?i)(?:_|^)public(?:_|$)")


def _check_secret_name(ctx: StepContext, instruction: str, name: str, line: int) -> None:
    """Warn, as BuildKit does, when an ARG/ENV name says it holds a secret (the value is never shown)."""
    if _SECRET_NAME.search(name) and not _PUBLIC_NAME.search(name):
        ctx.session.reporter.warning(
            f"SecretsUsedInArgOrEnv: do not use ARG or ENV instructions for sensitive data ({instruction} "
            f'"{name}") ({ctx.session.dockerfile_path.name}:{line}): the value stays in the image config and '
            f"history; pass it with --secret id={name},env={name} and read it in RUN --mount=type=secret,id={name}"
        )


def do_arg(ctx: StepContext, cmd: Arg) -> bool:
    """Declare stage ARGs: a build arg, else the default, else the global ARG's value, else an automatic arg,
    else the value it already has (an earlier ARG of this stage or of the stage it is built on)."""
    s, st = ctx.session, ctx.state
    parts: list[str] = []
    for name, default in cmd.items:
        name = ctx.expand(name)
        _check_secret_name(ctx, "ARG", name, cmd.line)
        value: str | None
        if name in s.opts.build_args:
            value = s.opts.build_args[name]
            s.used_args.add(name)
        elif default is not None:
            value = ctx.expand(default)
        elif name in s.meta_declared:
            value = s.meta_declared[name]
        elif name in st.auto_args:
            value = st.auto_args[name]
        else:
            value = st.args.get(name)  # declared before, here or in the parent stage: kept
        if value is not None:
            st.args[name] = value
            st.arg_wins.add(name)
            parts.append(f"{name}={value}")
        else:
            parts.append(name)
        if cmd.required and value is None:
            raise BuildError(f"ARG {name} is required", hint=f"pass --build-arg {name}=VALUE")
    ctx.meta_step("ARG " + " ".join(parts), {"arg": parts})
    return False


def _pairs(ctx: StepContext, pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Keys and values expanded, all against the environment before the instruction."""
    env = ctx.state.expansion_env()
    lex = ctx.session.lex
    return [(lex.process_word(k, env), lex.process_word(v, env)) for k, v in pairs]


def do_env(ctx: StepContext, cmd: Env) -> bool:
    """Set config.Env entries (in place when the key exists)."""
    pairs = _pairs(ctx, cmd.pairs)
    for k, v in pairs:
        _check_secret_name(ctx, "ENV", k, cmd.line)
        cfgmod.set_env(ctx.state.config, k, v)
        ctx.state.arg_wins.discard(k)
    ctx.meta_step("ENV " + " ".join(f"{k}={v}" for k, v in pairs), {"env": pairs})
    return False


class _StageLabels(dict[str, str]):
    """config.Labels owned by the stage being built."""


def do_label(ctx: StepContext, cmd: Label) -> bool:
    """Add config.Labels."""
    c = ctx.state.c
    pairs = _pairs(ctx, cmd.pairs)
    labels = c.get("Labels")
    if not isinstance(labels, _StageLabels):
        # copied once per stage (the dict may be shared with the base config), then updated in place:
        # copying it for every LABEL made 100,000 LABEL lines quadratic
        labels = _StageLabels(labels or {})
        c["Labels"] = labels
    for k, v in pairs:
        labels[k] = v
    ctx.meta_step("LABEL " + " ".join(f"{k}={v}" for k, v in pairs), {"label": pairs})
    return False


def do_maintainer(ctx: StepContext, cmd: Maintainer) -> bool:
    """Set the image's author."""
    name = ctx.expand(cmd.name)
    ctx.state.config["author"] = name
    ctx.meta_step(f"MAINTAINER {name}", {"maintainer": name})
    return False


def do_user(ctx: StepContext, cmd: User) -> bool:
    """Set config.User."""
    user = ctx.expand(cmd.user)
    ctx.state.c["User"] = user
    ctx.meta_step(f"USER {user}", {"user": user})
    return False


def _expand_port(p: str) -> list[str]:
    num, _, proto = p.partition("/")
    proto = (proto or "tcp").lower()
    hint = "EXPOSE takes port[/tcp|udp|sctp] or a range a-b, ports 0 to 65535"
    if not num:
        raise BuildError(f"invalid port {p!r}", hint=hint)
    lo, sep, hi = num.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()) or int(lo) > 65535 or (sep and int(hi) > 65535):
        raise BuildError(f"invalid containerPort: {num}", hint=hint)
    if not sep:
        return [f"{int(lo)}/{proto}"]
    if int(hi) < int(lo):
        raise BuildError(f"invalid range specified for containerPort: {num}", hint=hint)
    return [f"{n}/{proto}" for n in range(int(lo), int(hi) + 1)]


def do_expose(ctx: StepContext, cmd: Expose) -> bool:
    """Add config.ExposedPorts (ranges expanded, tcp by default)."""
    c = ctx.state.c
    ports: dict[str, dict[str, Any]] = dict(c.get("ExposedPorts") or {})
    added: list[str] = []
    for word in cmd.ports:
        for p in ctx.session.lex.process_words(word, ctx.state.expansion_env()):
            for q in _expand_port(p):
                ports[q] = {}
                added.append(q)
    c["ExposedPorts"] = ports
    ctx.meta_step("EXPOSE " + cfgmod.go_list(sorted(set(added))), {"expose": sorted(set(added))})
    return False


def do_volume(ctx: StepContext, cmd: Volume) -> bool:
    """Add config.Volumes; an empty path is an error."""
    c = ctx.state.c
    vols: dict[str, dict[str, Any]] = dict(c.get("Volumes") or {})
    paths = [ctx.expand(p) for p in cmd.paths]
    for p in paths:
        if not p.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        vols[p] = {}
    c["Volumes"] = vols
    ctx.meta_step("VOLUME " + cfgmod.go_list(paths), {"volume": paths})
    return False


def do_shell(ctx: StepContext, cmd: Shell) -> bool:
    """Set config.Shell (used by later shell-form RUN, CMD and ENTRYPOINT)."""
    ctx.state.c["Shell"] = list(cmd.argv)
    ctx.meta_step("SHELL " + cfgmod.go_list(list(cmd.argv)), {"shell": list(cmd.argv)})
    return False


def do_stopsignal(ctx: StepContext, cmd: StopSignal) -> bool:
    """Set config.StopSignal."""
    sig = ctx.expand(cmd.signal)
    ctx.state.c["StopSignal"] = sig
    ctx.meta_step(f"STOPSIGNAL {sig}", {"stopsignal": sig})
    return False


def do_healthcheck(ctx: StepContext, cmd: Healthcheck) -> bool:
    """Set config.Healthcheck (durations in nanoseconds; unset ones left out)."""
    if cmd.test is None:
        hc: dict[str, Any] = {"Test": ["NONE"]}
    else:
        hc = {"Test": list(cmd.test)}
        for value, key in (
            (cmd.interval, "Interval"),
            (cmd.timeout, "Timeout"),
            (cmd.start_period, "StartPeriod"),
            (cmd.start_interval, "StartInterval"),
            (cmd.retries, "Retries"),
        ):
            if value:
                hc[key] = value
    ctx.state.c["Healthcheck"] = hc
    text = "HEALTHCHECK " + ("NONE" if cmd.test is None else cfgmod.go_quote_list(list(cmd.test)))
    ctx.meta_step(text, {"healthcheck": hc})
    return False


def _argv(ctx: StepContext, cmd: Cmd | Entrypoint) -> list[str]:
    """Exec form as is; shell form under the stage's SHELL."""
    if cmd.json:
        return list(cmd.args)
    return [*ctx.state.shell, " ".join(cmd.args)]


def do_cmd(ctx: StepContext, cmd: Cmd) -> bool:
    """Set config.Cmd."""
    argv = _argv(ctx, cmd)
    ctx.state.c["Cmd"] = argv
    ctx.state.cmd_set = True
    ctx.meta_step("CMD " + cfgmod.go_quote_list(argv), {"cmd": argv})
    return False


def do_entrypoint(ctx: StepContext, cmd: Entrypoint) -> bool:
    """Set config.Entrypoint; an inherited Cmd is dropped unless this stage set one."""
    st = ctx.state
    argv = _argv(ctx, cmd)
    st.c["Entrypoint"] = argv
    if not st.cmd_set:
        st.c["Cmd"] = None
    ctx.meta_step("ENTRYPOINT " + cfgmod.go_quote_list(argv), {"entrypoint": argv, "cmdset": st.cmd_set})
    return False


def do_onbuild(ctx: StepContext, cmd: Onbuild) -> bool:
    """Add a trigger to config.OnBuild (run by builds FROM this image)."""
    triggers = list(ctx.state.c.get("OnBuild") or [])
    triggers.append(cmd.expression)
    ctx.state.c["OnBuild"] = triggers
    ctx.meta_step(f"ONBUILD {cmd.expression}", {"onbuild": cmd.expression})
    return False


def _owner_for_user(ctx: StepContext) -> Owner | None:
    """The uid/gid of config.User in the stage's rootfs; None when unset or unknown there."""
    user = str(ctx.state.c.get("User") or "")
    if not user:
        return None
    fs = ctx.session.rootfs(ctx.state)
    try:
        return resolve_owner(user, lambda p: fs.read_file(resolve_path(fs, p)))
    except BuildError:
        return None


def do_workdir(ctx: StepContext, cmd: Workdir) -> bool:
    """Set config.WorkingDir and create it, owned by USER, when missing.

    As BuildKit: an absolute path is recorded as written (``/tmp/`` keeps its slash), a relative one is
    joined to the current WorkingDir and cleaned.
    """
    s, st = ctx.session, ctx.state
    path = ctx.expand(cmd.path)
    if path.startswith("/"):
        wd = path
    else:
        wd = clean(posixpath.join(st.workdir, path)) if path else st.workdir
    st.c["WorkingDir"] = wd
    key = chain_next(st.chain, {"workdir": wd, "user": st.c.get("User") or ""})

    def make() -> tuple[Layer, list[LayerMember] | None] | None:
        fs = s.rootfs(st)
        owner = _owner_for_user(ctx)
        plan = LayerPlan(fs, CopyOptions(owner=owner, created_mtime=s.mtime_for_created()))
        plan.mkdir_all(wd)
        if not plan.entries:
            return None
        return plan.write(s.store)

    return ctx.layer_step(f"WORKDIR {wd}", key, make)
