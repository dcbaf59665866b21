"""Gitea owner fix-up and naming rules (data tables)."""

from __future__ import annotations

import pytest

from idpbuilder.cluster import check_gitea_reference, gitea_owner, gitea_target
from idpbuilder.errors import UsageError
from idpbuilder.reference import Reference

HOST = "gitea.cnoe.localtest.me:8443"


@pytest.mark.parametrize(
    ("typed", "owner", "final", "inserted"),
    [
        ("myapp:v1", "giteaAdmin", f"{HOST}/giteaadmin/myapp:v1", True),
        ("myapp", "giteaAdmin", f"{HOST}/giteaadmin/myapp", True),
        (f"{HOST}/myapp:v1", "giteaAdmin", f"{HOST}/giteaadmin/myapp:v1", True),
        (f"{HOST}/team/myapp:v1", "giteaAdmin", f"{HOST}/team/myapp:v1", False),
        ("team/sub/myapp:v1", "giteaAdmin", f"{HOST}/team/sub/myapp:v1", False),
        ("myapp:v1", "Dev-User", f"{HOST}/dev-user/myapp:v1", True),
        ("myapp:v1", "", f"{HOST}/giteaadmin/myapp:v1", True),
    ],
)
def test_owner_fix_up(typed: str, owner: str, final: str, inserted: bool) -> None:
    t = gitea_target(Reference.parse(typed), registry_host=HOST, owner=owner)
    assert (str(t.reference), t.owner_inserted, t.warnings) == (final, inserted, ())


def test_digest_reference_keeps_digest() -> None:
    d = "sha256:" + "a" * 64
    t = gitea_target(Reference.parse(f"myapp@{d}"), registry_host=HOST, owner="giteaadmin")
    assert str(t.reference) == f"{HOST}/giteaadmin/myapp@{d}"


def test_other_registry_is_refused() -> None:
    with pytest.raises(UsageError):
        gitea_target(Reference.parse("other.example/x/y"), registry_host=HOST, owner="a")


@pytest.mark.parametrize(
    "name", ["giteaadmin/my__app", "giteaadmin/my--app", "giteaadmin/a---b", "giteaadmin/x/a__b"]
)
def test_gitea_rejects_names_docker_accepts(name: str) -> None:
    ref = Reference.parse(f"{HOST}/{name}:v1")  # valid for docker
    with pytest.raises(UsageError, match="Gitea rejects"):
        check_gitea_reference(ref)


def test_capital_tag_warns() -> None:
    t = gitea_target(Reference.parse("myapp:V1-Beta"), registry_host=HOST, owner="giteaadmin")
    assert len(t.warnings) == 1 and "'v1-beta'" in t.warnings[0]


def test_missing_owner_is_an_error() -> None:
    with pytest.raises(UsageError, match="owner"):
        check_gitea_reference(Reference.parse(f"{HOST}/myapp:v1"))


def test_owner_lowercase() -> None:
    assert gitea_owner("giteaAdmin") == "giteaadmin"
    assert gitea_owner(None) == "giteaadmin"
