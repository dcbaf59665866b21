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
