"""Gitea's container-registry rules: the owner path component, repository and tag names (pure functions)."""

from __future__ import annotations

import re

from idpbuilder._records import dataclass, replace
from idpbuilder.errors import UsageError
from idpbuilder.reference import Reference

__all__ = [
    "DEFAULT_OWNER",
    "GiteaTarget",
    "check_gitea_reference",
    "gitea_owner",
    "gitea_target",
]

DEFAULT_OWNER = "giteaadmin"  # idpbuilder's admin user is giteaAdmin; Gitea owners in paths are lower case

# Gitea 1.24 routers/api/packages/container: image name and tag rules
# strings: compiled (and cached by re) on first use, not at start-up
_IMAGE_RE = r"\A[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*\Z"
_OWNER_RE = r"\A[a-z0-9]([a-z0-9_.-]*[a-z0-9])?\Z"


def gitea_owner(username: str | None) -> str:
    """The owner path component for ``username``: lower-cased (``giteaAdmin`` → ``giteaadmin``)."""
    return username.strip().lower() if username and username.strip() else DEFAULT_OWNER


def check_gitea_reference(ref: Reference) -> list[str]:
    """Check ``owner/image[:tag]`` against Gitea's rules; UsageError before any upload, else warnings to show."""
    owner, sep, image = ref.repository.partition("/")
    if not sep:
        raise UsageError(
            f"{ref}: Gitea needs an owner in the repository path ({{owner}}/{{image}})",
            hint=f"push to {ref.registry or '<registry>'}/{DEFAULT_OWNER}/{ref.repository}",
        )
    if not re.match(_OWNER_RE, owner):
        raise UsageError(
            f"{ref}: {owner!r} is not a valid Gitea owner name",
            hint="the owner is a Gitea user or organisation name in lower case, e.g. giteaadmin",
        )
    if not re.match(_IMAGE_RE, image):
        raise UsageError(
            f"{ref}: Gitea rejects the image name {image!r}",
            hint="use lower-case letters and digits, single '.', '_' or '-' between them, '/' between parts",
        )
    warnings: list[str] = []
    if ref.tag and ref.tag != ref.tag.lower():
        warnings.append(f"Gitea stores tags in lower case: {ref.tag!r} will be listed as {ref.tag.lower()!r}")
    return warnings


@dataclass(frozen=True)
class GiteaTarget:
    """A push target on the idpbuilder registry after the owner fix-up, with warnings for the user."""

    reference: Reference
    owner_inserted: bool
    warnings: tuple[str, ...] = ()


def gitea_target(ref: Reference, *, registry_host: str, owner: str) -> GiteaTarget:
    """Put ``ref`` on the idpbuilder registry: add the host when absent, insert ``owner`` for a one-part path.

    ``ref`` must either have no registry or already name ``registry_host``; the result is checked against
    Gitea's naming rules (UsageError before any upload).
    """
    if ref.registry is not None and ref.registry.lower() != registry_host.lower():
        raise UsageError(f"{ref} is not on the idpbuilder registry {registry_host}")
    target = ref if ref.registry is not None else replace(ref, registry=registry_host)
    inserted = False
    if "/" not in target.repository:
        target = replace(target, repository=f"{gitea_owner(owner)}/{target.repository}")
        inserted = True
    return GiteaTarget(target, owner_inserted=inserted, warnings=tuple(check_gitea_reference(target)))
