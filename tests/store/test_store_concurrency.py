"""Concurrent writers lose no tag; a writer killed with SIGKILL at any moment leaves a valid store."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from imagekit import make_image

from fixtures.cli import hermetic_env
from idpbuilder.image import Image
from idpbuilder.store.layout import Store

HERE = Path(__file__).resolve().parent


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a Python child with the tests' import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def assert_store_valid(root: Path) -> None:
    """index.json parses; every tagged image loads and every blob it needs is present and verified;
    every file under blobs/ hashes to its name; oci-image-tool agrees."""
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2
    for p in (root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"partial or corrupt blob {p.name}"
    store = Store(root)
    try:
        for _, desc in store.refs():
            image = Image.load(store, desc)
            for layer in image.layers:
                with store.open_blob(layer.descriptor.digest, size=layer.descriptor.size) as f:
                    while f.read(1 << 20):
                        pass
    finally:
        store.close()
    if shutil.which("oci-image-tool"):
        p = subprocess.run(
            ["oci-image-tool", "validate", "--type", "image", str(root)], capture_output=True, text=True
        )
        assert p.returncode == 0, p.stdout + p.stderr


_TAGGER = """
import sys
from pathlib import Path
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
desc = store.resolve("base:1")
worker, count = int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    store.set_ref(f"w{worker}/img:t{i}", desc)
"""


def test_eight_processes_tagging_lose_no_tag(home: Path, store: Store) -> None:
    make_image(store, "base:1", [{"a.txt": b"a"}])
    workers, per = 8, 15
    procs = [_python(_TAGGER, str(home), str(w), str(per)) for w in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = {n for n, _ in store.refs()}
    expected = {f"w{w}/img:t{i}" for w in range(workers) for i in range(per)}
    assert expected <= names
    assert len(names) == workers * per + 1
    assert_store_valid(store.root)


def test_eight_cli_tag_commands_at_once(home: Path, store: Store) -> None:
    make_image(store, "base:1", [{"a.txt": b"a"}])
    env = hermetic_env(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "idpbuilder", "tag", "base:1", f"cli/img:v{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = {n for n, _ in store.refs()}
    assert {f"cli/img:v{i}" for i in range(8)} <= names


_CHURN = """
import os, sys
from pathlib import Path
from imagekit import make_image
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
i = 0
print("ready", flush=True)
while True:
    i += 1
    blob = os.urandom(64 * 1024) * 4
    make_image(store, f"churn/img:{i % 7}", [{"data.bin": blob}, {"n.txt": str(i).encode()}])
    if i % 3 == 0:
        try:
            store.remove_ref(f"churn/img:{(i + 1) % 7}")
        except Exception:
            pass
"""


def test_sigkill_at_random_moments_leaves_a_valid_store(home: Path, store: Store) -> None:
    make_image(store, "keep:1", [{"keep.txt": b"keep"}])
    rng = random.Random(1234)
    for _ in range(6):
        p = _python(_CHURN, str(home))
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        assert_store_valid(store.root)
    assert store.lookup("keep:1") is not None
    assert any(n.startswith("churn/img:") for n, _ in store.refs())


_MID_BLOB = """
import sys, time
from pathlib import Path
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
w = store.blob_writer()
w.write(b"x" * (3 << 20))
print("mid-blob", flush=True)
time.sleep(60)
"""

_MID_INDEX = """
import os, sys, time
from pathlib import Path
import idpbuilder.store.layout as layout
from imagekit import make_image
store = layout.Store.open(Path(sys.argv[1]))
desc = make_image(store, None, [{"new.txt": b"new"}])
real_replace = os.replace
def stalled_replace(src, dst):
    if str(dst).endswith("index.json"):
        print("mid-index", flush=True)
        time.sleep(60)
    real_replace(src, dst)
layout.os.replace = stalled_replace  # the fault: stop between the fsynced temp file and the rename
store.set_ref("new:1", desc)
"""

_HOLD_LOCK = """
import sys, time
from pathlib import Path
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
with store.lock():
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize(("code", "marker"), [(_MID_BLOB, "mid-blob"), (_MID_INDEX, "mid-index")])
def test_sigkill_mid_write(home: Path, store: Store, code: str, marker: str) -> None:
    make_image(store, "keep:1", [{"keep.txt": b"keep"}])
    before = (store.root / "index.json").read_bytes()
    p = _python(code, str(home))
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    assert line == marker, p.stderr.read() if p.stderr else ""
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert (store.root / "index.json").read_bytes() == before
    assert_store_valid(store.root)
    assert store.lookup("new:1") is None
    # the leftovers are temp files outside the layout; gc (alone on the store) clears them
    store.gc()
    assert not any(store.tmp_dir.iterdir())
    # the store still takes writes
    make_image(store, "after:1", [{"after.txt": b"after"}])
    assert store.lookup("after:1") is not None


def test_lock_of_a_killed_process_is_released(home: Path, store: Store) -> None:
    make_image(store, "keep:1", [{"keep.txt": b"keep"}])
    p = _python(_HOLD_LOCK, str(home))
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    start = time.monotonic()
    store.set_ref("keep:2", store.resolve("keep:1"))
    assert time.monotonic() - start < 5
    assert store.lookup("keep:2") is not None


_BUILDER = """
import sys
from pathlib import Path
from imagekit import make_image
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
worker = sys.argv[2]
for i in range(15):
    make_image(store, f"b{worker}/img:{i}", [{"f.txt": f"{worker}-{i}".encode()}])
"""

_GC_LOOP = """
import sys, time
from pathlib import Path
from idpbuilder.store.layout import Store
store = Store.open(Path(sys.argv[1]))
deadline = time.monotonic() + float(sys.argv[2])
runs = 0
while time.monotonic() < deadline:
    store.gc()
    runs += 1
print(runs)
"""


def test_gc_running_beside_builders_deletes_nothing_they_tag(home: Path, store: Store) -> None:
    builders = [_python(_BUILDER, str(home), str(w)) for w in range(3)]
    gc = _python(_GC_LOOP, str(home), "4")
    for p in builders:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out, err = gc.communicate(timeout=120)
    assert gc.returncode == 0, err
    assert int(out) > 1
    assert len(store.refs()) == 45
    assert_store_valid(store.root)


def test_corrupt_blob_is_detected_on_read(store: Store) -> None:
    from idpbuilder.errors import DigestMismatchError

    desc = make_image(store, "x:1", [{"x.txt": b"x" * 1000}])
    layer = Image.load(store, desc).layers[0].descriptor
    path = store.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        store.read_blob(layer.digest)
    with pytest.raises(DigestMismatchError), store.open_blob(layer.digest, size=layer.size) as f:
        while f.read(1 << 16):
            pass
