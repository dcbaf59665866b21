"""The stage executor: builds the stages a target needs (dependencies first, or on demand for an ONBUILD
``--from``), each from its base (an image, scratch or an earlier stage) through its instructions, numbering
and reporting the steps as BuildKit does. Implements ``StageResolver`` for the handlers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import idpbuilder.builder.config as cfgmod
from idpbuilder.builder.cache import chain_next
from idpbuilder.builder.context import BuildSession, StepContext, located, prefixed
from idpbuilder.builder.dispatch import dispatch, is_numbered
from idpbuilder.builder.inputs import DOCKER_IMAGE, directory_image
from idpbuilder.builder.options import platform_args
from idpbuilder.builder.progress import StepInfo
from idpbuilder.builder.stages import StageGraph
from idpbuilder.builder.state import StageState
from idpbuilder.dockerfile import Dockerfile, Instruction, Onbuild, parse_dockerfile
from idpbuilder.errors import (
    BuildError,
    DockerfileParseError,
    IdpError,
    Interrupted,
    NotFoundError,
    RunFailedError,
    UsageError,
)
from idpbuilder.image import Image
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.reference import Reference

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = ["Puller", "StageExecutor"]

# pulls ``ref`` (for ``platform``) into the store; the manifest (or index) descriptor
Puller = Callable[["Store", str, Platform | None], Descriptor]


class StageExecutor:
    """Builds stages of one Dockerfile into ``StageState``s; one instance per build."""

    def __init__(
        self,
        session: BuildSession,
        df: Dockerfile,
        graph: StageGraph,
        *,
        build_platform: Platform,
        target_platform: Platform,
        global_args: dict[str, str],
        target_name: str,
        pull: Puller | None = None,
    ) -> None:
        self.session = session
        self.df = df
        self._graph = graph
        self.build_platform = build_platform
        self.target_platform = target_platform
        self.global_args = global_args
        self.target_name = target_name
        self._pull = pull
        self.results: dict[int, StageState] = {}
        self.step_no = 0  # build-wide sequence of shown steps
        self.cached_steps = 0
        self._step_pos: dict[int, list[int]] = {}  # stage index -> [steps shown so far, stage total]
        self._pulled: dict[tuple[str, str], Descriptor] = {}  # --pull: what this build resolved
        self._contexts: dict[str, Image] = {}  # --build-context directories as images

    @property
    def graph(self) -> StageGraph:
        """The stage graph of the Dockerfile."""
        return self._graph

    def build(self, order: list[int]) -> None:
        """Build the stages in ``order`` that are not built yet."""
        for i in order:
            if i not in self.results:
                self.results[i] = self._build_stage(i)

    def stage_result(self, j: int) -> StageState:
        """The built state of stage ``j``, building it now when no static dependency asked for it
        (an ONBUILD trigger's ``--from`` is only known when the trigger runs)."""
        if j not in self.results:
            for dep in self.graph.needed(j):
                if dep not in self.results:
                    self.results[dep] = self._build_stage(dep)
        return self.results[j]

    # -------------------------------------------------------------- steps
    def _stage_total(self, i: int) -> int:
        """BuildKit's step count of stage ``i``: FROM (unless scratch or a stage) + RUN/COPY/ADD/WORKDIR."""
        base = self.graph.bases[i]
        n = 0 if base.lower() == "scratch" or self.graph.base_stage(i) is not None else 1
        return n + sum(1 for c in self.df.stages[i].commands if is_numbered(c))

    def _step(self, i: int, stage_name: str, text: str, *, numbered: bool = True) -> StepInfo:
        text = " ".join(text.split())
        if not numbered:
            return StepInfo(0, 0, "", text)
        pos = self._step_pos.setdefault(i, [0, self._stage_total(i)])
        pos[0] += 1
        pos[1] = max(pos[1], pos[0])
        self.step_no += 1
        shown = stage_name if len(self.df.stages) > 1 else ""
        return StepInfo(pos[0], pos[1], shown, text, self.step_no)

    # -------------------------------------------------------------- stages
    def _build_stage(self, i: int) -> StageState:
        try:
            return self._build_stage_at(i)
        except IdpError as e:
            raise located(e, self.session.where(self.df.stages[i].node)) from None

    def _build_stage_at(self, i: int) -> StageState:
        s = self.session
        stage = self.df.stages[i]
        sname = stage.name or f"stage-{i}"
        base = self.graph.bases[i]
        platform = self.target_platform
        if stage.platform:
            plat_text = s.lex.process_word(stage.platform, self.global_args)
            platform = Platform.parse(plat_text)
        base_stage = self.graph.base_stage(i)
        from_numbered = base_stage is None and base.lower() != "scratch"
        step = self._step(i, sname, f"FROM {base}", numbered=from_numbered)
        t0 = time.monotonic()
        if from_numbered:
            s.reporter.step_start(step)
        onbuild: list[str] = []
        if base_stage is not None:
            parent = self.results[base_stage]
            cfg = cfgmod.new_config(parent.config, parent.platform)
            st = StageState(i, sname, parent.platform, cfg, list(parent.layers), parent.chain)
            # BuildKit starts the stage from the parent's state, build args in scope there included:
            # ``ARG NAME="$NAME-dev"`` sees the parent's NAME, a bare ``ARG NAME`` keeps it
            st.args, st.arg_wins = dict(parent.args), set(parent.arg_wins)
            onbuild = list(cfg["config"].get("OnBuild") or [])
        elif base.lower() == "scratch":
            cfg = cfgmod.new_config(None, platform)
            st = StageState(
                i, sname, platform, cfg, [], chain_next("", {"from": "scratch", "platform": str(platform)})
            )
        else:
            wanted = platform if (stage.platform or s.opts.platform) else None
            img = self.load_image(base, wanted)
            cfg = cfgmod.new_config(img.config, img.platform)
            from_key: dict[str, str] = {"from": str(img.manifest_descriptor.digest)}
            if wanted is not None and not wanted.matches(img.platform):
                # BuildKit builds on (InvalidBaseImagePlatform) but for the requested platform: its
                # steps are not the same as the base platform's, and the image is labelled with it
                s.reporter.warning(
                    f"{s.where(stage.node)}: base image {base} is {img.platform}, not the requested {wanted}"
                )
                from_key["platform"] = str(wanted)
            st = StageState(i, sname, img.platform, cfg, list(img.layers), chain_next("", from_key))
            onbuild = list(cfg["config"].get("OnBuild") or [])
        if onbuild:
            st.c.pop("OnBuild", None)
        if from_numbered:
            s.reporter.step_done(step, cached=False, seconds=time.monotonic() - t0)
        # BuildKit's automatic stage args
        auto = platform_args(self.build_platform, self.target_platform)
        auto["TARGETSTAGE"] = self.target_name
        st.auto_args = auto
        for trigger in onbuild:
            self._run_onbuild(st, trigger)
        for cmd in stage.commands:
            self._dispatch(st, cmd)
        return st

    def _run_onbuild(self, st: StageState, trigger: str) -> None:
        df = parse_dockerfile(f"FROM scratch\n{trigger}\n", filename=f"ONBUILD {trigger.splitlines()[0]}")
        for cmd in df.stages[0].commands:
            if is_numbered(cmd):
                self._step_pos.setdefault(st.index, [0, self._stage_total(st.index)])[1] += 1
            self._dispatch(st, cmd, onbuild=True)

    # -------------------------------------------------------------- images
    def load_image(self, ref_text: str, platform: Platform | None) -> Image:
        """The image ``ref_text`` from the store, pulled first when missing (or missing ``platform``)."""
        named = self.session.opts.build_contexts.get(ref_text)
        if named is not None and not named.startswith(DOCKER_IMAGE):
            return self._context_image(ref_text, named, platform)
        if named is not None:
            ref_text = named[len(DOCKER_IMAGE) :]
        try:
            ref = Reference.parse(ref_text)
        except UsageError as e:
            raise BuildError(f"invalid base image reference {ref_text!r}: {e.message}", hint=e.hint) from None
        store = self.session.store
        if self.session.opts.pull:
            # --pull: resolve in the registry once per build, whatever the store has under the name
            desc = self._pulled.get((str(ref), str(platform)))
            if desc is None:
                desc = self._pulled[(str(ref), str(platform))] = self._pull_image(str(ref), platform)
        else:
            desc = store.lookup(str(ref))
            if desc is None:
                desc = self._pull_image(str(ref), platform)
        try:
            return Image.load(store, desc, platform=platform)
        except NotFoundError:
            if platform is None:
                raise
            return Image.load(store, self._pull_image(str(ref), platform), platform=platform)

    def _context_image(self, name: str, directory: str, platform: Platform | None) -> Image:
        """A ``--build-context NAME=DIR`` directory as a one-layer image (made once per build)."""
        img = self._contexts.get(name)
        if img is None:
            plat = platform or self.target_platform
            desc = directory_image(self.session.store, Path(directory), plat)
            img = self._contexts[name] = Image.load(self.session.store, desc)
        return img

    def _pull_image(self, ref: str, platform: Platform | None) -> Descriptor:
        store = self.session.store
        if self._pull is not None:
            try:
                return self._pull(store, ref, platform)
            except IdpError as e:
                raise prefixed(e, f"pulling {ref}") from None
        try:
            from idpbuilder.registry.pull import pull_image
        except ImportError as e:  # pragma: no cover - the registry package ships with the tool
            raise BuildError(
                f"image {ref!r} is not in the local store and pulling is unavailable: {e}"
            ) from None
        return pull_image(store, ref, platform=platform)

    # -------------------------------------------------------------- one instruction
    def _dispatch(self, st: StageState, cmd: Instruction, *, onbuild: bool = False) -> None:
        s = self.session
        kind = type(cmd).__name__
        numbered = is_numbered(cmd)
        text = f"ONBUILD {cmd.expression}" if isinstance(cmd, Onbuild) else cmd.node.original
        step = self._step(st.index, st.name, ("ONBUILD " if onbuild else "") + text, numbered=numbered)
        t0 = time.monotonic()
        if numbered:
            s.reporter.step_start(step)
        try:
            cached = dispatch(StepContext(s, self, st, step), cmd)
        except DockerfileParseError:
            raise
        except RunFailedError as e:
            if e.hint:
                raise
            where = "the " + ("ONBUILD trigger" if onbuild else f"RUN at {s.where(cmd.node)}")
            raise RunFailedError(
                e.message,
                exit_status=e.exit_status,
                output_tail=e.output_tail,
                hint=f"{where} exited with status {e.exit_status}; its output is shown above",
            ) from None
        except IdpError as e:
            if e.hint is None and not isinstance(e, Interrupted):
                e.hint = f"check the {kind.upper()} instruction at {s.where(cmd.node)}"
            raise located(e, s.where(cmd.node)) from None
        if not numbered:
            return
        if cached:
            self.cached_steps += 1
        s.reporter.step_done(step, cached=cached, seconds=time.monotonic() - t0)
