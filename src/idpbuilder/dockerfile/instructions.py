"""Typed Dockerfile instructions: parser ``Node``s -> frozen dataclasses with flags parsed and validated.

Mirrors moby/buildkit ``frontend/dockerfile/instructions`` (parse.go, bflag.go, runmount.go): one parser per
instruction keyword (``_PARSERS``), each declaring its flags; the model lives in ``model``, flag parsing in
``flags`` and ``RUN --mount`` in ``mounts`` (all re-exported here).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable

from idpbuilder.dockerfile.flags import (
    Flags,
    InstructionError,
    did_you_mean,
    parse_chmod,
    parse_duration,
    suggest,
)
from idpbuilder.dockerfile.lexer import go_quote
from idpbuilder.dockerfile.model import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from idpbuilder.dockerfile.mounts import Mount, parse_mount
from idpbuilder.dockerfile.parser import KNOWN_INSTRUCTIONS, Heredoc, Node, parse, parse_heredoc
from idpbuilder.errors import DockerfileParseError

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Copy",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "Label",
    "Maintainer",
    "Mount",
    "Onbuild",
    "Run",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "parse_chmod",
    "parse_dockerfile",
    "parse_duration",
    "parse_instruction",
    "parse_mount",
    "suggest",
]


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _args_exact(node: Node, kw: str) -> str:
    if len(node.args) != 1:
        raise InstructionError(f"{kw} requires exactly one argument")
    return node.args[0]


def _handle_json_args(node: Node) -> tuple[str, ...]:
    return node.args


def _parse_sources_and_dest(node: Node, kw: str) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    if len(node.args) < 2:
        raise InstructionError(
            f"{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    srcs, dest = node.args[:-1], node.args[-1]
    if not node.json and _safe_heredoc(dest) is not None:
        raise InstructionError(f"{kw} cannot accept a heredoc as a destination")
    lookup = {h.name: h for h in node.heredocs}
    paths: list[str] = []
    docs: list[Heredoc] = []
    for src in srcs:
        h = _safe_heredoc(src) if not node.json else None
        if h is not None:
            body = lookup.get(h.name)
            docs.append(
                Heredoc(
                    name=h.name, content=body.content if body else "", expand=h.expand, chomp=h.chomp, fd=h.fd
                )
            )
        else:
            paths.append(src)
    return tuple(paths), dest, tuple(docs)


def _safe_heredoc(word: str) -> Heredoc | None:
    try:
        return parse_heredoc(word)
    except Exception:
        return None


_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*\Z")
_NETWORK_MODES = ("default", "none", "host")
_SECURITY_MODES = ("sandbox", "insecure")


def _interval(flags: Flags, name: str) -> int:
    raw = flags.string(name)
    if not raw:
        return 0
    try:
        d = parse_duration(raw)
    except ValueError as e:
        raise InstructionError(str(e)) from None
    if d == 0:
        return 0
    if d < 1_000_000:
        raise InstructionError(f'Interval "{name}" cannot be less than 1ms')
    return d


# ---------------------------------------------------------------------------------------------------------------
# one parser per keyword: (node, its flags) -> instruction; each declares its flags before parsing them


def _parse_from(node: Node, flags: Flags) -> Instruction:
    flags.add_string("platform")
    flags.parse()
    args = node.args
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise InstructionError(
                f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments", hint="FROM image [AS name]")
    return From(node=node, image=args[0], name=name, platform=flags.string("platform"))


def _parse_arg(node: Node, flags: Flags) -> Instruction:
    if not node.args:
        raise InstructionError("ARG requires at least one argument")
    flags.add_bool("required")
    flags.parse()
    items: list[tuple[str, str | None]] = []
    for a in node.args:
        if "=" in a:
            k, v = a.split("=", 1)
            if not k:
                raise InstructionError("ARG names can not be blank")
            items.append((k, v))
        else:
            items.append((a, None))
    return Arg(node=node, items=tuple(items), required="required" in flags.used)


def _pairs(node: Node, flags: Flags) -> tuple[tuple[str, str], ...]:
    KW = node.keyword.upper()
    flags.parse()
    if not node.args:
        raise InstructionError(f"{KW} requires at least one argument")
    pairs = tuple((node.args[j], node.args[j + 1]) for j in range(0, len(node.args), 2))
    if any(not k for k, _ in pairs):
        raise InstructionError(f"{KW} names can not be blank")
    return pairs


def _parse_env(node: Node, flags: Flags) -> Instruction:
    return Env(node=node, pairs=_pairs(node, flags))


def _parse_label(node: Node, flags: Flags) -> Instruction:
    return Label(node=node, pairs=_pairs(node, flags))


def _parse_maintainer(node: Node, flags: Flags) -> Instruction:
    m = _args_exact(node, "MAINTAINER")
    flags.parse()
    return Maintainer(node=node, name=m)


def _copy_flags(node: Node, flags: Flags) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    """The flags COPY and ADD share (``--from`` is COPY's), parsed with the sources and destination."""
    KW = node.keyword.upper()
    flags.add_string("chown")
    flags.add_string("chmod")
    flags.add_bool("link")
    flags.add_strings("exclude")
    flags.add_bool("parents")
    if node.keyword == "copy":
        flags.add_string("from")
    else:
        flags.add_bool("keep-git-dir")
        flags.add_string("checksum")
        flags.add_bool("unpack")
    if len(node.args) < 2:
        raise InstructionError(
            f"{KW} requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    flags.parse()
    return _parse_sources_and_dest(node, KW)


def _parse_copy(node: Node, flags: Flags) -> Instruction:
    sources, dest, docs = _copy_flags(node, flags)
    return Copy(
        node=node,
        sources=sources,
        dest=dest,
        heredocs=docs,
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.bool("link"),
        exclude=flags.strings("exclude"),
        parents=flags.bool("parents"),
    )


def _parse_add(node: Node, flags: Flags) -> Instruction:
    sources, dest, docs = _copy_flags(node, flags)
    return Add(
        node=node,
        sources=sources,
        dest=dest,
        heredocs=docs,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.bool("link"),
        exclude=flags.strings("exclude"),
        parents=flags.bool("parents"),
        checksum=flags.string("checksum"),
        keep_git_dir=flags.bool("keep-git-dir"),
        unpack=flags.bool("unpack") if "unpack" in flags.used else None,
    )


def _parse_onbuild(node: Node, flags: Flags) -> Instruction:
    if node.sub is None:
        raise InstructionError("ONBUILD requires at least one argument")
    flags.parse()
    trigger = node.sub.keyword.upper()
    if trigger == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for h in node.heredocs:
        expression += "\n" + h.content + h.name
    return Onbuild(node=node, expression=expression)


_PATH_MAX = 4096


def _parse_workdir(node: Node, flags: Flags) -> Instruction:
    path = _args_exact(node, "WORKDIR")
    flags.parse()
    if len(path.encode("utf-8", "surrogateescape")) >= _PATH_MAX:
        # the kernel's limit: docker fails the same WORKDIR with "file name too long"
        raise InstructionError(
            f"WORKDIR path is longer than {_PATH_MAX - 1} bytes, the Linux limit (PATH_MAX)"
        )
    return Workdir(node=node, path=path)


def _parse_run(node: Node, flags: Flags) -> Instruction:
    flags.add_strings("mount")
    flags.add_string("network")
    flags.add_string("security")
    flags.parse()
    if not node.args and not node.heredocs:
        raise InstructionError("RUN requires at least one argument")
    mounts = tuple(parse_mount(s) for s in flags.strings("mount"))
    network = flags.string("network")
    if network is not None and "$" not in network and network not in _NETWORK_MODES:
        raise InstructionError(
            f"unsupported network mode {go_quote(network)}", hint="use default, none or host"
        )
    security = flags.string("security")
    if security is not None and "$" not in security and security not in _SECURITY_MODES:
        raise InstructionError(
            f"unsupported security mode {go_quote(security)}", hint="use sandbox or insecure"
        )
    return Run(
        node=node,
        args=node.args,
        json=node.json,
        heredocs=node.heredocs,
        mounts=mounts,
        network=network,
        security=security,
    )


def _parse_cmd(node: Node, flags: Flags) -> Instruction:
    flags.parse()
    return Cmd(node=node, args=_handle_json_args(node), json=node.json)


def _parse_entrypoint(node: Node, flags: Flags) -> Instruction:
    flags.parse()
    return Entrypoint(node=node, args=_handle_json_args(node), json=node.json)


def _parse_healthcheck(node: Node, flags: Flags) -> Instruction:
    if not node.args:
        raise InstructionError(
            "HEALTHCHECK requires at least one argument", hint="HEALTHCHECK [flags] CMD ..."
        )
    typ = node.args[0].upper()
    rest = node.args[1:]
    if typ == "NONE":
        if rest:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        flags.parse()
        return Healthcheck(node=node, test=None)
    for f in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add_string(f)
    flags.parse()
    if typ != "CMD":
        raise InstructionError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not rest:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if node.json else ("CMD-SHELL", *rest)
    retries = 0
    raw_retries = flags.string("retries")
    if raw_retries:
        if not re.fullmatch(r"[+-]?[0-9]+", raw_retries):
            raise InstructionError(f'strconv.ParseInt: parsing "{raw_retries}": invalid syntax')
        retries = int(raw_retries)
        if retries < 0:
            raise InstructionError(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        node=node,
        test=test,
        interval=_interval(flags, "interval"),
        timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        start_interval=_interval(flags, "start-interval"),
        retries=retries,
    )


def _parse_expose(node: Node, flags: Flags) -> Instruction:
    if not node.args:
        raise InstructionError("EXPOSE requires at least one argument")
    flags.parse()
    return Expose(node=node, ports=tuple(sorted(node.args)))


def _parse_user(node: Node, flags: Flags) -> Instruction:
    user = _args_exact(node, "USER")
    flags.parse()
    return User(node=node, user=user)


def _parse_volume(node: Node, flags: Flags) -> Instruction:
    if not node.args:
        raise InstructionError("VOLUME requires at least one argument")
    flags.parse()
    vols = tuple(v.strip() for v in node.args)
    if any(v == "" for v in vols):
        raise InstructionError("VOLUME specified can not be an empty string")
    return Volume(node=node, paths=vols)


def _parse_stopsignal(node: Node, flags: Flags) -> Instruction:
    sig = _args_exact(node, "STOPSIGNAL")
    flags.parse()
    return StopSignal(node=node, signal=sig)


def _parse_shell(node: Node, flags: Flags) -> Instruction:
    flags.parse()
    if not node.args:
        raise InstructionError("SHELL requires at least one argument")
    if not node.json:
        raise InstructionError(
            "SHELL requires the arguments to be in JSON form", hint='SHELL ["/bin/bash", "-c"]'
        )
    return Shell(node=node, argv=node.args)


_PARSERS: dict[str, Callable[[Node, Flags], Instruction]] = {
    "from": _parse_from,
    "arg": _parse_arg,
    "env": _parse_env,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "copy": _parse_copy,
    "add": _parse_add,
    "onbuild": _parse_onbuild,
    "workdir": _parse_workdir,
    "run": _parse_run,
    "cmd": _parse_cmd,
    "entrypoint": _parse_entrypoint,
    "healthcheck": _parse_healthcheck,
    "expose": _parse_expose,
    "user": _parse_user,
    "volume": _parse_volume,
    "stopsignal": _parse_stopsignal,
    "shell": _parse_shell,
}


def _build(node: Node) -> Instruction:
    kw = node.keyword
    parser = _PARSERS.get(kw)
    if parser is None:
        KW = kw.upper()
        names = sorted(k.upper() for k in KNOWN_INSTRUCTIONS)
        raise InstructionError(
            f"unknown instruction: {node.original.split()[0] if node.original.split() else KW}"
            f"{did_you_mean(KW, names)}"
        )
    return parser(node, Flags(kw, node.flags))


def parse_instruction(node: Node, *, filename: str = "Dockerfile") -> Instruction:
    """Type and validate one node; DockerfileParseError naming file, line and instruction on bad input."""
    try:
        return _build(node)
    except InstructionError as e:
        msg = (
            e.message
            if e.message.startswith("unknown instruction")
            else f"{node.keyword.upper()}: {e.message}"
        )
        raise DockerfileParseError(msg, file=filename, line=node.start_line, hint=e.hint) from None


def parse_dockerfile(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and validate a whole Dockerfile into global ARGs and stages."""
    result = parse(text, filename=filename)
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    current: From | None = None
    commands: list[Instruction] = []

    def close() -> None:
        if current is not None:
            stages.append(
                Stage(
                    name=current.name,
                    base=current.image,
                    platform=current.platform,
                    index=len(stages),
                    commands=tuple(commands),
                    node=current.node,
                )
            )

    for node in result.nodes:
        ins = parse_instruction(node, filename=filename)
        if isinstance(ins, From):
            close()
            current = ins
            commands = []
            continue
        if current is None:
            if isinstance(ins, Arg):
                meta_args.append(ins)
                continue
            raise DockerfileParseError(
                f"{node.keyword.upper()}: no build stage in current context",
                file=filename,
                line=node.start_line,
                hint="only ARG instructions may come before the first FROM",
            )
        commands.append(ins)
    close()
    if not stages:
        raise DockerfileParseError(
            "no FROM instruction: dockerfile contains no stages to build",
            file=filename,
            hint="start the build stage with FROM <image> (or FROM scratch)",
        )
    names = collections.Counter(s.name for s in stages if s.name is not None)
    for st in stages:
        if st.name is not None and names[st.name] > 1:
            dup = [s for s in stages if s.name == st.name][1]
            raise DockerfileParseError(
                f"FROM: duplicate stage name {go_quote(st.name)}", file=filename, line=dup.node.start_line
            )
    return Dockerfile(
        meta_args=tuple(meta_args),
        stages=tuple(stages),
        escape=result.escape,
        warnings=result.warnings,
        filename=filename,
    )
