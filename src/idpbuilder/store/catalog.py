"""What the store holds, as ``idpbuilder images`` lists it: one row per tagged reference, newest first."""

from __future__ import annotations

import datetime as _dt
import fnmatch
from collections.abc import Mapping
from typing import Any

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.errors import NotFoundError, StoreError, UsageError
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform
from idpbuilder.reference import DOCKER_HUB, Reference
from idpbuilder.store.layout import Store

__all__ = ["ImageFilter", "ImageRow", "list_images", "parse_created"]


def parse_created(value: Any) -> _dt.datetime | None:
    """Parse an image config ``created`` timestamp (RFC 3339, nanoseconds allowed); None when absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Go writes up to 9
    if "." in text:
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        rest = frac[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        dt = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return dt


def _normalized_name(ref: Reference) -> str:
    """``registry/repository`` with Docker Hub defaults, for matching names typed either way."""
    r = ref if ref.registry else ref.with_registry(DOCKER_HUB)
    return r.name


@dataclass(frozen=True)
class ImageRow:
    """One tagged reference in the local store, with what `images` shows about it."""

    name: str  # the full reference kept in the store
    repository: str  # familiar repository name, or <none>
    tag: str  # tag, or <none>
    image_id: Digest  # config digest (index digest for a multi-platform index)
    digest: Digest  # manifest (or index) digest
    media_type: str
    created: _dt.datetime | None
    size: int  # compressed layers + config (of the host platform's manifest for an index)
    platform: str | None
    labels: Mapping[str, str] = field(default_factory=dict)


def _pick_manifest(store: Store, index: dict[str, Any]) -> dict[str, Any] | None:
    """The host platform's manifest from an index (first manifest otherwise); None if none is stored."""
    host = Platform.host()
    entries = [
        m for m in index.get("manifests", []) if m.get("mediaType") in MANIFEST_TYPES or "platform" in m
    ]
    entries.sort(
        key=lambda m: 0 if m.get("platform") and host.matches(Platform.from_json(m["platform"])) else 1
    )
    for m in entries:
        try:
            d = Digest.parse(str(m["digest"]))
        except (KeyError, UsageError):
            continue
        if store.has_blob(d):
            doc = store.read_json(d)
            if isinstance(doc, dict) and "config" in doc:
                return doc
    return None


def _describe(store: Store, name: str, desc: Descriptor) -> ImageRow:
    try:
        return _describe_stored(store, name, desc)
    except (NotFoundError, StoreError):
        # a damaged entry (e.g. a blob deleted by hand) is listed, not allowed to break the whole listing
        ref = _parse_or_none(name)
        return ImageRow(
            name=name,
            repository=ref.familiar_name if ref else name,
            tag=(ref.tag or "<none>") if ref else "<none>",
            image_id=desc.digest,
            digest=desc.digest,
            media_type=desc.media_type,
            created=None,
            size=0,
            platform=None,
        )


def _parse_or_none(name: str) -> Reference | None:
    try:
        return Reference.parse(name)
    except UsageError:
        return None


