"""Pull an image into the local store: manifest (platform picked from an index), then blobs in parallel.

Every blob is verified (digest and size) while it streams into the store; blobs already present are
hashed and skipped when intact, fetched again when damaged (the verified copy replaces the bad one). The platform manifest is tagged under the full reference (``docker.io/library/alpine:latest``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from idpbuilder._records import dataclass
from idpbuilder.digest import Digest
from idpbuilder.errors import IdpError, NotFoundError, RegistryError, UsageError
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform
from idpbuilder.reference import Reference
from idpbuilder.registry.client import BlobSink, RegistryClient
from idpbuilder.registry.locations import BlobLocations
from idpbuilder.registry.progress import NullReporter, Reporter
from idpbuilder.registry.settings import RegistrySettings
from idpbuilder.registry.wire import ManifestData
from idpbuilder.store.verify import blob_problem

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = ["PullResult", "pull", "pull_image"]

log = logging.getLogger("idpbuilder.registry")


@dataclass(frozen=True)
class PullResult:
    """What a pull stored: the reference key, the manifest descriptor and transfer counts."""

    reference: str
    descriptor: Descriptor
    pulled: int
    present: int
    bytes_received: int
    seconds: float


def pull_image(
    store: Store,
    ref: Reference | str,
    *,
    settings: RegistrySettings | None = None,
    platform: Platform | None = None,
    reporter: Reporter | None = None,
    client: RegistryClient | None = None,
) -> Descriptor:
    """Pull ``ref`` (Docker Hub normalised) into ``store`` and tag it; returns the manifest descriptor."""
    return pull(store, ref, settings=settings, platform=platform, reporter=reporter, client=client).descriptor


def _default_settings() -> RegistrySettings:
    from idpbuilder.credentials.keychain import default_keychain
    from idpbuilder.credentials.tls import TrustConfig
    from idpbuilder.registry.retry import RetryPolicy

    return RegistrySettings(
        keychain=default_keychain(), trust=TrustConfig.from_options(), retry=RetryPolicy.from_options()
    )


def pull(
    store: Store,
    ref: Reference | str,
    *,
    settings: RegistrySettings | None = None,
    platform: Platform | None = None,
    reporter: Reporter | None = None,
    client: RegistryClient | None = None,
) -> PullResult:
    """Like ``pull_image`` but returns the full ``PullResult``."""
    start = time.monotonic()
    r = (Reference.parse(ref) if isinstance(ref, str) else ref).for_pull()
    assert r.registry is not None
    rep: Reporter = reporter or NullReporter()
    own_client = client is None
    cl = client or RegistryClient(r.registry, settings or _default_settings())
    try:
        return _pull(store, r, cl, platform, rep, start)
    finally:
        if own_client:
            cl.close()


def _pull(
    store: Store, r: Reference, cl: RegistryClient, platform: Platform | None, rep: Reporter, start: float
) -> PullResult:
    repo = r.repository
    top = cl.get_manifest(repo, str(r.digest) if r.digest else r.identifier)
    man = top
    chosen_platform: Platform | None = None
    if top.media_type in INDEX_TYPES:
        from idpbuilder.image.model import select_platform

        try:
            child = select_platform(_document(r, top), platform)
        except (UsageError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise _invalid(r, top, e) from None
        if child.media_type in INDEX_TYPES:
            raise RegistryError(f"{r}: nested image indexes are not supported")
        man = cl.get_manifest(repo, str(child.digest))
        chosen_platform = child.platform
    elif top.media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{r}: unsupported manifest type {top.media_type}")
    doc = _document(r, man)
    if man.media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{r}: expected an image manifest, got {man.media_type}")
    blobs: list[Descriptor] = []
    cfg = doc.get("config")
    if not isinstance(cfg, dict):
        raise _invalid(r, man, "it has no config")
    try:
        blobs.append(Descriptor.from_json(cfg))
        blobs.extend(Descriptor.from_json(layer) for layer in doc.get("layers") or [])
    except (UsageError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise _invalid(r, man, e) from None
    if any(b.size < 0 for b in blobs):
        raise _invalid(r, man, "a negative blob size")
    if chosen_platform is None and platform is not None:
        chosen_platform = _config_platform(store, cl, repo, blobs[0], platform)

    pulled = present = received = 0
    todo: list[Descriptor] = []
    seen: set[Digest] = set()
    for b in blobs:
        if b.digest in seen:
            continue
        seen.add(b.digest)
        problem = blob_problem(store.blob_path(b.digest), b.digest, b.size)
        if problem is None:
            rep.blob_done(b.digest, b.size, "present")
            present += 1
        else:
            if problem != "missing":  # hashed: a same-size corruption is caught too
                log.warning("stored blob %s of %s is damaged (%s): fetching it again", b.digest, r, problem)
            todo.append(b)

    def fetch(b: Descriptor) -> Descriptor:
        rep.blob_start(b.digest, b.size, "blob")

        def sink() -> BlobSink:
            w: BlobSink = store.blob_writer(expected=b.digest, size=b.size)
            return w

        cl.download_blob(repo, b.digest, b.size, sink, progress=lambda n: rep.blob_progress(b.digest, n))
        rep.blob_done(b.digest, b.size, "pulled")
        return b

    fresh = {b.digest for b in todo} | (set() if store.has_blob(man.digest) else {man.digest})
    key = r.store_key
    desc = Descriptor(man.media_type, man.digest, len(man.data), platform=chosen_platform)
    try:
        pulled, received = _fetch_all(cl, todo, fetch)
        store.put_bytes(man.data, expected=man.digest)
        store.set_ref(key, desc)
    except BaseException:
        # blobs this pull stored that no image will reference (disk full, Ctrl-C): gone now, not at a prune
        with contextlib.suppress(Exception):
            store.discard_blobs(fresh)
        raise
    _record_locations(store, cl.registry, repo, [b.digest for b in blobs])
    return PullResult(key, desc, pulled, present, received, time.monotonic() - start)


def _fetch_all(
    cl: RegistryClient, todo: list[Descriptor], fetch: Callable[[Descriptor], Descriptor]
) -> tuple[int, int]:
    """Download ``todo`` in parallel (biggest first); returns (blobs, bytes)."""
    pulled = received = 0
    if todo:
        pool = ThreadPoolExecutor(max_workers=cl.settings.jobs, thread_name_prefix="pull")
        futures: list[Future[Descriptor]] = []
        try:
            futures = [pool.submit(fetch, b) for b in sorted(todo, key=lambda d: -d.size)]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                exc = f.exception() if f.done() else None
                if exc is not None:
                    raise exc
            for f in futures:
                b = f.result()
                pulled += 1
                received += b.size
        except BaseException:
            cl.settings.cancel.set()
            cl.close()  # in-flight downloads fail at once: none commits a blob after the caller cleaned up
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return pulled, received


def _invalid(r: Reference, man: ManifestData, why: BaseException | str) -> RegistryError:
    """The registry sent a manifest this tool cannot use."""
    if isinstance(why, KeyError):
        detail = f"a descriptor has no {why.args[0]!r}"
    elif isinstance(why, IdpError):
        detail = why.message
    else:
        detail = str(why)
    return RegistryError(
        f"pulling {r}: the registry sent an invalid manifest {man.digest} ({detail})",
        hint="the image in the registry is malformed: push it again, or inspect it with `skopeo inspect --raw`",
    )


def _document(r: Reference, man: ManifestData) -> dict[str, Any]:
    """The manifest's JSON object, or an error naming the image."""
    try:
        doc = json.loads(man.data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _invalid(r, man, "not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid(r, man, "not a JSON object")
    return doc


def _config_platform(
    store: Store, cl: RegistryClient, repo: str, cfg: Descriptor, want: Platform
) -> Platform | None:
    """For a single-manifest image, check ``--platform`` against its config."""
    if blob_problem(store.blob_path(cfg.digest), cfg.digest, cfg.size) is not None:
        cl.download_blob(
            repo, cfg.digest, cfg.size, lambda: store.blob_writer(expected=cfg.digest, size=cfg.size)
        )
    conf: Any = json.loads(store.read_blob(cfg.digest))
    got = Platform(str(conf.get("os", "linux")), str(conf.get("architecture", "amd64")), conf.get("variant"))
    if not want.matches(got):
        raise NotFoundError(
            f"the image is for {got}, not {want}", hint="pull without --platform or pick another tag"
        )
    return got


def _record_locations(store: Store, registry: str, repo: str, digests: list[Digest]) -> None:
    loc = BlobLocations(store.path_for("registry") / "blob-locations.json")
    loc.record(registry, repo, digests)
    loc.save()
