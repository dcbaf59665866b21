"""The public listing API of RegistryClient: ``get_json``, ``list_repositories`` and ``list_tags`` with
``Link`` pagination, against real docker-registry servers (through the fault proxy where requests are counted)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from regkit import unique

from fixtures.fault_proxy import FaultProxy
from fixtures.plugin import BusyboxImage
from fixtures.registry import RegistryInfo, copy_to_registry
from idpbuilder.credentials.keychain import Credential
from idpbuilder.credentials.tls import TrustConfig
from idpbuilder.errors import NotFoundError, RegistryError
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.retry import RetryPolicy
from idpbuilder.registry.settings import RegistrySettings
from idpbuilder.registry.wire import next_link

FAST = RetryPolicy(attempts=3, base_delay=0.01)


def _client(info: RegistryInfo) -> RegistryClient:
    cred = Credential(info.username, info.password, source="test") if info.username else None
    trust = TrustConfig(ca_files=(info.ca_file,)) if info.ca_file else TrustConfig()
    return RegistryClient(info.host, RegistrySettings(trust=trust, retry=FAST), credential=cred)


@pytest.fixture
def three_repos(registry_factory: Callable[[str], RegistryInfo], busybox_image: BusyboxImage) -> RegistryInfo:
    info = registry_factory("plain")
    for ref in ("a/one:v1", "b/two:v1", "c/three:v1", "c/three:v2", "c/three:v3"):
        copy_to_registry(busybox_image.oci_ref, info, ref)
    return info


def test_list_repositories_and_tags_follow_link_pages(
    three_repos: RegistryInfo, make_fault_proxy: Callable[[RegistryInfo], FaultProxy]
) -> None:
    proxy = make_fault_proxy(three_repos)
    client = _client(proxy.registry)
    try:
        assert client.list_repositories(page_size=1) == ["a/one", "b/two", "c/three"]
        catalog = [r.path for r in proxy.stats.request_log if r.path.startswith("/v2/_catalog")]
        assert len(catalog) >= 3 and "last=a%2Fone" in catalog[1]  # one repository per page
        assert sorted(client.list_tags("c/three", page_size=2)) == ["v1", "v2", "v3"]
        assert client.list_repositories() == ["a/one", "b/two", "c/three"]  # one page
    finally:
        client.close()


def test_a_failing_page_is_retried_in_place(
    three_repos: RegistryInfo, make_fault_proxy: Callable[[RegistryInfo], FaultProxy]
) -> None:
    proxy = make_fault_proxy(three_repos)
    client = _client(proxy.registry)
    try:
        client.ping()
        proxy.reset_stats()
        proxy.fail_requests(1, status=503, path_contains="last=")  # the second page fails once
        assert client.list_repositories(page_size=1) == ["a/one", "b/two", "c/three"]
        paths = [r.path for r in proxy.stats.request_log]
        assert proxy.stats.injected_errors == 1 and paths.count(paths[1]) == 2  # same page asked again
        assert paths.count(paths[0]) == 1  # not restarted from the first page
    finally:
        client.close()


def test_get_json_and_errors(three_repos: RegistryInfo) -> None:
    client = _client(three_repos)
    try:
        page = client.get_json("/v2/a/one/tags/list", scopes=(), what="tags")
        assert page.data == {"name": "a/one", "tags": ["v1"]} and page.next_url is None
        absolute = client.get_json(f"{client.base_url}/v2/_catalog?n=1", scopes=(), what="catalog")
        assert absolute.data == {"repositories": ["a/one"]}
        assert absolute.next_url == f"{client.base_url}/v2/_catalog?last=a%2Fone&n=1"
        with pytest.raises(NotFoundError, match=r"listing tags of \S+/nope/x: no such repository"):
            client.list_tags("nope/x")
        layer = client.get_manifest("a/one", "v1").json()["layers"][0]["digest"]
        with pytest.raises(RegistryError, match="blob: the registry did not answer with JSON"):
            # a gzip layer is not JSON: the helper says so instead of failing inside json.loads
            client.get_json(f"/v2/a/one/blobs/{layer}", scopes=(), what="blob")
    finally:
        client.close()


def test_listing_with_basic_and_token_auth(seeded_registries: dict[str, RegistryInfo]) -> None:
    basic = _client(seeded_registries["tls"])  # htpasswd: the catalog needs the credentials
    try:
        assert "library/busybox" in basic.list_repositories()
    finally:
        basic.close()
    info = seeded_registries["token_tls"]
    assert info.token_server is not None
    client = _client(info)
    try:
        assert "latest" in client.list_tags("library/busybox")
        assert any(
            r.user == info.username and "repository:library/busybox:pull" in r.scopes
            for r in info.token_server.requests
        )
        with pytest.raises(NotFoundError):
            client.list_tags(f"{unique('absent')}/x")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ('</v2/_catalog?last=a&n=1>; rel="next"', "http://h/v2/_catalog?last=a&n=1"),
        ('<https://o/p>; rel="prev", </v2/n?x=1>; type="a"; rel="first next"', "http://h/v2/n?x=1"),
        ("<http://z/y>; rel=next", "http://z/y"),
        ('</v2/_catalog?last=a%2Cb>; rel="next"', "http://h/v2/_catalog?last=a%2Cb"),
        ('<https://o/p>; rel="prev"', None),
        ("garbage", None),
        (None, None),
    ],
)
def test_next_link(link: str | None, expected: str | None) -> None:
    assert next_link("http://h/v2/x?n=1", link) == expected
