"""``--cache-to`` / ``--cache-from``: a build pushes its cache, a fresh store (a new CI machine) imports it and
every layer step is CACHED with the same image digest; the document is BuildKit's cache manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import run_cli
from fixtures.images import BUSYBOX_REF, make_busybox_store
from fixtures.registry import copy_to_registry
from idpbuilder.builder.remote_cache import MT_CACHE_CONFIG, parse_cache_spec
from idpbuilder.errors import UsageError

from .conftest import ok

DOCKERFILE = """\
FROM {base} AS build
WORKDIR /src
COPY app.sh .
RUN sed 's/VERSION/1.0/' app.sh > /app.sh && chmod +x /app.sh
FROM {base} AS unused-by-final
RUN echo side > /side
FROM {base}
LABEL org.opencontainers.image.title=cache-demo
COPY --from=build /app.sh /usr/local/bin/app
RUN mkdir -p /data && echo data > /data/file
CMD ["app"]
"""


SINGLE = """\
FROM {base}
WORKDIR /src
COPY app.sh .
RUN sed -i 's/VERSION/1.0/' app.sh && chmod +x app.sh
ENV MODE=min
CMD ["/src/app.sh"]
"""


def _context(tmp_path: Path, base: str, dockerfile: str = DOCKERFILE) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile.format(base=base))
    (ctx / "app.sh").write_text("#!/bin/sh\necho app VERSION\n")
    return ctx


def _image_digest(home: Path, ref: str) -> str:
    idx = json.loads((home / "store" / "index.json").read_text())
    for m in idx["manifests"]:
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
            return str(m["digest"])
    raise AssertionError(f"{ref} not in the store")


@pytest.fixture
def base_in_registry(registry_plain: Any, tmp_path: Path) -> str:
    seed = tmp_path / "seed"
    make_busybox_store(seed, BUSYBOX_REF)
    copy_to_registry(f"oci:{seed / 'store'}:{BUSYBOX_REF}", registry_plain, "cachetest/busybox:1")
    return f"{registry_plain.host}/cachetest/busybox:1"


@pytest.mark.parametrize("mode", ["max", "min"])
def test_registry_cache_round_trip_on_a_fresh_store(
    tmp_path: Path, registry_plain: Any, base_in_registry: str, mode: str
) -> None:
    # mode=min exports the final image's stages only: a stage it copies from is rebuilt on a fresh machine,
    # and (our COPY --from key being that stage's layers) the copy misses; so min is shown single-stage
    ctx = _context(tmp_path, base_in_registry, DOCKERFILE if mode == "max" else SINGLE)
    cache_ref = f"{registry_plain.host}/cachetest/app:buildcache-{mode}"
    tag = f"{registry_plain.host}/cachetest/app:1"
    ci1 = tmp_path / "ci1"
    r = ok(run_cli(["build", "--progress", "plain", "-t", tag, "--cache-to",
                    f"type=registry,ref={cache_ref},mode={mode}", str(ctx)], home=ci1))  # fmt: skip
    assert f"Exported build cache ({mode}) to {cache_ref}@sha256:" in r.stderr, r.stderr
    first = _image_digest(ci1, tag)

    # the cache manifest is BuildKit's: an OCI manifest whose config is a cacheconfig.v0 document
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{cache_ref}"],
                         check=True, capture_output=True, text=True)  # fmt: skip
    manifest = json.loads(raw.stdout)
    assert manifest["config"]["mediaType"] == MT_CACHE_CONFIG
    assert all("containerd.io/uncompressed" in layer["annotations"] for layer in manifest["layers"])

    # a new CI machine: empty store, the base pulled again; every step comes from the imported cache
    ci2 = tmp_path / "ci2"
    r = ok(run_cli(["build", "--progress", "plain", "-t", tag, "--cache-from",
                    f"type=registry,ref={cache_ref}", str(ctx)], home=ci2))  # fmt: skip
    assert "Imported" in r.stderr, r.stderr
    steps = [line for line in r.stderr.splitlines() if line.startswith("[")]
    numbered = [s for s in steps if " FROM " not in s]
    assert numbered and r.stderr.count("CACHED") == len(numbered), r.stderr
    assert _image_digest(ci2, tag) == first
    if mode == "max":  # a stage the target does not need is neither built nor exported
        assert "unused-by-final" not in r.stderr


def test_local_cache_round_trip_and_missing_cache(tmp_path: Path, base_in_registry: str) -> None:
    ctx = _context(tmp_path, base_in_registry)
    cache_dir = tmp_path / "cache"
    ok(run_cli(["build", "-t", "localhost/lc:1", "--cache-to", f"type=local,dest={cache_dir},mode=max",
                str(ctx)], home=tmp_path / "a"))  # fmt: skip
    index = json.loads((cache_dir / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    r = ok(run_cli(["build", "--progress", "plain", "-t", "localhost/lc:1", "--cache-from",
                    f"type=local,src={cache_dir}", str(ctx)], home=tmp_path / "b"))  # fmt: skip
    assert "(5/5 steps cached)" in r.stderr or r.stderr.count("CACHED") >= 5, r.stderr
    assert _image_digest(tmp_path / "a", "localhost/lc:1") == _image_digest(tmp_path / "b", "localhost/lc:1")
    # no cache yet (the first CI run): a warning, and the build goes on
    r = ok(run_cli(["build", "-t", "localhost/lc:2", "--cache-from", f"type=local,src={tmp_path / 'none'}",
                    str(ctx)], home=tmp_path / "c"))  # fmt: skip
    assert "not found" in r.stderr


def test_missing_registry_cache_is_a_warning(
    tmp_path: Path, registry_plain: Any, base_in_registry: str
) -> None:
    ctx = _context(tmp_path, base_in_registry)
    r = ok(run_cli(["build", "-t", "localhost/x:1", "--cache-from",
                    f"{registry_plain.host}/cachetest/nothing:here", str(ctx)], home=tmp_path / "h"))  # fmt: skip
    assert "not found" in r.stderr


@pytest.mark.parametrize(
    ("text", "export"),
    [("type=registry", True), ("type=local,src=/x", True), ("type=local,dest=/x", False),
     ("type=s3,ref=x", True), ("type=registry,ref=r/x:1,mode=all", True), ("type=registry,ref=r/x,foo=1", False)],
)  # fmt: skip
def test_bad_cache_specs(text: str, export: bool) -> None:
    with pytest.raises(UsageError) as e:
        parse_cache_spec(text, export=export)
    assert e.value.hint


def test_plain_ref_is_a_registry_cache() -> None:
    s = parse_cache_spec("reg.example:5000/team/app:cache", export=False)
    assert (s.type, s.ref, s.mode) == ("registry", "reg.example:5000/team/app:cache", "min")
    s = parse_cache_spec(
        "type=registry,ref=r.example/a:c,mode=max,image-manifest=true,oci-mediatypes=true", export=True
    )
    assert s.mode == "max"


def test_document_shape_min_and_max(tmp_path: Path) -> None:
    """min keeps the final image's stages only; results point at the top of a parent-linked layer chain."""
    from idpbuilder.builder import Builder, BuildOptions
    from idpbuilder.builder.remote_cache import cache_document
    from idpbuilder.store.layout import Store

    home = tmp_path / "h"
    make_busybox_store(home, BUSYBOX_REF)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {BUSYBOX_REF} AS a\nCOPY f /f\nFROM scratch\nCOPY --from=a /f /g\nCOPY f /h\n"
    )
    (ctx / "f").write_text("x")
    store = Store.open(home)
    try:
        res = Builder(store, BuildOptions(context=ctx)).build()
    finally:
        store.close()
    doc_max, layers_max = cache_document(res.cache_entries, mode="max", final_stages=res.final_stages)
    doc_min, layers_min = cache_document(res.cache_entries, mode="min", final_stages=res.final_stages)
    assert len(doc_max["records"]) == 3 and len(doc_min["records"]) == 2
    assert len(layers_max) == 4 and len(layers_min) == 2  # busybox + a's COPY; the final two COPYs
    top = doc_min["records"][1]["layers"][0]["layer"]
    assert doc_min["layers"][top]["parent"] == doc_min["records"][0]["layers"][0]["layer"]
    assert doc_min["records"][1]["inputs"] == [[{"link": 0}]]
    for layer in doc_max["layers"]:
        assert layer["annotations"]["diffID"].startswith("sha256:")