def _describe_stored(store: Store, name: str, desc: Descriptor) -> ImageRow:
    ref = _parse_or_none(name)
    doc = store.read_json(desc.digest)
    if not isinstance(doc, dict):
        raise StoreError(f"stored manifest {desc.digest} of {name} is not a JSON object")
    is_index = desc.media_type in INDEX_TYPES or ("manifests" in doc and "layers" not in doc)
    manifest = _pick_manifest(store, doc) if is_index else doc
    config: dict[str, Any] = {}
    size = 0
    image_id = desc.digest
    if manifest is not None and isinstance(manifest.get("config"), dict):
        cdesc = Descriptor.from_json(manifest["config"])
        if not is_index:
            image_id = cdesc.digest
        size = cdesc.size + sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        if store.has_blob(cdesc.digest):
            loaded = store.read_json(cdesc.digest)
            config = loaded if isinstance(loaded, dict) else {}
    labels = (config.get("config") or {}).get("Labels") or {}
    plat = None
    if config.get("os") or config.get("architecture"):
        plat = str(Platform.from_json(config))
    return ImageRow(
        name=name,
        repository=ref.familiar_name if ref else name,
        tag=(ref.tag or "<none>") if ref else "<none>",
        image_id=image_id,
        digest=desc.digest,
        media_type=desc.media_type,
        created=parse_created(config.get("created")),
        size=size,
        platform=plat,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def _matches(name: str, pattern: str) -> bool:
    """docker's reference filter: familiar or full repository name, optional tag, shell wildcards."""
    try:
        ref = Reference.parse(name)
    except UsageError:
        return fnmatch.fnmatchcase(name, pattern)
    repo_pat, tag_pat = pattern, None
    slash, colon = pattern.rfind("/"), pattern.rfind(":")
    if colon > slash:
        repo_pat, tag_pat = pattern[:colon], pattern[colon + 1 :]
    if tag_pat is not None and not fnmatch.fnmatchcase(ref.tag or "", tag_pat):
        return False
    if any(ch in repo_pat for ch in "*?["):
        return fnmatch.fnmatchcase(ref.familiar_name, repo_pat) or fnmatch.fnmatchcase(ref.name, repo_pat)
    try:
        want = Reference.parse(repo_pat)
    except UsageError:
        return False
    return _normalized_name(want) == _normalized_name(ref)


_FILTER_HINT = "filters: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE"


@dataclass(frozen=True)
class ImageFilter:
    """``images --filter`` as docker applies it: different keys must all match; several ``reference`` values
    match any of them; every ``label`` must match; ``before``/``since`` compare with that image's creation time.
    """

    dangling: bool | None = None
    references: tuple[str, ...] = ()
    labels: tuple[tuple[str, str | None], ...] = ()
    before: str | None = None
    since: str | None = None

    @classmethod
    def parse(cls, specs: tuple[str, ...] | list[str]) -> ImageFilter:
        """``["dangling=true", "label=a=b"]`` → a filter; UsageError naming a bad one."""
        dangling: bool | None = None
        refs: list[str] = []
        labels: list[tuple[str, str | None]] = []
        before = since = None
        for spec in specs:
            key, sep, value = spec.partition("=")
            key = key.strip().lower()
            if not sep or not key:
                raise UsageError(f"bad format of filter {spec!r} (expected name=value)", hint=_FILTER_HINT)
            if key == "dangling":
                v = value.strip().lower()
                if v not in ("true", "false", "1", "0"):
                    raise UsageError(
                        f"invalid filter 'dangling={value}'", hint="use dangling=true or dangling=false"
                    )
                dangling = v in ("true", "1")
            elif key == "reference":
                refs.append(value)
            elif key == "label":
                k, eq, v2 = value.partition("=")
                labels.append((k, v2 if eq else None))
            elif key == "before":
                before = value
            elif key == "since":
                since = value
            else:
                raise UsageError(f"invalid filter {key!r}", hint=_FILTER_HINT)
        return cls(dangling, tuple(refs), tuple(labels), before, since)

    def apply(self, store: Store, rows: list[ImageRow]) -> list[ImageRow]:
        """The rows this filter keeps."""
        before = self._created(store, self.before) if self.before else None
        since = self._created(store, self.since) if self.since else None
        out = []
        for r in rows:
            untagged = r.tag == "<none>"
            if self.dangling is not None and untagged != self.dangling:
                continue
            if self.references and (untagged or not any(_matches(r.name, p) for p in self.references)):
                continue
            if any(k not in r.labels or (v is not None and r.labels[k] != v) for k, v in self.labels):
                continue
            if before is not None and (r.created is None or r.created >= before):
                continue
            if since is not None and (r.created is None or r.created <= since):
                continue
            out.append(r)
        return out

    @staticmethod
    def _created(store: Store, text: str) -> _dt.datetime:
        desc = store.resolve(text)
        created = _describe(store, text, desc).created
        if created is None:
            raise UsageError(f"image {text!r} has no creation time to compare with", hint=_FILTER_HINT)
        return created


def list_images(store: Store, pattern: str | None = None) -> list[ImageRow]:
    """Every tagged image in the store (optionally filtered by REPO[:TAG]), newest first."""
    rows = [
        _describe(store, n or "<none>", d)
        for n, d in store.entries()
        if (n is None and pattern is None) or (n is not None and (pattern is None or _matches(n, pattern)))
    ]
    epoch = _dt.datetime.fromtimestamp(0, _dt.UTC)
    rows.sort(key=lambda r: (-(r.created or epoch).timestamp(), r.repository, r.tag))
    return rows
