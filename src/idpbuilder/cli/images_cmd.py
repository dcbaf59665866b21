"""`idpbuilder images`: list the local store like `docker images` (kept light: no rich, no image model)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from idpbuilder.cli.render import human_size, render_table, since
from idpbuilder.digest import Digest
from idpbuilder.store.catalog import ImageRow, list_images
from idpbuilder.store.layout import Store

__all__ = ["command", "row_json"]


def row_json(row: ImageRow, now: float) -> dict[str, Any]:
    """Every field of a row, machine-readable (``--format json``)."""
    return {
        "Name": row.name,
        "Repository": row.repository,
        "Tag": row.tag,
        "ID": str(row.image_id),
        "Digest": str(row.digest),
        "MediaType": row.media_type,
        "Created": row.created.isoformat().replace("+00:00", "Z") if row.created else None,
        "CreatedSince": since(row.created, now),
        "Size": row.size,
        "Platform": row.platform,
        "Labels": dict(row.labels),
    }


class _ImagesCommand(click.Command):
    """`images` with the `--remote` options (and the cluster/registry code behind them) loaded on demand.

    Listing the local store must stay near interpreter start-up time; the remote options pull in ssl and
    the cluster modules, so they join the command only when an option this command lacks is given, or
    for --help.
    """

    _remote_loaded = False

    def _load_remote(self) -> None:
        if self._remote_loaded:
            return
        from idpbuilder.cli.remote_images import remote_options

        def holder() -> None:
            """Carries the options the decorator attaches."""

        decorated = remote_options(holder)
        # click.option decorators record params innermost-last; click.command reverses them the same way
        self.params.extend(reversed(getattr(decorated, "__click_params__", [])))
        self._remote_loaded = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)}
        for a in args:
            if a == "--":
                break
            if a.startswith("-") and a != "-" and a.split("=", 1)[0] not in known and a[:2] not in known:
                self._load_remote()
                break
        return super().parse_args(ctx, args)

    def get_help(self, ctx: click.Context) -> str:
        self._load_remote()
        return super().get_help(ctx)


@click.command("images", cls=_ImagesCommand)
@click.argument("reference", required=False, metavar="[REPO[:TAG]]")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs (each once).")
@click.option("--digests", is_flag=True, help="Show the manifest digest of each image.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format: a docker-like table or a JSON list.",
)
@click.option("--no-trunc", is_flag=True, help="Show full image IDs.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Filter as docker does (repeatable): dangling=true|false, reference=PATTERN, label=KEY[=VALUE], "
    "before=IMAGE, since=IMAGE.",
)
@click.pass_obj
def command(
    obj: Any,
    /,
    reference: str | None,
    quiet: bool,
    digests: bool,
    fmt: str,
    no_trunc: bool,
    filters: tuple[str, ...] = (),
    remote: bool = False,
    **remote_kw: Any,
) -> None:
    """List images in the local store, like `docker images` (--remote: the tags in the registry)."""
    if remote:
        from idpbuilder.cli.remote_images import run_remote

        if filters:
            from idpbuilder.errors import UsageError

            raise UsageError("--filter works on the local store only", hint="drop --filter, or --remote")

        run_remote(obj.home, reference, fmt=fmt, quiet=quiet, **remote_kw)
        return
    store = Store.open(obj.home)
    rows = list_images(store, reference)
    if filters:
        from idpbuilder.store.catalog import ImageFilter

        rows = ImageFilter.parse(filters).apply(store, rows)
    now = time.time()
    if fmt == "json":
        click.echo(json.dumps([row_json(r, now) for r in rows], indent=2))
        return
    if quiet:
        seen: set[Digest] = set()
        for r in rows:
            if r.image_id not in seen:
                seen.add(r.image_id)
                click.echo(str(r.image_id) if no_trunc else r.image_id.short)
        return
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = []
    for r in rows:
        cells = [r.repository, r.tag]
        if digests:
            cells.append(str(r.digest))
        cells += [
            str(r.image_id) if no_trunc else r.image_id.short,
            since(r.created, now),
            human_size(r.size),
        ]
        table.append(cells)
    click.echo(render_table(header, table), nl=False)
