"""`save` and `load`: docker-archive / OCI archive tarballs (docker, podman and skopeo read them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from idpbuilder.digest import Digest
from idpbuilder.errors import UsageError
from idpbuilder.store.layout import Store

__all__ = ["load", "save"]


@click.command("save")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker-archive", "oci-archive"]),
    default="docker-archive",
    show_default=True,
    help="docker-archive (docker/podman load) or oci-archive (an OCI layout in a tar).",
)
@click.option(
    "--platform", help="For a multi-platform image in a docker-archive: os/arch (default: this host)."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.pass_obj
def save(
    obj: Any, images: tuple[str, ...], output: Path | None, fmt: str, platform: str | None, quiet: bool
) -> None:
    """Save images to a docker-archive or OCI archive tarball."""
    from idpbuilder.cli.render import human_size
    from idpbuilder.image.archive_save import write_archive
    from idpbuilder.oci import Platform

    if output is None:
        if sys.stdout.isatty():
            raise UsageError(
                "refusing to write an archive to a terminal", hint="give -o FILE, or redirect stdout"
            )
        dest: Path | str = "-"
    else:
        dest = output
    store = Store.open(obj.home)
    total = [0, 0]

    def count(d: Digest, size: int) -> None:
        total[0] += 1
        total[1] += size

    saved = write_archive(
        store,
        images,
        dest,
        fmt=fmt,
        platform=Platform.parse(platform) if platform else None,
        on_blob=count,
    )
    if not quiet:
        for item in saved:
            names = ", ".join(item.names) if item.names else str(item.descriptor.digest)
            click.echo(f"Saved {names}", err=True)
        where = "stdout" if dest == "-" else str(dest)
        click.echo(f"Wrote {fmt} {where}: {total[0]} blobs, {human_size(total[1])}", err=True)


@click.command("load")
@click.option(
    "-i",
    "--input",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read from FILE (default: stdin).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the loaded image names.")
@click.pass_obj
def load(obj: Any, source: Path | None, quiet: bool) -> None:
    """Load images from a docker-archive or OCI archive tarball (format detected)."""
    from idpbuilder.cli.render import human_size
    from idpbuilder.image.archive_load import load_archive

    if source is None and sys.stdin.isatty():
        raise UsageError("no archive given", hint="give -i FILE, or pipe the archive into stdin")
    store = Store.open(obj.home)

    def progress(d: Digest, size: int) -> None:
        if not quiet:
            click.echo(f"Copied blob {d.short} ({human_size(size)})", err=True)

    loaded = load_archive(store, source if source is not None else "-", on_blob=progress)
    for item in loaded:
        if item.names:
            for name in item.names:
                click.echo(f"Loaded image: {name}")
        else:
            click.echo(f"Loaded image ID: {item.image_id}")
