"""The blob-location cache (cross-repo mounts) is only rewritten when it learns something."""

from __future__ import annotations

from pathlib import Path

from idpbuilder.digest import sha256_bytes
from idpbuilder.registry.locations import BlobLocations


def test_recording_what_is_known_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "work" / "blob-locations.json"
    d1, d2 = sha256_bytes(b"one"), sha256_bytes(b"two")
    loc = BlobLocations(path)
    loc.record("reg:5000", "team/app", [d1, d2])
    loc.save()
    before = path.stat().st_mtime_ns
    inode = path.stat().st_ino

    again = BlobLocations(path)
    again.record("reg:5000", "team/app", [d1, d2])  # a warm push of the same image
    again.save()
    assert path.stat().st_ino == inode and path.stat().st_mtime_ns == before

    again.record("reg:5000", "team/other", [d1])  # a new place to mount d1 from
    again.save()
    assert path.stat().st_ino != inode
    assert BlobLocations(path).repos("reg:5000", d1) == ["team/other", "team/app"]
    assert BlobLocations(path).repos("reg:5000", d2) == ["team/app"]
