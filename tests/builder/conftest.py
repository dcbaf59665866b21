"""Helpers for build-engine tests: write a context, build it in-process, read the result with real tools."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.builder import Builder, BuildOptions, BuildResult
from idpbuilder.store.layout import Store


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Create files (str/bytes content); a value starting with '->' makes a symlink to the rest."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], p)
        elif rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.write_bytes(content.encode() if isinstance(content, str) else content)


@dataclass
class Built:
    home: Path
    result: BuildResult
    ref: str

    @property
    def store(self) -> Path:
        return self.home / "store"

    def config(self) -> dict[str, Any]:
        """The raw config blob of the image skopeo resolves for the tag (skopeo's own JSON drops
        Docker-only fields such as Healthcheck and OnBuild)."""
        out = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{self.store}:{self.ref}"], check=True, capture_output=True
        )
        digest = json.loads(out.stdout)["config"]["digest"].split(":", 1)[1]
        return json.loads((self.store / "blobs/sha256" / digest).read_bytes())  # type: ignore[no-any-return]

    def unpack(self, dest: Path) -> Path:
        """umoci-unpack the image; returns the rootfs directory."""
        subprocess.run(
            ["umoci", "unpack", "--image", f"{self.store}:{self.ref}", str(dest)],
            check=True,
            capture_output=True,
        )
        return dest / "rootfs"


BuildFn = Callable[..., Built]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def busybox_home(home: Path, busybox_image: Any) -> Path:
    busybox_image.install(home)
    return home


@pytest.fixture
def build(tmp_path: Path, home: Path) -> BuildFn:
    """build(dockerfile_text, files={...}, tag="t:1", **BuildOptions fields) -> Built."""
    counter = [0]

    def run(
        dockerfile: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        tag: str = "test/img:1",
        context: Path | None = None,
        dockerfile_name: str = "Dockerfile",
        **kw: Any,
    ) -> Built:
        counter[0] += 1
        ctx = context or tmp_path / f"ctx{counter[0]}"
        ctx.mkdir(parents=True, exist_ok=True)
        write_tree(ctx, files or {})
        (ctx / dockerfile_name).write_text(dockerfile)
        store = Store.open(home)
        try:
            opts = BuildOptions(context=ctx, dockerfile=ctx / dockerfile_name, tags=(tag,), **kw)
            result = Builder(store, opts).build()
        finally:
            store.close()
        return Built(home, result, tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest")

    return run
