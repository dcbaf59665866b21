"""Build cache export and import (``--cache-to`` / ``--cache-from``) in BuildKit's distributable cache format,
so a fresh CI machine reuses the layers of an earlier build.

The cache is one OCI image manifest (BuildKit's ``image-manifest=true`` form): its config is a
``application/vnd.buildkit.cacheconfig.v0`` document, its layers the layer blobs the records point to (each
annotated with ``containerd.io/uncompressed`` = diff_id and ``buildkit/createdat``). The config lists
``layers`` (blob + parent layer index: the chain a result stands on) and ``records`` (``digest`` = the cache
key, ``layers`` = the results, ``inputs`` = the record it follows). The keys are idpbuilder's own
(``builder/cache.py``) and every record also carries idpbuilder's stored record under ``idpbuilder.record``
(BuildKit ignores unknown fields), so a rebuild reproduces history times and the image digest exactly.
Import reads that form and BuildKit's older OCI-index form. Registry (``type=registry,ref=REF``) or an OCI
layout directory (``type=local,dest=DIR`` / ``src=DIR``, the manifest tagged ``latest`` in ``index.json``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from idpbuilder._records import dataclass
from idpbuilder.builder.options import BuildResult, CacheEntry
from idpbuilder.digest import Digest
from idpbuilder.errors import IdpError, NotFoundError, UsageError
from idpbuilder.oci import ANNOTATION_REF_NAME, INDEX_TYPES, MT_OCI_INDEX, MT_OCI_MANIFEST, Descriptor
from idpbuilder.reference import Reference
from idpbuilder.store.layout import Store

if TYPE_CHECKING:  # the registry client (urllib3) is loaded only when a registry cache is used
    from idpbuilder.registry.client import RegistryClient

__all__ = [
    "MT_CACHE_CONFIG",
    "CacheSpec",
    "Connect",
    "cache_document",
    "export_cache",
    "import_cache",
    "parse_cache_spec",
]

log = logging.getLogger("idpbuilder.builder.cache")

MT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
ANN_UNCOMPRESSED = "containerd.io/uncompressed"
ANN_CREATED = "buildkit/createdat"
RECORD_FIELD = "idpbuilder.record"
_HINT_TO = "use --cache-to type=registry,ref=REPO:TAG[,mode=max] or type=local,dest=DIR"
_HINT_FROM = "use --cache-from type=registry,ref=REPO:TAG or type=local,src=DIR"


@dataclass(frozen=True)
class CacheSpec:
    """One ``--cache-to``/``--cache-from``: ``registry`` + ``ref``, or ``local`` + ``path``; ``mode`` min|max."""

    type: str
    ref: str = ""
    path: str = ""
    mode: str = "min"

    def describe(self) -> str:
        """``REF`` or ``DIR``, for messages."""
        return self.ref or self.path


class Connection(Protocol):
    """An open registry connection (the CLI's ``RegistryConnection``)."""

    @property
    def client(self) -> RegistryClient: ...

    @property
    def reference(self) -> Reference | None: ...

    def close(self) -> None: ...


# opens the registry of a reference (True: as a push target), credentials and TLS trust resolved
Connect = Callable[[str, bool], Connection]


def parse_cache_spec(text: str, *, export: bool) -> CacheSpec:
    """``type=registry,ref=R[,mode=max]``, ``type=local,dest=DIR`` (export) / ``src=DIR`` (import), or a
    bare ``REF`` (buildx: ``type=registry,ref=REF``)."""
    hint = _HINT_TO if export else _HINT_FROM
    flag = "--cache-to" if export else "--cache-from"
    if "=" not in text:
        if not text:
            raise UsageError(f"empty {flag}", hint=hint)
        Reference.parse(text)
        return CacheSpec("registry", ref=text)
    fields: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"invalid {flag} {text!r}: {part!r} is not KEY=VALUE", hint=hint)
        fields[k.strip().lower()] = v.strip()
    kind = fields.pop("type", "registry")
    mode = fields.pop("mode", "min")
    if mode not in ("min", "max"):
        raise UsageError(f"invalid {flag} mode {mode!r}", hint="use mode=min or mode=max")
    for ignored in ("image-manifest", "oci-mediatypes", "compression", "ignore-error", "tag"):
        fields.pop(ignored, None)  # buildx options this format already satisfies
    if kind == "registry":
        ref = fields.pop("ref", "")
        if not ref:
            raise UsageError(f"{flag} type=registry needs ref=REPO:TAG", hint=hint)
        Reference.parse(ref)
        spec = CacheSpec("registry", ref=ref, mode=mode)
    elif kind == "local":
        path = fields.pop("dest" if export else "src", "")
        if not path:
            raise UsageError(f"{flag} type=local needs {'dest' if export else 'src'}=DIR", hint=hint)
        spec = CacheSpec("local", path=path, mode=mode)
    else:
        raise UsageError(f"unsupported {flag} type {kind!r}", hint=hint)
    if fields:
        raise UsageError(f"unknown {flag} option {sorted(fields)[0]!r}", hint=hint)
    return spec


