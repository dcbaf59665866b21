"""Typed Dockerfile instructions: parser ``Node``s -> frozen dataclasses with flags parsed and validated.

Mirrors moby/buildkit ``frontend/dockerfile/instructions`` (parse.go, bflag.go, runmount.go). Values are kept
raw (quotes, ``$VAR``): expansion happens at dispatch time against the stage environment, through each
instruction's ``expand(lex, env)`` or the ``ShellLex`` directly.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Self, TypeAlias

from idpbuilder.dockerfile.lexer import ShellLex, go_quote
from idpbuilder.dockerfile.parser import KNOWN_INSTRUCTIONS, Heredoc, Node, parse, parse_heredoc
from idpbuilder.errors import BuildError, DockerfileParseError

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

Expander: TypeAlias = Callable[[str], str]


class _InstructionError(BuildError):
    """An instruction-level error; ``parse_instruction`` re-raises it with file, line and keyword."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: Sequence[str], *, case_sensitive: bool = False) -> str | None:
    """The option closest to a mistyped ``value`` (edit distance at most 2, as BuildKit suggests), else None."""
    if not value:
        return None
    best: str | None = None
    best_dist = 3
    needle = value if case_sensitive else value.lower()
    for opt in options:
        d = _levenshtein(needle, opt if case_sensitive else opt.lower())
        if d < best_dist:
            best, best_dist = opt, d
    return best


def _did_you_mean(value: str, options: Sequence[str], *, case_sensitive: bool = False) -> str:
    s = suggest(value, options, case_sensitive=case_sensitive)
    return f" (did you mean {s}?)" if s is not None else ""


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_RE_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")


def parse_duration(s: str) -> int:
    """Parse a Go duration string (``1m30s``, ``500ms``, ``0``) into nanoseconds; ValueError when invalid."""
    orig = s
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _RE_DURATION_PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        unit = m.group(2)
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
    ns = int(round(total))
    return -ns if neg else ns


_RE_SYMBOLIC_CHMOD = re.compile(
    r"^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*$"
)


def parse_chmod(value: str) -> int | str:
    """Validate an (expanded) ``--chmod`` value: an octal mode up to 07777 as int, or a symbolic mode as str."""
    if re.fullmatch(r"[0-7]+", value) and int(value, 8) <= 0o7777:
        return int(value, 8)
    if not value[:1].isdigit() and _RE_SYMBOLIC_CHMOD.match(value):
        return value
    raise BuildError(
        f"invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777",
        hint="use an octal mode like 0755 or a symbolic one like u=rwx,go=rx",
    )


