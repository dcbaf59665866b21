"""Image references: ``[registry/]repository[:tag][@digest]``, parsed once at the edge."""

from __future__ import annotations

import re

from idpbuilder._records import dataclass, replace
from idpbuilder.digest import Digest
from idpbuilder.errors import UsageError

__all__ = ["DOCKER_HUB", "Reference"]

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``registry`` is None when the user typed none (kept as typed)."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse a reference the way docker does, without adding a default registry."""
        original = text
        text = text.strip()
        if not text:
            raise UsageError("empty image reference", hint="give a name such as myapp:v1")
        digest: Digest | None = None
        if "@" in text:
            text, _, d = text.partition("@")
            digest = Digest.parse(d)
        registry: str | None = None
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            if not _HOST_RE.match(first):
                raise UsageError(f"invalid registry host in {original!r}")
            registry = first
            text = rest
        tag: str | None = None
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            tag = text[colon + 1 :]
            text = text[:colon]
            if not _TAG_RE.match(tag):
                raise UsageError(
                    f"invalid tag {tag!r} in {original!r}",
                    hint="a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
                )
        if not _REPO_RE.match(text):
            hint = "repository names are lower case: letters, digits and . _ - separated by /"
            if text.lower() != text and _REPO_RE.match(text.lower()):
                hint = f"repository names must be lower case: try {text.lower()!r}"
            raise UsageError(f"invalid image reference {original!r}", hint=hint)
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in text:
            text = f"library/{text}"
        return cls(registry, text, tag, digest)

    def with_default_tag(self) -> Reference:
        """Add ``latest`` when neither tag nor digest is given."""
        if self.tag is None and self.digest is None:
            return replace(self, tag="latest")
        return self

    def with_registry(self, registry: str) -> Reference:
        """This reference on ``registry`` (Docker Hub names get ``library/``)."""
        repo = self.repository
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in repo:
                repo = f"library/{repo}"
        return replace(self, registry=registry, repository=repo)

    def for_pull(self) -> Reference:
        """Docker's normalisation for pulling: docker.io/library/ and :latest when absent."""
        ref = self if self.registry else self.with_registry(DOCKER_HUB)
        return ref.with_default_tag()

    @property
    def name(self) -> str:
        """``registry/repository`` (or just ``repository`` when no registry was given)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def familiar_name(self) -> str:
        """docker's short name: ``docker.io/library/busybox`` → ``busybox``, ``docker.io/u/app`` → ``u/app``."""
        if self.registry == DOCKER_HUB:
            repo = self.repository
            return repo[len("library/") :] if repo.startswith("library/") and repo.count("/") == 1 else repo
        return self.name

    @property
    def identifier(self) -> str:
        """The tag, else the digest string, else ``latest``."""
        if self.tag:
            return self.tag
        if self.digest:
            return str(self.digest)
        return "latest"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def store_key(self) -> str:
        """The full reference kept in the store's ``org.opencontainers.image.ref.name`` annotation."""
        return str(self.with_default_tag())
