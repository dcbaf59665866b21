"""``idpbuilder completion bash|zsh|fish``: print a shell completion script (click's completion machinery)."""

from __future__ import annotations

import click

__all__ = ["command"]

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  echo 'eval "$(idpbuilder completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(idpbuilder completion zsh)"' >> ~/.zshrc
    fish:  idpbuilder completion fish > ~/.config/fish/completions/idpbuilder.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root, {}, "idpbuilder", "_IDPBUILDER_COMPLETE").source())


def complete_images(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Image names in the local store starting with ``incomplete`` (read-only: ``index.json`` only)."""
    import json
    import os
    from pathlib import Path

    root = ctx.find_root()
    store_opt = root.params.get("store") if root.params else None
    home = Path(store_opt or os.environ.get("IDPBUILDER_HOME") or Path.home() / ".idpbuilder").expanduser()
    try:
        index = json.loads((home / "store" / "index.json").read_text())
    except (OSError, ValueError):
        return []
    names = set()
    for m in index.get("manifests", []) if isinstance(index, dict) else []:
        name = (
            (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            if isinstance(m, dict)
            else None
        )
        if isinstance(name, str):
            names.add(name)
            if name.startswith("docker.io/library/"):
                names.add(name.removeprefix("docker.io/library/"))
    return sorted(n for n in names if n.startswith(incomplete))