class _Flags:
    """BuildKit's BFlags: ``--name``/``--name=value`` words checked against the flags an instruction declares."""

    def __init__(self, keyword: str, words: Sequence[str]) -> None:
        self.keyword = keyword
        self.words = list(words)
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str | list[str]] = {}
        self.used: set[str] = set()

    def add_bool(self, name: str) -> None:
        self.kinds[name] = "bool"

    def add_string(self, name: str) -> None:
        self.kinds[name] = "string"

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.values[name] = []

    def parse(self) -> None:
        for word in self.words:
            if not word.startswith("--"):
                raise _InstructionError(f"arg should start with -- : {word}")
            if word == "--":
                return
            name, has_value, value = word[2:].partition("=")
            kind = self.kinds.get(name)
            if kind is None:
                valid = ", ".join("--" + k for k in sorted(self.kinds)) or "no flags"
                raise _InstructionError(
                    f"unknown flag: --{name}{_did_you_mean(name, sorted(self.kinds))}",
                    hint=f"{self.keyword.upper()} accepts {valid}",
                )
            if name in self.used and kind != "strings":
                raise _InstructionError(f"duplicate flag specified: --{name}")
            self.used.add(name)
            if kind == "bool":
                v = value.lower() if has_value else "true"
                if v in ("", "true"):
                    self.values[name] = "true"
                elif v == "false":
                    self.values[name] = "false"
                else:
                    raise _InstructionError(f"expecting boolean value for flag --{name}, not: {value}")
            elif not has_value:
                raise _InstructionError(f"missing a value on flag: --{name}")
            elif kind == "string":
                self.values[name] = value
            else:
                lst = self.values[name]
                assert isinstance(lst, list)
                lst.append(value)

    def string(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if isinstance(v, str) else None

    def strings(self, name: str) -> tuple[str, ...]:
        v = self.values.get(name)
        return tuple(v) if isinstance(v, list) else ()

    def bool(self, name: str) -> bool:
        return self.values.get(name) == "true"


# ---------------------------------------------------------------------------------------------------------------
# RUN --mount


MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = (
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "size",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "env",
)
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(key: str, value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise _InstructionError(f"invalid value for {key}: {value}")


def _ram_in_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?", value)
    if m is None:
        raise ValueError(value)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


@dataclass(frozen=True, kw_only=True)
class Mount:
    """One ``RUN --mount=`` spec. Fields hold raw values until ``expanded`` runs the stage's expander over them."""

    spec: str
    type: str = "bind"
    source: str | None = None
    target: str | None = None
    from_: str | None = None
    id: str | None = None
    sharing: str | None = None  # shared | private | locked (cache only)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    readonly: bool = True
    required: bool = False
    env: str | None = None  # secret exposed as this environment variable
    size: int | None = None  # tmpfs size limit in bytes
    needs_expansion: bool = False  # some value contains "$": call expanded() at dispatch time

    def expanded(self, expand: Expander) -> Mount:
        """Re-parse the spec with every value passed through ``expand`` (e.g. ``lambda v: lex.process_word(v, env)``)."""
        return parse_mount(self.spec, expand=expand)


def parse_mount(spec: str, *, expand: Expander | None = None) -> Mount:
    """Parse and validate one ``--mount`` value (CSV of key=value); values with ``$`` wait for ``expand``."""
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise _InstructionError(f"failed to parse csv mounts: {e}") from None
    if not rows or not rows[0]:
        raise _InstructionError("failed to parse csv mounts: empty mount specification")
    fields: dict[str, object] = {"type": "bind"}
    ro_auto = True
    deferred = False
    for fld in rows[0]:
        key, has_value, value = fld.partition("=")
        key = key.lower()
        mtype = str(fields["type"])
        if not has_value:
            if key in ("readonly", "ro"):
                fields["readonly"] = True
                ro_auto = False
                continue
            if key in ("readwrite", "rw"):
                fields["readonly"] = False
                ro_auto = False
                continue
            if key == "required":
                if mtype in ("secret", "ssh"):
                    fields["required"] = True
                    continue
                raise _InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            raise _InstructionError(f"invalid field '{fld}' must be a key=value pair")
        if key == "from" and "$" in value[:-1]:
            raise _InstructionError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        if expand is not None:
            try:
                value = expand(value)
            except BuildError as e:
                raise _InstructionError(e.message, e.hint) from None
        elif "$" in value and key not in ("from",):
            deferred = True
            if key in ("source", "src", "target", "dst", "destination", "id", "env"):
                fields[{"src": "source", "dst": "target", "destination": "target"}.get(key, key)] = value
            elif key not in _MOUNT_KEYS:
                raise _InstructionError(f"unexpected key '{key}' in '{fld}'{_did_you_mean(key, _MOUNT_KEYS)}")
            continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise _InstructionError(
                    f"unsupported mount type {go_quote(value)}{_did_you_mean(value, MOUNT_TYPES, case_sensitive=True)}"
                )
            fields["type"] = value.lower()
        elif key == "from":
            fields["from_"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("readonly", "ro"):
            fields["readonly"] = _go_bool(key, value)
            ro_auto = False
        elif key in ("readwrite", "rw"):
            fields["readonly"] = not _go_bool(key, value)
            ro_auto = False
        elif key == "required":
            if mtype not in ("secret", "ssh"):
                raise _InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            fields["required"] = _go_bool(key, value)
        elif key == "size":
            if mtype != "tmpfs":
                raise _InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            try:
                fields["size"] = _ram_in_bytes(value)
            except ValueError:
                raise _InstructionError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            fields["id"] = value
        elif key == "sharing":
            if value.lower() not in ("shared", "private", "locked"):
                raise _InstructionError(f"unsupported sharing value {go_quote(value)}")
            fields["sharing"] = value.lower()
        elif key == "mode":
            try:
                fields["mode"] = int(value, 8)
            except ValueError:
                raise _InstructionError(f"invalid value {value} for mode") from None
        elif key in ("uid", "gid"):
            if not value.isdigit():
                raise _InstructionError(f"invalid value {value} for {key}")
            fields[key] = int(value)
        elif key == "env":
            fields["env"] = value
        else:
            raise _InstructionError(f"unexpected key '{key}' in '{fld}'{_did_you_mean(key, _MOUNT_KEYS)}")

    mtype = str(fields["type"])
    if ro_auto:
        fields["readonly"] = mtype not in ("cache", "tmpfs")
    if fields.get("sharing") is not None and mtype != "cache":
        raise _InstructionError(f"invalid cache sharing set for {mtype} mount")
    if mtype == "secret":
        if fields.get("from_") is not None:
            raise _InstructionError("secret mount should not have a from")
        if not (fields.get("source") or fields.get("target") or fields.get("id")):
            raise _InstructionError("invalid secret mount. one of source, target required")
        if fields.get("source") and fields.get("id"):
            raise _InstructionError("both source and id can't be set")
    return Mount(spec=spec, needs_expansion=deferred, **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# instruction classes


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of every typed instruction: ``node`` is the source node (line numbers, original text)."""

    node: Node

    @property
    def keyword(self) -> str:
        """Lower-case instruction name."""
        return self.node.keyword

    @property
    def line(self) -> int:
        """1-based line where the instruction starts."""
        return self.node.start_line

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Copy with the values BuildKit expands for this instruction expanded against ``env`` (default: none)."""
        return self


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """``FROM [--platform=p] image [AS name]``."""

    image: str
    name: str | None
    platform: str | None

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Image and platform expanded against the global (meta) args."""
        return replace(
            self,
            image=lex.process_word(self.image, env),
            platform=lex.process_word(self.platform, env) if self.platform is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """``ARG [--required] name[=default] ...``; a None value means no default."""

    items: tuple[tuple[str, str | None], ...]
    required: bool = False

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Names and defaults expanded."""
        return replace(
            self,
            items=tuple(
                (lex.process_word(k, env), lex.process_word(v, env) if v is not None else None)
                for k, v in self.items
            ),
        )


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """``ENV k=v ...`` (or legacy ``ENV k v``), raw pairs."""

    pairs: tuple[tuple[str, str], ...]

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Keys and values expanded, all against the environment before this instruction."""
        return replace(
            self, pairs=tuple((lex.process_word(k, env), lex.process_word(v, env)) for k, v in self.pairs)
        )


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """``LABEL k=v ...``, raw pairs."""

    pairs: tuple[tuple[str, str], ...]

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Keys and values expanded."""
        return replace(
            self, pairs=tuple((lex.process_word(k, env), lex.process_word(v, env)) for k, v in self.pairs)
        )


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    """``WORKDIR path``."""

    path: str

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Path expanded."""
        return replace(self, path=lex.process_word(self.path, env))


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    """``USER user[:group]``."""

    user: str

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """User expanded."""
        return replace(self, user=lex.process_word(self.user, env))


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """``EXPOSE port[/proto] ...`` (sorted, as BuildKit keeps them)."""

    ports: tuple[str, ...]

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Each port expanded and split into words."""
        out: list[str] = []
        for p in self.ports:
            out.extend(lex.process_words(p, env))
        return replace(self, ports=tuple(out))


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    """``VOLUME path ...`` or ``VOLUME ["path", ...]``."""

    paths: tuple[str, ...]

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Each path expanded; an empty result is an error."""
        out = tuple(lex.process_word(p, env) for p in self.paths)
        if any(not p.strip() for p in out):
            raise BuildError("VOLUME specified can not be an empty string")
        return replace(self, paths=out)


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    """``SHELL ["exe", "arg", ...]`` (JSON form only)."""

    argv: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    """``STOPSIGNAL signal``."""

    signal: str

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Signal expanded."""
        return replace(self, signal=lex.process_word(self.signal, env))


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK NONE`` (test None) or ``HEALTHCHECK [flags] CMD ...``; durations in nanoseconds, 0 = unset."""

    test: tuple[str, ...] | None  # ("CMD", argv...) or ("CMD-SHELL", command)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    """``CMD``: exec form (json=True, argv) or shell form (one string)."""

    args: tuple[str, ...]
    json: bool


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """``ENTRYPOINT``: exec form (json=True, argv) or shell form (one string)."""

    args: tuple[str, ...]
    json: bool


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """``ONBUILD <instruction>``: the trigger text (heredoc bodies appended), re-parsed by child builds."""

    expression: str


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """``MAINTAINER name`` (deprecated, becomes the author field)."""

    name: str


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """``RUN``: args/json as the parser split them, heredocs, and the ``--mount/--network/--security`` flags."""

    args: tuple[str, ...]
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str | None = None  # default | none | host
    security: str | None = None  # sandbox | insecure

    def expanded_mounts(self, lex: ShellLex, env: Mapping[str, str]) -> tuple[Mount, ...]:
        """The mounts with their values expanded against ``env`` (BuildKit expands mount values at dispatch)."""
        try:
            return tuple(m.expanded(lambda v: lex.process_word(v, env)) for m in self.mounts)
        except _InstructionError as e:
            raise DockerfileParseError(f"RUN: {e.message}", line=self.line, hint=e.hint) from None


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    """``COPY [flags] src... dest``; heredoc sources (``<<EOF``) are in ``heredocs``, not in ``sources``."""

    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[Heredoc, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    parents: bool = False

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """Sources, dest, --from, --chown, --chmod and --exclude expanded (heredoc bodies are not touched)."""

        def w(s: str | None) -> str | None:
            return lex.process_word(s, env) if s is not None else None

        return replace(
            self,
            sources=tuple(lex.process_word(s, env) for s in self.sources),
            dest=lex.process_word(self.dest, env),
            from_=w(self.from_),
            chown=w(self.chown),
            chmod=w(self.chmod),
            exclude=tuple(lex.process_word(s, env) for s in self.exclude),
        )


@dataclass(frozen=True, kw_only=True)
class Add(Copy):
    """``ADD``: COPY's fields (``from_`` is always None) plus ``--checksum``, ``--keep-git-dir``, ``--unpack``."""

    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None  # None: default (unpack local archives only)

    def expand(self, lex: ShellLex, env: Mapping[str, str]) -> Self:
        """As COPY, plus --checksum."""
        out = super().expand(lex, env)
        return replace(
            out, checksum=lex.process_word(self.checksum, env) if self.checksum is not None else None
        )


@dataclass(frozen=True)
class Stage:
    """One build stage: its FROM and the instructions that follow it."""

    name: str | None
    base: str
    platform: str | None
    index: int
    commands: tuple[Instruction, ...]
    node: Node

    @property
    def from_(self) -> From:
        """The FROM instruction that starts this stage."""
        return From(node=self.node, image=self.base, name=self.name, platform=self.platform)


@dataclass(frozen=True)
class Dockerfile:
    """A parsed, validated Dockerfile."""

    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    escape: str
    warnings: tuple[str, ...] = ()
    filename: str = "Dockerfile"

    def find_stage(self, ref: str) -> Stage | None:
        """The stage named ``ref`` (case-insensitive) or, for a number, at that index; None if there is none."""
        low = ref.lower()
        for st in self.stages:
            if st.name == low:
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def lexer(self) -> ShellLex:
        """A ShellLex using this Dockerfile's escape token."""
        return ShellLex(self.escape)


# ---------------------------------------------------------------------------------------------------------------
# node -> instruction


def _args_exact(node: Node, kw: str) -> str:
    if len(node.args) != 1:
        raise _InstructionError(f"{kw} requires exactly one argument")
    return node.args[0]


def _handle_json_args(node: Node) -> tuple[str, ...]:
    return node.args


def _parse_sources_and_dest(node: Node, kw: str) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    if len(node.args) < 2:
        raise _InstructionError(
            f"{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    srcs, dest = node.args[:-1], node.args[-1]
    if not node.json and _safe_heredoc(dest) is not None:
        raise _InstructionError(f"{kw} cannot accept a heredoc as a destination")
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


def _interval(flags: _Flags, name: str) -> int:
    raw = flags.string(name)
    if not raw:
        return 0
    try:
        d = parse_duration(raw)
    except ValueError as e:
        raise _InstructionError(str(e)) from None
    if d == 0:
        return 0
    if d < 1_000_000:
        raise _InstructionError(f'Interval "{name}" cannot be less than 1ms')
    return d


def _build(node: Node) -> Instruction:
    kw = node.keyword
    KW = kw.upper()
    flags = _Flags(kw, node.flags)

    if kw == "from":
        flags.add_string("platform")
        flags.parse()
        args = node.args
        name: str | None = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise _InstructionError(
                    f"invalid name for build stage: {go_quote(args[2])}, name can't start with a number or contain symbols"
                )
        elif len(args) != 1:
            raise _InstructionError(
                "FROM requires either one or three arguments", hint="FROM image [AS name]"
            )
        return From(node=node, image=args[0], name=name, platform=flags.string("platform"))

    if kw == "arg":
        if not node.args:
            raise _InstructionError("ARG requires at least one argument")
        flags.add_bool("required")
        flags.parse()
        items: list[tuple[str, str | None]] = []
        for a in node.args:
            if "=" in a:
                k, v = a.split("=", 1)
                if not k:
                    raise _InstructionError("ARG names can not be blank")
                items.append((k, v))
            else:
                items.append((a, None))
        return Arg(node=node, items=tuple(items), required="required" in flags.used)

    if kw in ("env", "label"):
        flags.parse()
        if not node.args:
            raise _InstructionError(f"{KW} requires at least one argument")
        pairs = tuple((node.args[j], node.args[j + 1]) for j in range(0, len(node.args), 2))
        if any(not k for k, _ in pairs):
            raise _InstructionError(f"{KW} names can not be blank")
        return Env(node=node, pairs=pairs) if kw == "env" else Label(node=node, pairs=pairs)

    if kw == "maintainer":
        m = _args_exact(node, KW)
        flags.parse()
        return Maintainer(node=node, name=m)

    if kw in ("copy", "add"):
        flags.add_string("chown")
        flags.add_string("chmod")
        flags.add_bool("link")
        flags.add_strings("exclude")
        flags.add_bool("parents")
        if kw == "copy":
            flags.add_string("from")
        else:
            flags.add_bool("keep-git-dir")
            flags.add_string("checksum")
            flags.add_bool("unpack")
        if len(node.args) < 2:
            raise _InstructionError(
                f"{KW} requires at least two arguments, but only one was provided. Destination could not be determined"
            )
        flags.parse()
        sources, dest, docs = _parse_sources_and_dest(node, KW)
        copy = Copy(
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
        if kw == "copy":
            return copy
        return Add(
            node=node,
            sources=sources,
            dest=dest,
            heredocs=docs,
            chown=copy.chown,
            chmod=copy.chmod,
            link=copy.link,
            exclude=copy.exclude,
            parents=copy.parents,
            checksum=flags.string("checksum"),
            keep_git_dir=flags.bool("keep-git-dir"),
            unpack=flags.bool("unpack") if "unpack" in flags.used else None,
        )

    if kw == "onbuild":
        if node.sub is None:
            raise _InstructionError("ONBUILD requires at least one argument")
        flags.parse()
        trigger = node.sub.keyword.upper()
        if trigger == "ONBUILD":
            raise _InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        for h in node.heredocs:
            expression += "\n" + h.content + h.name
        return Onbuild(node=node, expression=expression)

    if kw == "workdir":
        path = _args_exact(node, KW)
        flags.parse()
        return Workdir(node=node, path=path)

    if kw == "run":
        flags.add_strings("mount")
        flags.add_string("network")
        flags.add_string("security")
        flags.parse()
        if not node.args and not node.heredocs:
            raise _InstructionError("RUN requires at least one argument")
        mounts = tuple(parse_mount(s) for s in flags.strings("mount"))
        network = flags.string("network")
        if network is not None and "$" not in network and network not in _NETWORK_MODES:
            raise _InstructionError(
                f"unsupported network mode {go_quote(network)}", hint="use default, none or host"
            )
        security = flags.string("security")
        if security is not None and "$" not in security and security not in _SECURITY_MODES:
            raise _InstructionError(
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

    if kw in ("cmd", "entrypoint"):
        flags.parse()
        cls = Cmd if kw == "cmd" else Entrypoint
        return cls(node=node, args=_handle_json_args(node), json=node.json)

    if kw == "healthcheck":
        if not node.args:
            raise _InstructionError(
                "HEALTHCHECK requires at least one argument", hint="HEALTHCHECK [flags] CMD ..."
            )
        typ = node.args[0].upper()
        rest = node.args[1:]
        if typ == "NONE":
            if rest:
                raise _InstructionError("HEALTHCHECK NONE takes no arguments")
            flags.parse()
            return Healthcheck(node=node, test=None)
        for f in ("interval", "timeout", "start-period", "start-interval", "retries"):
            flags.add_string(f)
        flags.parse()
        if typ != "CMD":
            raise _InstructionError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
        if not rest:
            raise _InstructionError("Missing command after HEALTHCHECK CMD")
        test = ("CMD", *rest) if node.json else ("CMD-SHELL", *rest)
        retries = 0
        raw_retries = flags.string("retries")
        if raw_retries:
            if not re.fullmatch(r"[+-]?[0-9]+", raw_retries):
                raise _InstructionError(f'strconv.ParseInt: parsing "{raw_retries}": invalid syntax')
            retries = int(raw_retries)
            if retries < 0:
                raise _InstructionError(f"--retries cannot be negative ({retries})")
        return Healthcheck(
            node=node,
            test=test,
            interval=_interval(flags, "interval"),
            timeout=_interval(flags, "timeout"),
            start_period=_interval(flags, "start-period"),
            start_interval=_interval(flags, "start-interval"),
            retries=retries,
        )

    if kw == "expose":
        if not node.args:
            raise _InstructionError("EXPOSE requires at least one argument")
        flags.parse()
        return Expose(node=node, ports=tuple(sorted(node.args)))

    if kw == "user":
        user = _args_exact(node, KW)
        flags.parse()
        return User(node=node, user=user)

    if kw == "volume":
        if not node.args:
            raise _InstructionError("VOLUME requires at least one argument")
        flags.parse()
        vols = tuple(v.strip() for v in node.args)
        if any(v == "" for v in vols):
            raise _InstructionError("VOLUME specified can not be an empty string")
        return Volume(node=node, paths=vols)

    if kw == "stopsignal":
        sig = _args_exact(node, KW)
        flags.parse()
        return StopSignal(node=node, signal=sig)

    if kw == "shell":
        flags.parse()
        if not node.args:
            raise _InstructionError("SHELL requires at least one argument")
        if not node.json:
            raise _InstructionError(
                "SHELL requires the arguments to be in JSON form", hint='SHELL ["/bin/bash", "-c"]'
            )
        return Shell(node=node, argv=node.args)

    names = sorted(k.upper() for k in KNOWN_INSTRUCTIONS)
    raise _InstructionError(
        f"unknown instruction: {node.original.split()[0] if node.original.split() else KW}"
        f"{_did_you_mean(KW, names)}"
    )


def parse_instruction(node: Node, *, filename: str = "Dockerfile") -> Instruction:
    """Type and validate one node; DockerfileParseError naming file, line and instruction on bad input."""
    try:
        return _build(node)
    except _InstructionError as e:
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
    names = [s.name for s in stages if s.name is not None]
    for st in stages:
        if st.name is not None and names.count(st.name) > 1:
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