# ------------------------------------------------------------------------------------------ the document
def cache_document(
    entries: Sequence[CacheEntry], *, mode: str, final_stages: frozenset[int]
) -> tuple[dict[str, Any], list[Descriptor]]:
    """The cacheconfig document for ``entries`` (mode ``min``: the final image's stages only) and the layer
    descriptors it needs, in its ``layers`` order."""
    layers: list[dict[str, Any]] = []
    descs: list[Descriptor] = []
    layer_at: dict[tuple[str, int], int] = {}
    records: list[dict[str, Any]] = []
    record_at: dict[str, int] = {}

    def chain(stack: Sequence[Any]) -> int:
        parent = -1
        for layer in stack:
            k = (str(layer.descriptor.digest), parent)
            if k not in layer_at:
                layer_at[k] = len(layers)
                entry: dict[str, Any] = {
                    "blob": str(layer.descriptor.digest),
                    "annotations": {
                        "mediaType": layer.descriptor.media_type,
                        "diffID": str(layer.diff_id),
                        "size": layer.descriptor.size,
                    },
                }
                if parent >= 0:
                    entry["parent"] = parent
                layers.append(entry)
                descs.append(
                    Descriptor(
                        layer.descriptor.media_type,
                        layer.descriptor.digest,
                        layer.descriptor.size,
                        annotations={ANN_UNCOMPRESSED: str(layer.diff_id)},
                    )
                )
            parent = layer_at[k]
        return parent

    for e in entries:
        if mode == "min" and e.stage not in final_stages:
            continue
        if e.key in record_at:
            continue
        rec: dict[str, Any] = {"digest": e.key, RECORD_FIELD: dict(e.record)}
        if e.record.get("layer") and e.layers:
            top = chain(e.layers)
            created = str(e.record.get("created") or "")
            rec["layers"] = [{"layer": top, **({"createdAt": created} if created else {})}]
            if created:
                layers[top]["annotations"]["createdAt"] = created
        if e.parent in record_at:
            rec["inputs"] = [[{"link": record_at[e.parent]}]]
        record_at[e.key] = len(records)
        records.append(rec)
    # blob descriptors carry the creation time as BuildKit's index form does
    for d, entry in zip(descs, layers, strict=True):
        created = entry["annotations"].get("createdAt")
        if created:
            d.annotations[ANN_CREATED] = created
    return {"layers": layers, "records": records}, descs


