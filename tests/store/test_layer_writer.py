"""LayerWriter: the same tar bytes tarfile's stream mode gives, compressed in exact 1 MiB blocks, whether the
worker thread runs (large layers) or not (small ones); a failure ends the worker and leaves no blob."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
from pathlib import Path

import pytest

from idpbuilder.image import LayerWriter
from idpbuilder.image import layer as layer_mod
from idpbuilder.store import Store

MiB = 1 << 20


def _members(sizes: list[int]) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    d = tarfile.TarInfo("dir")
    d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
    out.append((d, None))
    for i, size in enumerate(sizes):
        info = tarfile.TarInfo(f"dir/f{i}")
        info.size, info.mode, info.mtime, info.uid = size, 0o644, 1_600_000_000 + i, i
        out.append((info, (hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1))[:size]))
    link = tarfile.TarInfo("dir/link")
    link.type, link.linkname, link.mode = tarfile.SYMTYPE, "f0", 0o777
    out.append((link, None))
    return out


def _reference_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT, bufsize=MiB) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _blocks_gzip(raw: bytes) -> bytes:
    comp = layer_mod._gzip_compressor(1)
    out = [comp.compress(raw[i : i + MiB]) for i in range(0, len(raw), MiB)]
    return b"".join(out) + comp.flush()


@pytest.mark.parametrize(
    "sizes", [[10, 0, 700], [3 * MiB + 5, 12_345, MiB, 2 * MiB - 1]], ids=["small", "large"]
)
def test_same_bytes_as_the_stream_mode(tmp_path: Path, sizes: list[int]) -> None:
    store = Store.open(tmp_path / "home")
    members = _members(sizes)
    with LayerWriter(store) as w:
        for info, data in members:
            w.add_entry(info, io.BytesIO(data) if data is not None else None)
    raw = _reference_tar(members)
    layer = w.result
    blob = store.blob_path(layer.descriptor.digest).read_bytes()
    assert gzip.decompress(blob) == raw
    assert str(layer.diff_id) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob == _blocks_gzip(raw)  # the same compressed bytes as exact 1 MiB blocks give
    store.close()


def test_failure_in_the_worker_aborts_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path / "home")
    calls = {"n": 0}
    real = layer_mod._Sink._process

    def failing(self: layer_mod._Sink, chunk: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # in the worker thread (the second block on)
            raise OSError(28, "No space left on device")
        real(self, chunk)

    monkeypatch.setattr(layer_mod._Sink, "_process", failing)
    members = _members([6 * MiB])
    with pytest.raises(OSError, match="No space left"):
        with LayerWriter(store) as w:
            for info, data in members:
                w.add_entry(info, io.BytesIO(data) if data is not None else None)
    assert calls["n"] >= 3  # the failure happened in the worker, from the second block on
    # the worker was ended before the blob was aborted: no thread left, no blob, no temp file
    assert not [t for t in threading.enumerate() if t.name == "layer-compress"]
    assert not list((store.root / "blobs").rglob("*/*"))
    assert not list((store.home / "tmp").glob("*"))
    store.close()
