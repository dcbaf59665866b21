"""Build any context with idpbuilder and with Docker's engine and list every difference.

    python -m tools.conformance --compare DIR [-f Dockerfile] [--build-arg K=V] [--target T]
                                [--base-archive IMAGES.tar] [--classic]

Both builders start from the same base images: the busybox stand-in for ``busybox``/``alpine`` (see
``baseimages``) plus every image of each ``--base-archive`` (a docker-archive or OCI archive, loaded with
``docker load`` and ``idpbuilder load``). The differences are the compared config fields and the
flattened filesystem (type, mode, owner, size, content digest, link target per path), exactly, with no
known-difference table: that is the point of this mode (only the empty RUN --mount target stubs docker
20.10 leaves behind are ignored). ``compare_context`` is also what the corpus
tests call.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.conformance.baseimages import add_busybox_image
from tools.conformance.dockerd import Dockerd
from tools.conformance.judge import compare_images, dockerfile_text, mount_stubs
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.oracles.docker import DockerOracle
from tools.conformance.ours import OursBuilder

__all__ = ["Comparison", "compare_context", "main_compare"]


@dataclass(frozen=True)
class Comparison:
    """Both outcomes and the differences between them (empty: the same image, or both failed)."""

    ours: BuildOutcome
    docker: BuildOutcome
    diffs: list[str]

    @property
    def same(self) -> bool:
        return not self.diffs

    def text(self) -> str:
        """A readable report."""
        if self.same:
            how = "both failed" if not self.ours.ok else "identical config and filesystem"
            return f"same: {how}"
        return f"{len(self.diffs)} difference(s):\n" + "\n".join("  " + d for d in self.diffs)


def compare_context(
    ours: OursBuilder,
    home: Path,
    oracle: DockerOracle,
    workspace: Path,
    context: Path,
    spec: BuildSpec,
    tmp: Path,
    *,
    name: str = "compare",
) -> Comparison:
    """Build ``context`` per ``spec`` with docker (in ``workspace``) and with idpbuilder (in ``home``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    theirs = oracle.build(workspace, context, spec, f"compare.local/{name}:docker", tmp)
    mine = ours.build(home, context, spec, f"compare.local/{name}:ours", tmp)
    diffs: list[str] = []
    if mine.ok and theirs.ok:
        assert mine.image is not None and theirs.image is not None
        stubs = mount_stubs(dockerfile_text(context, spec.dockerfile))
        diffs = compare_images(mine.image, theirs.image, oracle=oracle.name, stubs=stubs)
    elif mine.ok != theirs.ok:
        diffs = [f"ours failed: {mine.error}" if not mine.ok else f"{oracle.name} failed: {theirs.error}"]
    return Comparison(mine, theirs, diffs)


def _load_ours(command: tuple[str, ...], home: Path, archive: Path) -> None:
    p = subprocess.run(
        [*command, "--store", str(home), "load", "-q", "-i", str(archive)], capture_output=True
    )
    if p.returncode != 0:
        raise RuntimeError(f"idpbuilder load {archive} failed: {p.stderr.decode(errors='replace')[-400:]}")


def main_compare(
    context: Path,
    spec: BuildSpec,
    work: Path,
    *,
    base_archives: tuple[Path, ...] = (),
    buildkit: bool = True,
    keep: bool = False,
) -> int:
    """The ``--compare`` command: print the differences; exit 0 when there are none."""
    command = (sys.executable, "-m", "idpbuilder")
    template = work / "template-home"
    from idpbuilder.store.layout import Store

    store = Store.open(template)
    add_busybox_image(store)
    store.close()
    for a in base_archives:
        _load_ours(command, template, a)
    daemon = Dockerd(work / "dockerd")
    oracle = DockerOracle(work, template / "store", 1, buildkit=buildkit)
    try:
        daemon.start()
        ws = oracle.attach(daemon, template / "store")
        for a in base_archives:
            daemon.check("load", "-q", "-i", str(a))
        ours = OursBuilder(command, template)
        home = ours.new_home(work / "home")
        result = compare_context(ours, home, oracle, ws, context, spec, work / "tmp")
    finally:
        oracle.cleanup()
        daemon.remove()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    for who, o in (("idpbuilder", result.ours), (oracle.name, result.docker)):
        state = f"ok ({o.seconds:.1f}s)" if o.ok else f"FAILED: {o.error}"
        print(f"{who}: {state}")
    print(result.text())
    return 0 if result.same else 1