def _manifest(config: bytes, layers: list[Descriptor]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": Descriptor.for_bytes(MT_CACHE_CONFIG, config).to_json(),
        "layers": [d.to_json() for d in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _unique(descs: list[Descriptor]) -> list[Descriptor]:
    seen: set[Digest] = set()
    out: list[Descriptor] = []
    for d in descs:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


# ------------------------------------------------------------------------------------------ export
def export_cache(store: Store, spec: CacheSpec, result: BuildResult, connect: Connect | None) -> str:
    """Write the build's cache records where ``spec`` says; returns ``REF@sha256:…`` or the directory."""
    doc, descs = cache_document(result.cache_entries, mode=spec.mode, final_stages=result.final_stages)
    config = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    layers = _unique(descs)
    manifest = _manifest(config, layers)
    if spec.type == "local":
        return _export_local(store, Path(spec.path).expanduser(), config, manifest, layers)
    if connect is None:
        raise UsageError("--cache-to type=registry needs a registry connection")
    conn = connect(spec.ref, True)
    try:
        ref = conn.reference or Reference.parse(spec.ref)
        if ref.digest is not None:
            raise UsageError(f"--cache-to ref {spec.ref!r} has a digest", hint="give a tag: ref=REPO:TAG")
        cl, repo = conn.client, ref.repository
        config_digest = store.put_bytes(config)
        for d, path in [*((x.digest, store.blob_path(x.digest)) for x in layers),
                        (config_digest, store.blob_path(config_digest))]:  # fmt: skip
            if not cl.blob_exists(repo, d, push=True):
                cl.upload_blob(repo, d, path.stat().st_size, path)
        digest = cl.put_manifest(repo, ref.tag or "latest", manifest, MT_OCI_MANIFEST)
        return f"{ref.registry}/{repo}:{ref.tag or 'latest'}@{digest}"
    finally:
        conn.close()


def _export_local(store: Store, dest: Path, config: bytes, manifest: bytes, layers: list[Descriptor]) -> str:
    """An OCI layout at ``dest`` (created or added to) whose ``index.json`` tags the cache ``latest``."""
    import shutil

    from idpbuilder.digest import sha256_bytes

    blobs = dest / "blobs" / "sha256"
    try:
        blobs.mkdir(parents=True, exist_ok=True)
        for d in layers:
            target = blobs / d.digest.hex
            if not target.exists():
                part = target.with_name(f".{target.name}.{os.getpid()}")
                shutil.copyfile(store.blob_path(d.digest), part)
                os.replace(part, target)
        for data in (config, manifest):
            (blobs / sha256_bytes(data).hex).write_bytes(data)
        (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        desc = Descriptor.for_bytes(MT_OCI_MANIFEST, manifest, annotations={ANNOTATION_REF_NAME: "latest"})
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [desc.to_json()]}
        part = dest / f".index.json.{os.getpid()}"
        part.write_text(json.dumps(index, separators=(",", ":")))
        os.replace(part, dest / "index.json")
    except OSError as e:
        raise IdpError(
            f"cannot write the build cache to {str(dest)!r}: {e.strerror or e}",
            hint="give --cache-to type=local,dest= a writable directory",
        ) from None
    return str(dest)


# ------------------------------------------------------------------------------------------ import
class _Source(Protocol):
    def manifest(self) -> dict[str, Any]: ...

    def fetch(self, store: Store, d: Digest, size: int | None) -> None: ...


class _RegistrySource:
    def __init__(self, client: RegistryClient, ref: Reference) -> None:
        self.client, self.ref = client, ref

    def manifest(self) -> dict[str, Any]:
        tag = str(self.ref.digest) if self.ref.digest else (self.ref.tag or "latest")
        return self.client.get_manifest(self.ref.repository, tag).json()

    def fetch(self, store: Store, d: Digest, size: int | None) -> None:
        def sink() -> Any:
            return store.blob_writer(expected=d, size=size)

        self.client.download_blob(self.ref.repository, d, size, sink)


class _LocalSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _blob(self, d: Digest) -> Path:
        return self.root / "blobs" / d.algorithm / d.hex

    def manifest(self) -> dict[str, Any]:
        try:
            index = json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no build cache in {str(self.root)!r} (no index.json)") from None
        except (OSError, ValueError) as e:
            raise IdpError(f"cannot read the build cache in {str(self.root)!r}: {e}") from None
        mans = index.get("manifests") or []
        tagged = [m for m in mans if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == "latest"]
        chosen = (tagged or mans[-1:] or [None])[0]
        if chosen is None:
            raise NotFoundError(f"no build cache in {str(self.root)!r} (index.json is empty)")
        data: dict[str, Any] = json.loads(self._blob(Digest.parse(chosen["digest"])).read_bytes())
        return data

    def fetch(self, store: Store, d: Digest, size: int | None) -> None:
        store.put_file(self._blob(d), expected=d)


def _config_and_layers(doc: dict[str, Any], what: str) -> tuple[Descriptor, dict[Digest, Descriptor]]:
    if doc.get("mediaType") in INDEX_TYPES or ("manifests" in doc and "config" not in doc):
        entries = [Descriptor.from_json(m) for m in doc.get("manifests") or []]
        configs = [m for m in entries if m.media_type == MT_CACHE_CONFIG]
        others = [m for m in entries if m.media_type != MT_CACHE_CONFIG]
    else:
        cfg = doc.get("config")
        configs = [Descriptor.from_json(cfg)] if cfg and cfg.get("mediaType") == MT_CACHE_CONFIG else []
        others = [Descriptor.from_json(m) for m in doc.get("layers") or []]
    if not configs:
        raise IdpError(
            f"{what} is not a build cache (no {MT_CACHE_CONFIG} config)",
            hint="point --cache-from at a ref written by --cache-to (not at the image itself)",
        )
    return configs[0], {d.digest: d for d in others}


def import_cache(store: Store, spec: CacheSpec, connect: Connect | None) -> int:
    """Copy the cache records of ``spec`` (and the layer blobs they need) into the store's build cache;
    returns how many records were added. A missing cache is not an error (the first CI run has none)."""
    what = f"build cache {spec.describe()}"
    conn: Connection | None = None
    try:
        source: _Source
        if spec.type == "local":
            source = _LocalSource(Path(spec.path).expanduser())
        else:
            if connect is None:
                raise UsageError("--cache-from type=registry needs a registry connection")
            conn = connect(spec.ref, False)
            source = _RegistrySource(conn.client, conn.reference or Reference.parse(spec.ref).for_pull())
        try:
            doc = source.manifest()
        except NotFoundError as e:
            log.warning("%s not found, building without it (%s)", what, e.message)
            return 0
        config_desc, layer_descs = _config_and_layers(doc, what)
        if not store.has_blob(config_desc.digest):
            source.fetch(store, config_desc.digest, config_desc.size)
        config = store.read_json(config_desc.digest)
        return _import_records(store, source, config, layer_descs)
    finally:
        if conn is not None:
            conn.close()


def _import_records(
    store: Store, source: _Source, config: dict[str, Any], layer_descs: dict[Digest, Descriptor]
) -> int:
    added = 0
    for rec in config.get("records") or []:
        ours = rec.get(RECORD_FIELD)
        key = rec.get("digest")
        if not isinstance(ours, dict) or not isinstance(key, str) or store.cache_get(key) is not None:
            continue  # BuildKit's own records use BuildKit's keys: nothing here can hit them
        blobs: list[Digest] = []
        layer = ours.get("layer")
        if layer:
            desc = Descriptor.from_json(layer)
            if not store.has_blob(desc.digest):
                known = layer_descs.get(desc.digest)
                source.fetch(store, desc.digest, (known or desc).size)
            blobs.append(desc.digest)
        store.cache_put(key, ours, blobs)
        added += 1
    return added
