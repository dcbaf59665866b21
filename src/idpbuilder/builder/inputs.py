"""Build inputs besides a context directory, as docker/buildx take them: what ``build -`` / ``-f -`` read
on stdin (a context tar, or a Dockerfile), and ``--build-context NAME=DIR|docker-image://REF`` named contexts
(a directory becomes a one-layer image in the store, so ``FROM NAME`` and ``COPY --from=NAME`` see it).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError, NotFoundError, UsageError
from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.store.layout import Store

if TYPE_CHECKING:
    import tarfile

# tarfile, gzip and sandbox.tarread are imported by the functions that read tars: every build imports
# this module (for DOCKER_IMAGE), few read a context from stdin or turn a directory into an image

__all__ = [
    "DOCKER_IMAGE",
    "StdinInput",
    "directory_image",
    "parse_build_context",
    "read_stdin_input",
    "unpack_context_tar",
]

DOCKER_IMAGE = "docker-image://"
_MAX_DOCKERFILE = 4 << 20  # a Dockerfile on stdin larger than this is not a Dockerfile


@dataclass(frozen=True)
class StdinInput:
    """What stdin held: a context tar (unpacked into ``context``) or a Dockerfile's text."""

    context: Path | None
    dockerfile_text: str | None


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def read_stdin_input(stream: io.BufferedIOBase | Any, scratch: Path) -> StdinInput:
    """Docker's rule for ``build -``: stdin that is a tar archive (plain or gzip) is the context, anything
    else is the Dockerfile (and the build has no context). A tar is unpacked into ``scratch``."""
    data = stream.read()
    if not isinstance(data, bytes):
        data = str(data).encode()
    raw = data
    if data[:2] == b"\x1f\x8b":
        import gzip

        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise UsageError(
                f"stdin is gzip data but not readable: {e}", hint="pipe a tar, a .tar.gz or a Dockerfile"
            ) from None
    if _is_tar(raw):
        unpack_context_tar(io.BytesIO(raw), scratch)
        return StdinInput(scratch, None)
    if len(data) > _MAX_DOCKERFILE:
        raise UsageError(
            "stdin is neither a tar archive nor a Dockerfile (too large)",
            hint="pipe a context tar (`tar -c . | idpbuilder build -`) or a Dockerfile",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            "stdin is neither a tar archive nor a UTF-8 Dockerfile",
            hint="pipe a context tar (`tar -c . | idpbuilder build -`) or a Dockerfile",
        ) from None
    if not text.strip():
        raise UsageError(
            "stdin is empty", hint="pipe a Dockerfile or a context tar into `idpbuilder build -`"
        )
    return StdinInput(None, text)


def _member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Python's ``tar`` filter (nothing written outside ``dest``, no setuid bits; a symlink may point
    anywhere, as in a context directory), and for hard links the stricter ``data`` filter (the target must
    be inside ``dest``: a link to a host file would let COPY read it)."""
    import tarfile

    if member.islnk():
        return tarfile.data_filter(member, dest)
    return tarfile.tar_filter(member, dest)


def unpack_context_tar(fileobj: io.BufferedIOBase | Any, dest: Path) -> None:
    """Unpack a context tar into ``dest``: regular files, directories and links only, nothing outside
    ``dest`` (symlinks keep their targets, as in a context directory)."""
    import tarfile

    from idpbuilder.sandbox.tarread import SafeTarInfo

    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=fileobj, mode="r:*", tarinfo=SafeTarInfo) as tar:  # bounded headers
            for m in tar:
                if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    continue
                try:
                    tar.extract(m, dest, filter=_member_filter)
                except tarfile.FilterError as e:
                    raise BuildError(
                        f"context tar member {m.name!r} is unsafe: {e}",
                        hint="the context tar may only hold paths inside it",
                    ) from None
    except tarfile.TarError as e:
        raise BuildError(f"the context tar on stdin is not readable: {e}", hint="pipe a valid tar") from None


def parse_build_context(text: str, *, cwd: Path | None = None) -> tuple[str, str]:
    """``NAME=DIR`` or ``NAME=docker-image://REF`` → (name, absolute dir or ``docker-image://REF``)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value:
        raise UsageError(f"invalid --build-context {text!r}", hint="use NAME=DIR or NAME=docker-image://REF")
    if value.startswith(DOCKER_IMAGE):
        if not value[len(DOCKER_IMAGE) :]:
            raise UsageError(f"--build-context {text!r} names no image", hint="use NAME=docker-image://REF")
        return name, value
    if "://" in value:
        raise UsageError(
            f"unsupported --build-context source {value!r}",
            hint="use a local directory or docker-image://REF",
        )
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if not path.is_dir():
        raise NotFoundError(
            f"build context {name!r}: directory {str(path)!r} not found",
            hint="give --build-context NAME=DIR an existing directory",
        )
    return name, str(path)


def _dir_members(root: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in sorted(dirnames + filenames):
            p = Path(dirpath) / n
            out.append((n if rel == "." else f"{rel}/{n}", p))
    out.sort(key=lambda t: t[0])
    return out


def directory_image(store: Store, directory: Path, platform: Platform) -> Descriptor:
    """A one-layer image (untagged, in the store) holding ``directory``'s files owned by root: a named
    context directory as ``FROM`` and ``COPY --from`` see it. Same files → same digest."""
    import tarfile

    helper = tarfile.TarFile(fileobj=io.BytesIO(), mode="w")
    try:
        with LayerWriter(store, compression="gzip") as w:
            for name, path in _dir_members(directory):
                try:
                    info = helper.gettarinfo(str(path), arcname=name)
                except OSError as e:
                    raise BuildError(f"cannot read {path}: {e.strerror or e}") from None
                if not (info.isfile() or info.isdir() or info.issym()):
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(path, "rb") as f:
                        w.add_entry(info, f)
                else:
                    w.add_entry(info, None)
        layer = w.result
    finally:
        helper.close()
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
        "history": [{"created_by": f"build context {directory.name}"}],
    }
    return commit_image(store, config, [layer])
