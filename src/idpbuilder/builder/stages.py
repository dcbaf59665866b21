"""The stage graph: stage names and indices, base resolution, ``--target`` and which stages a target needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from idpbuilder._records import dataclass, field
from idpbuilder.dockerfile import Add, Copy, Run, Stage
from idpbuilder.errors import BuildError, UsageError

__all__ = ["StageGraph", "copy_from_sources"]


def copy_from_sources(stage: Stage) -> list[str]:
    """The raw ``--from`` values of a stage's COPY/ADD and RUN --mount instructions."""
    out: list[str] = []
    for cmd in stage.commands:
        if isinstance(cmd, (Copy, Add)) and cmd.from_:
            out.append(cmd.from_)
        elif isinstance(cmd, Run):
            for m in cmd.mounts:
                if m.from_:
                    out.append(m.from_)
    return out


@dataclass
class StageGraph:
    """Stages of a Dockerfile with their resolved base references and dependencies."""

    stages: Sequence[Stage]
    bases: list[str]  # expanded FROM value of each stage
    _first: dict[str, int] | None = field(default=None, init=False, repr=False)  # lower name -> first stage

    def index_of(self, name: str, *, before: int | None = None) -> int | None:
        """The stage named ``name`` (case-insensitive) or numbered ``name``; None if no such stage."""
        limit = len(self.stages) if before is None else before
        if name.isdigit():
            i = int(name)
            return i if i < len(self.stages) else None
        low = name.lower()
        for i, st in enumerate(self.stages[:limit]):
            if st.name and st.name.lower() == low:
                return i
        if before is not None:
            for i, st in enumerate(self.stages[before:], start=before):
                if st.name and st.name.lower() == low:
                    return i
        return None

    def base_stage(self, i: int) -> int | None:
        """The earlier stage stage ``i`` is built FROM, if any."""
        j = self._first_named().get(self.bases[i].lower())
        return j if j is not None and j < i else None

    def _first_named(self) -> dict[str, int]:
        if self._first is None:
            self._first = {}
            for j, st in enumerate(self.stages):
                if st.name:
                    self._first.setdefault(st.name.lower(), j)
        return self._first

    def deps(self, i: int) -> list[int]:
        """Stages stage ``i`` needs (its base stage and every --from stage)."""
        out: list[int] = []
        b = self.base_stage(i)
        if b is not None:
            out.append(b)
        for src in copy_from_sources(self.stages[i]):
            j = self.index_of(src, before=i)
            if j is not None:
                if j >= i:
                    raise BuildError(
                        f"cannot copy from stage {src!r}, it needs to be defined before current stage "
                        f"{self.stages[i].name or i!r}",
                        hint="move the stage it copies from above this one",
                    )
                out.append(j)
        return out

    def target_index(self, target: str | None) -> int:
        """The stage ``--target`` names (default: the last); UsageError naming it when unknown."""
        if not self.stages:
            raise BuildError("dockerfile contains no stages to build", hint="add a FROM instruction")
        if target is None or target == "":
            return len(self.stages) - 1
        low = target.lower()
        for i, st in enumerate(self.stages):
            if st.name and st.name.lower() == low:
                return i
        names = [st.name for st in self.stages if st.name]
        import difflib

        close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
        msg = f'target stage "{target}" could not be found'
        if close:
            msg += f" (did you mean {close[0]}?)"
        raise UsageError(msg, hint="stages: " + (", ".join(names) or "(none are named; use AS name)"))

    def needed(self, target: int, check: Callable[[int], None] | None = None) -> list[int]:
        """Stages the target needs, in build order (dependencies first)."""
        order: list[int] = []
        seen = {target}
        # an explicit stack: a chain of thousands of stages must not hit Python's recursion limit
        stack: list[tuple[int, Iterator[int]]] = [(target, iter(self.deps(target)))]
        while stack:
            i, pending = stack[-1]
            for d in pending:
                if d not in seen:
                    seen.add(d)
                    stack.append((d, iter(self.deps(d))))
                    break
            else:
                stack.pop()
                order.append(i)
        return order