def test_index_form_is_read_too(tmp_path: Path, base_in_registry: str) -> None:
    """BuildKit's default form (an OCI index listing the layers and the cacheconfig) imports as well."""
    ctx = _context(tmp_path, base_in_registry, SINGLE)
    cache_dir = tmp_path / "cache"
    ok(run_cli(["build", "-t", "localhost/ix:1", "--cache-to", f"type=local,dest={cache_dir}", str(ctx)],
               home=tmp_path / "a"))  # fmt: skip
    index = json.loads((cache_dir / "index.json").read_text())
    blobs = cache_dir / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_bytes())
    as_index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [*manifest["layers"], manifest["config"]]}).encode()  # fmt: skip
    import hashlib

    digest = hashlib.sha256(as_index).hexdigest()
    (blobs / digest).write_bytes(as_index)
    index["manifests"][0].update(digest=f"sha256:{digest}", size=len(as_index),
                                 mediaType="application/vnd.oci.image.index.v1+json")  # fmt: skip
    (cache_dir / "index.json").write_text(json.dumps(index))
    r = ok(run_cli(["build", "--progress", "plain", "-t", "localhost/ix:1", "--cache-from",
                    f"type=local,src={cache_dir}", str(ctx)], home=tmp_path / "b"))  # fmt: skip
    assert "(3/4 steps cached)" in r.stderr, r.stderr
