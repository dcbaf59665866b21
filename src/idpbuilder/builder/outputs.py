"""Build outputs as buildx's ``-o/--output`` names them: ``type=local,dest=DIR`` (the final filesystem),
``type=tar,dest=FILE`` (the same as one tar), ``type=oci|docker,dest=FILE`` (an OCI archive or a
docker-archive of the image, as ``save`` writes them); a bare ``-o PATH`` is ``type=local,dest=PATH``.
The image is always in the store as well."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from idpbuilder._records import dataclass
from idpbuilder.errors import IdpError, NotFoundError, UsageError
from idpbuilder.image import Layer
from idpbuilder.image.archive import DOCKER_ARCHIVE, OCI_ARCHIVE
from idpbuilder.image.archive_save import write_archive
from idpbuilder.owner import stamped
from idpbuilder.store.layout import Store

__all__ = ["OUTPUT_TYPES", "OutputSpec", "export_output", "parse_output"]

OUTPUT_TYPES = ("local", "tar", "oci", "docker")
_HINT = "use -o DIR, or --output type=local|tar|oci|docker,dest=PATH"


@dataclass(frozen=True)
class OutputSpec:
    """One ``--output``: its type and destination (``-`` is stdout for tar/oci/docker)."""

    type: str
    dest: str


def parse_output(text: str) -> OutputSpec:
    """``type=local,dest=DIR`` and friends, or a bare path (buildx: ``-o path`` = ``type=local``)."""
    if "=" not in text:
        if not text:
            raise UsageError("empty --output", hint=_HINT)
        if text == "-":
            return OutputSpec("tar", "-")  # buildx: -o - is a tar on stdout
        return OutputSpec("local", text)
    fields: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"invalid --output {text!r}: {part!r} is not KEY=VALUE", hint=_HINT)
        fields[k.strip().lower()] = v.strip()
    kind = fields.pop("type", "local")
    if kind in ("registry", "image"):
        raise UsageError(
            f"--output type={kind} is not supported", hint="use --push -t REGISTRY/REPO:TAG to push the image"
        )
    if kind not in OUTPUT_TYPES:
        raise UsageError(f"unknown --output type {kind!r}", hint=_HINT)
    dest = fields.pop("dest", "")
    if not dest:
        raise UsageError(f"--output type={kind} needs dest=PATH", hint=_HINT)
    if kind == "local" and dest == "-":
        raise UsageError("--output type=local cannot write to stdout", hint="use type=tar,dest=- for a tar")
    fields.pop("name", None)  # the image's names come from -t
    if fields:
        raise UsageError(f"unknown --output option {sorted(fields)[0]!r}", hint=_HINT)
    return OutputSpec(kind, dest)


def export_output(
    store: Store, spec: OutputSpec, *, layers: Sequence[Layer], image: str, names: Sequence[str] = ()
) -> None:
    """Write the build result where ``spec`` says: ``layers`` are the image's (bottom first), ``image`` its
    id and ``names`` its tags (oci/docker archives carry them)."""
    if spec.type == "local":
        _export_local(store, layers, Path(spec.dest))
    elif spec.type == "tar":
        _export_tar(store, layers, spec.dest)
    else:
        fmt = OCI_ARCHIVE if spec.type == "oci" else DOCKER_ARCHIVE
        write_archive(store, list(names) or [image], spec.dest, fmt=fmt)


def _flatten(store: Store, layers: Sequence[Layer], into: Path) -> None:
    from idpbuilder.sandbox.extract import extract_layers

    extract_layers(store, list(layers), into)


def _export_local(store: Store, layers: Sequence[Layer], dest: Path) -> None:
    """The final filesystem into ``dest`` (created; existing files are overwritten, as buildx does)."""
    dest = dest.expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--output dest {str(dest)!r} is not a directory", hint="give a directory path")
    if not dest.absolute().parent.is_dir():
        raise NotFoundError(
            f"--output dest {str(dest)!r}: its parent directory does not exist",
            hint="create the parent directory first",
        )
    dest.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=stamped("output-"), dir=store.path_for("build", "tmp")))
    try:
        _flatten(store, layers, tmp / "rootfs")
        _merge_into(tmp / "rootfs", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge_into(src: Path, dest: Path) -> None:
    """Move ``src``'s tree into ``dest``, replacing what is in the way."""
    for entry in sorted(os.listdir(src)):
        s, d = src / entry, dest / entry
        if s.is_dir() and not s.is_symlink() and d.is_dir() and not d.is_symlink():
            _merge_into(s, d)
            shutil.copystat(s, d, follow_symlinks=False)
            continue
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)
        elif d.exists() or d.is_symlink():
            d.unlink()
        os.rename(s, d)


def _export_tar(store: Store, layers: Sequence[Layer], dest: str) -> None:
    """The final filesystem as one tar (sorted, owners and modes kept) to a file or stdout."""
    tmp = Path(tempfile.mkdtemp(prefix=stamped("output-"), dir=store.path_for("build", "tmp")))
    try:
        root = tmp / "rootfs"
        _flatten(store, layers, root)
        if dest == "-":
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_tree(tar, root)
            sys.stdout.buffer.flush()
            return
        path = Path(dest).expanduser()
        if path.is_dir():
            raise UsageError(
                f"--output dest {dest!r} is a directory", hint="give a file name, e.g. rootfs.tar"
            )
        if not path.absolute().parent.is_dir():
            raise NotFoundError(
                f"--output dest {dest!r}: its directory does not exist", hint="create the directory first"
            )
        fd, part = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    _add_tree(tar, root)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(part, 0o644)
            os.replace(part, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
    except OSError as e:
        raise IdpError(f"cannot write --output {dest}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add_tree(tar: tarfile.TarFile, root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            info = tar.gettarinfo(p, arcname=n if rel == "." else f"{rel}/{n}")
            info.uname = info.gname = ""
            if info.isreg():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
