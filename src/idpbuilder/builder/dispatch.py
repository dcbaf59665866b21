"""One dispatch by instruction type, as BuildKit's ``dispatch`` switches on its typed commands: each typed
instruction goes to its handler with the step's context; True when the step's layer came from the cache."""

from __future__ import annotations

from idpbuilder.builder.context import StepContext
from idpbuilder.builder.copy_add import do_copy
from idpbuilder.builder.metadata import (
    do_arg,
    do_cmd,
    do_entrypoint,
    do_env,
    do_expose,
    do_healthcheck,
    do_label,
    do_maintainer,
    do_onbuild,
    do_shell,
    do_stopsignal,
    do_user,
    do_volume,
    do_workdir,
)
from idpbuilder.builder.run import do_run
from idpbuilder.dockerfile import (
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from idpbuilder.errors import BuildError

__all__ = ["dispatch", "is_numbered"]

# the instructions BuildKit numbers (and shows as steps; ADD is a Copy); metadata-only ones apply silently
_NUMBERED = (Run, Copy, Workdir)


def is_numbered(cmd: Instruction) -> bool:
    """True for RUN, COPY, ADD and WORKDIR: the steps BuildKit counts and shows."""
    return isinstance(cmd, _NUMBERED)


def dispatch(ctx: StepContext, cmd: Instruction) -> bool:
    """Run ``cmd`` in the step's stage; True when its layer came from the cache."""
    match cmd:
        case Run():
            return do_run(ctx, cmd)
        case Copy():  # and Add
            return do_copy(ctx, cmd)
        case Workdir():
            return do_workdir(ctx, cmd)
        case Arg():
            return do_arg(ctx, cmd)
        case Env():
            return do_env(ctx, cmd)
        case Label():
            return do_label(ctx, cmd)
        case User():
            return do_user(ctx, cmd)
        case Expose():
            return do_expose(ctx, cmd)
        case Volume():
            return do_volume(ctx, cmd)
        case Shell():
            return do_shell(ctx, cmd)
        case StopSignal():
            return do_stopsignal(ctx, cmd)
        case Healthcheck():
            return do_healthcheck(ctx, cmd)
        case Cmd():
            return do_cmd(ctx, cmd)
        case Entrypoint():
            return do_entrypoint(ctx, cmd)
        case Onbuild():
            return do_onbuild(ctx, cmd)
        case Maintainer():
            return do_maintainer(ctx, cmd)
        case _:
            raise BuildError(
                f"{ctx.session.where(cmd.node)}: {type(cmd).__name__.upper()} is not supported by this builder"
            )
