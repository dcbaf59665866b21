"""Value types of the conformance run: what to build, what to expect, what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.conformance.flatten import FlatImage

__all__ = ["BuildOutcome", "BuildSpec", "CaseSpec", "Expect", "Verdict"]

CustomCheck = Callable[[dict[str, Any], FlatImage, dict[str, bytes]], list[str]]


@dataclass(frozen=True)
class Expect:
    """Assertions taken from a case's EXPECT.md, checked on the built image."""

    files: dict[str, str] = field(default_factory=dict)  # path -> exact content
    contains: dict[str, str] = field(default_factory=dict)  # path -> substring of the content
    absent: tuple[str, ...] = ()
    types: dict[str, str] = field(default_factory=dict)  # path -> file|dir|symlink
    owners: dict[str, str] = field(default_factory=dict)  # path -> "uid:gid"
    modes: dict[str, int] = field(default_factory=dict)  # path -> permission bits
    config: dict[str, Any] = field(default_factory=dict)  # compared config field -> value
    custom: CustomCheck | None = None

    def check(self, raw_config: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
        """Every assertion that does not hold, as short messages (empty when all hold)."""
        problems: list[str] = []
        for path, want in {**self.files, **self.contains}.items():
            e = image.files.get(path)
            if e is None:
                problems.append(f"/{path} missing")
                continue
            got = contents.get(path)
            if got is None:
                problems.append(f"/{path} is a {e.type}, not a file")
            elif path in self.files and got != want.encode():
                problems.append(f"/{path} = {got[:60]!r}, want {want!r}")
            elif path in self.contains and want.encode() not in got:
                problems.append(f"/{path} lacks {want!r}")
        for path in self.absent:
            if path in image.files:
                problems.append(f"/{path} should not exist")
        for path, kind in self.types.items():
            e = image.files.get(path)
            if e is None or e.type != kind:
                problems.append(f"/{path} is {e.type if e else 'missing'}, want {kind}")
        for path, owner in self.owners.items():
            e = image.files.get(path)
            if e is None or f"{e.uid}:{e.gid}" != owner:
                problems.append(f"/{path} owner {f'{e.uid}:{e.gid}' if e else 'missing'}, want {owner}")
        for path, mode in self.modes.items():
            e = image.files.get(path)
            if e is None or e.mode != mode:
                problems.append(f"/{path} mode {oct(e.mode) if e else 'missing'}, want {oct(mode)}")
        for key, want in self.config.items():
            got = image.config.get(key)
            if got != want:
                problems.append(f"config {key} = {got!r}, want {want!r}")
        if self.custom is not None:
            problems.extend(self.custom(raw_config, image, contents))
        return problems


@dataclass(frozen=True)
class BuildSpec:
    """One build of a case (most cases have one; some build several Dockerfiles or targets)."""

    label: str = "default"
    dockerfile: str | None = None  # relative to the context; None: default discovery (no -f)
    build_args: tuple[str, ...] = ()
    target: str | None = None
    platform: str | None = None
    labels: tuple[str, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()  # (id, value)
    fail: tuple[str, ...] | None = None  # must fail; upstream's error substrings (informative)
    expect: Expect | None = None
    oracle: bool = True  # False: the oracle is known to differ from BuildKit here; trust ``expect`` only
    edits: tuple[tuple[str, str], ...] = ()  # (context file, new content) applied before this build
    oracle_args: tuple[str, ...] = ()  # extra oracle (buildah) flags (e.g. --format docker for ONBUILD)
    oracle_dockerfile: str | None = None  # -f for the oracle where its Dockerfile discovery differs

    def key(self) -> str:
        """A stable text form (part of the oracle cache key)."""
        return repr(
            (
                self.dockerfile,
                self.build_args,
                self.target,
                self.platform,
                self.labels,
                self.secrets,
                self.fail is not None,
                self.edits,
                self.oracle_args,
                self.oracle_dockerfile,
            )
        )


@dataclass(frozen=True)
class CaseSpec:
    """How to run one case: its builds, or why it cannot run here, plus comparison exceptions."""

    builds: tuple[BuildSpec, ...] = (BuildSpec(),)
    skip: str | None = None
    note: str = ""  # why an override exists (printed in the reason column)
    oracle_differs: str = ""  # how the oracle differs from BuildKit here (self-check: known, not failed)
    # the shared fixture copy lost its symlinks (stored as files holding the link text) and its socket:
    # the runner rebuilds them in a private copy of the context
    symlinks: tuple[tuple[str, str], ...] = ()  # (context path, link target)
    sockets: tuple[str, ...] = ()

    def repair_key(self) -> str:
        """A stable text form of the repairs (part of the oracle cache key)."""
        return repr((self.symlinks, self.sockets))

    ignore_config: tuple[str, ...] = ()  # config fields where the oracle legitimately differs
    ignore_paths: tuple[str, ...] = ()  # rootfs paths where the oracle legitimately differs


@dataclass
class BuildOutcome:
    """What one builder did for one BuildSpec."""

    ok: bool
    seconds: float
    error: str = ""
    raw_config: dict[str, Any] | None = None
    image: FlatImage | None = None
    contents: dict[str, bytes] = field(default_factory=dict)  # small regular files, for Expect

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the oracle cache)."""
        return {
            "ok": self.ok,
            "seconds": self.seconds,
            "error": self.error,
            "raw_config": self.raw_config,
            "image": self.image.to_json() if self.image else None,
            "contents": {k: v.decode("latin-1") for k, v in self.contents.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BuildOutcome:
        """Inverse of ``to_json``."""
        return cls(
            d["ok"],
            d["seconds"],
            d["error"],
            d["raw_config"],
            FlatImage.from_json(d["image"]) if d["image"] else None,
            {k: v.encode("latin-1") for k, v in d["contents"].items()},
        )


@dataclass(frozen=True)
class Verdict:
    """The result row of one case."""

    case: str
    category: str
    status: str  # pass | fail | skip
    ours: str  # ok | fail | -
    buildah: str  # the oracle's column: ok | fail, "*" when from the cache | -
    reason: str
    seconds: float = 0.0
    ours_seconds: float = 0.0  # sum of our build times
    buildah_seconds: float = 0.0  # sum of the oracle's build times (also when served from the cache)
