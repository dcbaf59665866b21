"""The typed instructions (frozen dataclasses, one per Dockerfile instruction), ``Stage`` and ``Dockerfile``.

Values are kept raw (quotes, ``$VAR``): expansion happens at dispatch time against the stage environment,
through each instruction's ``expand(lex, env)`` or the ``ShellLex`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from idpbuilder._records import dataclass, replace
from idpbuilder.dockerfile.flags import InstructionError
from idpbuilder.dockerfile.lexer import ShellLex
from idpbuilder.dockerfile.mounts import Mount
from idpbuilder.dockerfile.parser import Heredoc, Node
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
    "Onbuild",
    "Run",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
]


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
        except InstructionError as e:
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
