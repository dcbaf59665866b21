"""Push an image (manifest or index) to a registry: blobs in parallel, each once, manifests last.

Per blob: ``HEAD`` (skip when present) → cross-repo mount when a blob-location record names another
repository of the same registry → upload (monolithic or chunked). Index children are pushed by digest
before the index; the root manifest is pushed last under the tag.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, RegistryError
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES, Descriptor
from idpbuilder.reference import Reference
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.locations import BlobLocations
from idpbuilder.registry.progress import NullReporter, Outcome, Reporter
from idpbuilder.registry.source import ImageSource

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["PushResult", "PushStats", "push_image"]

log = logging.getLogger("idpbuilder.registry")


@dataclass
class PushStats:
    """What a push did."""

    pushed: int = 0
    existed: int = 0
    mounted: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    outcomes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushResult:
    """The pushed reference with the manifest digest (``REF@sha256:…``) and statistics."""

    reference: Reference
    digest: Digest
    media_type: str
    stats: PushStats

    @property
    def pinned(self) -> str:
        """``registry/repo:tag@sha256:…``."""
        return (
            f"{self.reference.name}"
            + (f":{self.reference.tag}" if self.reference.tag else "")
            + f"@{self.digest}"
        )


@dataclass(frozen=True)
class _Plan:
    manifests: list[tuple[Descriptor, bytes]]  # children first, root last
    blobs: list[tuple[Descriptor, str]]  # (descriptor, label), unique digests


def _plan(source: ImageSource) -> _Plan:
    root = source.root
    manifests: list[tuple[Descriptor, bytes]] = []
    blobs: dict[Digest, tuple[Descriptor, str]] = {}

    def add_manifest(desc: Descriptor, data: bytes) -> None:
        doc = _json(data, desc)
        cfg = doc.get("config")
        if isinstance(cfg, dict):
            c = Descriptor.from_json(cfg)
            blobs.setdefault(c.digest, (c, "config"))
        for i, layer in enumerate(doc.get("layers") or []):
            ld = Descriptor.from_json(layer)
            blobs.setdefault(ld.digest, (ld, f"layer {i + 1}"))
        manifests.append((desc, data))

    root_data = source.read_blob(root.digest)
    media_type = root.media_type or str(_json(root_data, root).get("mediaType") or "")
    root = Descriptor(media_type, root.digest, root.size, platform=root.platform)
    if media_type in INDEX_TYPES:
        index = _json(root_data, root)
        for m in index.get("manifests") or []:
            child = Descriptor.from_json(m)
            if child.media_type in INDEX_TYPES:
                raise RegistryError(
                    f"{source.description}: nested indexes are not supported",
                    hint="push a single-platform image or a flat index",
                )
            add_manifest(child, source.read_blob(child.digest))
        manifests.append((root, root_data))
    elif media_type in MANIFEST_TYPES:
        add_manifest(root, root_data)
    else:
        raise RegistryError(f"{source.description}: unsupported manifest type {media_type or 'unknown'}")
    return _Plan(manifests, list(blobs.values()))


def _json(data: bytes, desc: Descriptor) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RegistryError(f"manifest {desc.digest} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise RegistryError(f"manifest {desc.digest} is not a JSON object")
    return obj


def push_image(
    source: ImageSource,
    target: Reference,
    client: RegistryClient,
    *,
    reporter: Reporter | None = None,
    locations: BlobLocations | None = None,
) -> PushResult:
    """Push ``source`` to ``target`` (``registry`` must match the client); returns the manifest digest."""
    rep: Reporter = reporter or NullReporter()
    start = time.monotonic()
    repo = target.repository
    plan = _plan(source)
    root_desc, root_data = plan.manifests[-1]
    stats = PushStats()
    tag = target.tag or (None if target.digest else "latest")

    if tag is not None and client.head_manifest(repo, tag, push=True) == root_desc.digest:
        # the tag already points at this exact manifest: nothing to upload
        for desc, _ in plan.blobs:
            rep.blob_done(desc.digest, desc.size, "exists")
            stats.existed += 1
            stats.outcomes[str(desc.digest)] = "exists"
        stats.seconds = time.monotonic() - start
        if locations is not None:
            locations.record(client.registry, repo, [d.digest for d, _ in plan.blobs])
        return PushResult(target, root_desc.digest, root_desc.media_type, stats)

    def push_blob(desc: Descriptor, label: str) -> tuple[Descriptor, Outcome]:
        if client.settings.cancel.is_set():
            return desc, "failed"
        if client.blob_exists(repo, desc.digest, push=True):
            rep.blob_done(desc.digest, desc.size, "exists")
            return desc, "exists"
        path = source.blob_path(desc.digest)
        mount_from = tuple(locations.repos(client.registry, desc.digest)) if locations is not None else ()
        rep.blob_start(desc.digest, desc.size, label)
        try:
            outcome = client.upload_blob(
                repo,
                desc.digest,
                desc.size,
                path,
                mount_from=mount_from,
                progress=lambda done: rep.blob_progress(desc.digest, done),
            )
        except DigestMismatchError as e:  # the local copy is damaged: say which image and blob
            raise DigestMismatchError(f"{e.message} ({label} of {source.description})", hint=e.hint) from None
        result: Outcome = "mounted" if outcome == "mounted" else "pushed"
        rep.blob_done(desc.digest, desc.size, result)
        return desc, result

    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait  # not needed by a warm push

    pool = ThreadPoolExecutor(max_workers=client.settings.jobs, thread_name_prefix="push")
    futures: list[Future[tuple[Descriptor, Outcome]]] = []
    try:
        # biggest first: the long uploads start early and small ones fill the gaps
        for desc, label in sorted(plan.blobs, key=lambda b: -b[0].size):
            futures.append(pool.submit(push_blob, desc, label))
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in futures:
            if f.done() and f.exception() is not None:
                client.settings.cancel.set()
                raise f.exception()  # type: ignore[misc]
        for f in futures:
            desc, outcome = f.result()
            stats.outcomes[str(desc.digest)] = outcome
            if outcome == "pushed":
                stats.pushed += 1
                stats.bytes_sent += desc.size
            elif outcome == "mounted":
                stats.mounted += 1
            elif outcome == "exists":
                stats.existed += 1
    except BaseException:
        client.settings.cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)

    for desc, data in plan.manifests[:-1]:
        rep.note(f"pushing manifest {desc.digest}")
        client.put_manifest(repo, str(desc.digest), data, desc.media_type)
    ref = tag if tag is not None else str(root_desc.digest)
    rep.note(f"pushing manifest {target.name}:{ref}" if tag else f"pushing manifest {target.name}@{ref}")
    digest = client.put_manifest(repo, ref, root_data, root_desc.media_type)
    if locations is not None:
        locations.record(client.registry, repo, [d.digest for d, _ in plan.blobs])
    stats.seconds = time.monotonic() - start
    pinned = target if target.tag or target.digest else Reference(target.registry, repo, "latest")
    return PushResult(pinned, digest, root_desc.media_type, stats)
