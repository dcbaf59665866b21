"""``idpbuilder inspect IMAGE…``: manifest, config and layers as JSON, or ``--format`` with docker's template paths."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from idpbuilder.cli.completion_cmd import complete_images

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext

__all__ = ["command"]


@click.command("inspect")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...", shell_complete=complete_images)
@click.option(
    "-f",
    "--format",
    "fmt",
    default="json",
    show_default=True,
    metavar="json|TEMPLATE",
    help="json (manifest, config and layers), or a docker-style template printed once per image: "
    "'{{.Id}}', '{{.Config.Env}}', '{{json .Config}}', '{{index .Config.Labels \"k\"}}', '{{.RootFS.Layers}}'.",
)
@click.pass_obj
def command(app: AppContext, /, images: tuple[str, ...], fmt: str) -> None:
    """Show images' manifest, config and layers as JSON, or the fields a --format template names.

    \b
    Template forms (a documented subset of Go templates, not a template engine):
      {{.Id}} {{.RepoTags}} {{.RepoDigests}} {{.Created}} {{.Architecture}} {{.Os}} {{.Size}}
      {{.Config.Env}} {{.Config.Cmd}} {{.Config.Labels}} …  any field path of the JSON output
      {{json .Config}}   {{.Config | json}}   {{index .Config.Labels "key"}}   {{join .Config.Env ","}}
    """
    from idpbuilder.image.inspect import inspect_image, render_template
    from idpbuilder.store.layout import Store

    store = Store.open(app.home)
    if fmt == "json":
        click.echo(json.dumps([inspect_image(store, i) for i in images], indent=2))
        return
    if "{{" not in fmt:
        from idpbuilder.image.inspect import TemplateError

        raise TemplateError(
            f"--format {fmt!r} is neither json nor a template", hint="e.g. --format '{{.Config.Env}}'"
        )
    for i in images:
        click.echo(render_template(inspect_image(store, i), fmt))
