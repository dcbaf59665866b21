"""``idpbuilder history IMAGE``: the image's build steps, like ``docker history``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from idpbuilder.cli.completion_cmd import complete_images
from idpbuilder.cli.render import human_size, render_table, since

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext
    from idpbuilder.image.history import HistoryRow

__all__ = ["command"]

_TRUNC = 45  # docker truncates CREATED BY to 45 characters


def _created_by(row: HistoryRow, no_trunc: bool) -> str:
    text = " ".join(row.created_by.split()) if not no_trunc else row.created_by
    if not no_trunc and len(text) > _TRUNC:
        return text[: _TRUNC - 1] + "…"
    return text


@click.command("history")
@click.argument("image", shell_complete=complete_images)
@click.option("--no-trunc", is_flag=True, help="Do not truncate CREATED BY or the image id.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs (<missing> for steps with none).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A docker-like table, or a JSON list (every field, newest first).",
)
@click.pass_obj
def command(app: AppContext, /, image: str, no_trunc: bool, quiet: bool, fmt: str) -> None:
    """Show the history of IMAGE: one row per build step, newest first (IMAGE, CREATED, CREATED BY, SIZE,
    COMMENT). SIZE is the stored (compressed) size of the layer the step made."""
    from idpbuilder.image.history import image_history
    from idpbuilder.store.catalog import parse_created
    from idpbuilder.store.layout import Store

    rows = image_history(Store.open(app.home), image)
    now = time.time()

    def ident(r: HistoryRow) -> str:
        if r.image_id is None:
            return "<missing>"
        return str(r.image_id) if no_trunc else r.image_id.short

    if fmt == "json":
        doc = [
            {
                "ID": str(r.image_id) if r.image_id else "<missing>",
                "Created": r.created,
                "CreatedSince": since(parse_created(r.created), now),
                "CreatedBy": r.created_by,
                "Size": r.size,
                "Comment": r.comment,
                "EmptyLayer": r.empty_layer,
                "Layer": str(r.layer) if r.layer else None,
                "Tags": list(r.tags),
            }
            for r in rows
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    if quiet:
        for r in rows:
            click.echo(ident(r))
        return
    table = [
        [
            ident(r),
            since(parse_created(r.created), now),
            _created_by(r, no_trunc),
            human_size(r.size),
            r.comment,
        ]
        for r in rows
    ]
    click.echo(render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table), nl=False)
