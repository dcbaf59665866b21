"""SafeTarInfo reads what real tools write exactly as tarfile does (sparse formats, long names, xattrs),
and refuses the hostile corpus in linear time."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from idpbuilder.errors import BuildError
from idpbuilder.sandbox.tarread import iter_members, open_tar_stream

from .corpus import cve_2024_6232, cve_valid_records, huge_pax


def _listing(data: bytes, *, safe: bool) -> list[tuple[str, int, str, dict[str, str]]]:
    f = io.BytesIO(data)
    tf = open_tar_stream(f, what="t") if safe else tarfile.open(fileobj=f, mode="r|")
    out = []
    members = iter_members(tf, what="t", budget=None) if safe else tf
    for m in members:
        src = tf.extractfile(m) if m.isreg() else None
        digest = hashlib.sha256(src.read() if src else b"").hexdigest()
        out.append((m.name, m.size, digest, dict(m.pax_headers)))
    return out


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar")
@pytest.mark.parametrize(
    "args",
    [
        ["--format=gnu"],
        ["--format=pax"],
        *[["--format=pax", f"--sparse-version={v}"] for v in ("0.0", "0.1", "1.0")],
    ],
)
def test_same_members_as_tarfile(args: list[str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.truncate(3 << 20)
        f.seek(1 << 20)
        f.write(b"hello")
    (src / ("long-" + "n" * 200)).write_text("x")
    (src / "ü-utf8").write_text("y")
    out = tmp_path / "t.tar"
    subprocess.run(["tar", "--sparse", *args, "-cf", str(out), "-C", str(src), "."], check=True)
    data = out.read_bytes()
    assert _listing(data, safe=True) == _listing(data, safe=False)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make", [cve_2024_6232, cve_valid_records, huge_pax])
def test_hostile_headers_in_linear_time(make: object) -> None:
    data = make()  # type: ignore[operator]
    t0 = time.monotonic()
    try:
        _listing(data, safe=True)
    except BuildError as e:
        assert "not a valid tar archive" in str(e)
    assert time.monotonic() - t0 < 2
