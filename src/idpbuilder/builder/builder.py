"""The Dockerfile build engine: Dockerfile → typed instructions → stage graph → stages built by the
``StageExecutor`` → image in the store.

Shape: BuildKit's dispatcher over buildah's imperative stage executor. Each stage keeps one mutable
``StageState`` (config, layers, cache chain, lazily indexed rootfs). Every instruction folds its
expanded form into the stage's cache chain; layer-producing steps (COPY/ADD/RUN/WORKDIR) look the
chain up in the store's build cache before doing any work (COPY/ADD add the digest of their sources).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder.builder.context import BuildSession, Runner
from idpbuilder.builder.executor import Puller, StageExecutor
from idpbuilder.builder.options import (
    PROXY_ARGS,
    BuildOptions,
    BuildResult,
    default_dockerfile,
    platform_args,
)
from idpbuilder.builder.progress import NullReporter, StepInfo, StepReporter
from idpbuilder.builder.stages import StageGraph
from idpbuilder.builder.state import StageState
from idpbuilder.digest import Digest
from idpbuilder.dockerfile import Dockerfile, Stage, parse_dockerfile
from idpbuilder.errors import BuildError, DockerfileParseError, NotFoundError
from idpbuilder.image import commit_image
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.reference import Reference

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = [
    "BuildOptions",
    "BuildResult",
    "Builder",
    "NullReporter",
    "StepInfo",
    "StepReporter",
    "default_dockerfile",
]


_RECURSION_LIMIT = 8000


class Builder:
    """Runs a Dockerfile build against a store. One instance per build."""

    def __init__(
        self,
        store: Store,
        opts: BuildOptions,
        *,
        reporter: StepReporter | None = None,
        runner: Runner | None = None,
        pull: Puller | None = None,
    ) -> None:
        self.store = store
        self.opts = opts
        self.reporter: StepReporter = reporter or NullReporter()
        self._runner = runner
        self._pull = pull
        self.build_platform = Platform.host()
        self.target_platform = opts.platform or self.build_platform
        epoch = opts.source_date_epoch
        if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
            epoch = int(os.environ["SOURCE_DATE_EPOCH"])
        self.epoch = epoch

    def build(self) -> BuildResult:
        """Build the target stage, store it under every tag and return the result."""
        # a WORKDIR may legally be ~2048 directories deep (PATH_MAX); shutil.rmtree and our tree walks
        # recurse once or twice per level, past Python's default limit of 1000
        sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
        dfpath, df = self._read_dockerfile()
        session = BuildSession(
            self.store,
            self.opts,
            df.lexer(),
            dfpath,
            self.reporter,
            runner=self._runner,
            epoch=self.epoch,
        )
        try:
            return self._build(session, df)
        finally:
            session.close()

    def _read_dockerfile(self) -> tuple[Path, Dockerfile]:
        context = self.opts.context
        if not context.is_dir():
            raise NotFoundError(
                f"build context {str(context)!r} not found or not a directory",
                hint="pass the directory holding your sources, e.g. `idpbuilder build .`",
            )
        dfpath = self.opts.dockerfile or default_dockerfile(context)
        try:
            text = self.opts.dockerfile_text
            if text is None:
                text = dfpath.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(
                f"Dockerfile {str(dfpath)!r} not found",
                hint="pass its path with -f/--file, or run from the directory that holds it",
            ) from None
        except UnicodeDecodeError as e:
            raise DockerfileParseError(f"not UTF-8 text: {e}", file=str(dfpath)) from None
        try:
            return dfpath, parse_dockerfile(text, filename=str(dfpath))
        except DockerfileParseError as e:
            if e.hint is None:
                e.hint = "see the Dockerfile reference: https://docs.docker.com/reference/dockerfile/"
            raise

    def _build(self, s: BuildSession, df: Dockerfile) -> BuildResult:
        for w in df.warnings:
            self.reporter.warning(w)

        # global scope: predefined platform args, then the meta ARGs (build args override defaults)
        global_args = platform_args(self.build_platform, self.target_platform)
        for arg in df.meta_args:
            for name, default in arg.items:
                name = s.lex.process_word(name, global_args)
                if name in self.opts.build_args:
                    value: str | None = self.opts.build_args[name]
                    s.used_args.add(name)
                elif default is not None:
                    value = s.lex.process_word(default, global_args)
                else:
                    value = None
                s.meta_declared[name] = value
                if value is not None:
                    global_args[name] = value
                else:
                    global_args.pop(name, None)

        bases = [_expand_from(s, st, global_args) for st in df.stages]
        graph = StageGraph(df.stages, bases)
        for i in range(len(df.stages)):
            graph.deps(i)  # reject --from references to later stages anywhere in the file
        target = graph.target_index(self.opts.target)
        executor = StageExecutor(
            s,
            df,
            graph,
            build_platform=self.build_platform,
            target_platform=self.target_platform,
            global_args=global_args,
            target_name=df.stages[target].name or "default",
            pull=self._pull,
        )
        executor.build(graph.needed(target))

        final = executor.results[target]
        if self.opts.platform is not None:
            # an explicit target platform labels the image (BuildKit), whatever the base image says
            p = self.opts.platform
            final.config.update(os=p.os, architecture=p.architecture)
            final.config.pop("variant", None)
            if p.variant:
                final.config["variant"] = p.variant
        for k, v in self.opts.labels.items():
            final.c.setdefault("Labels", {})
            final.c["Labels"] = {**(final.c.get("Labels") or {}), k: v}
        unused = sorted(k for k in self.opts.build_args if k not in s.used_args and k not in PROXY_ARGS)
        if unused:
            self.reporter.warning(f"one or more build args were not consumed: {', '.join(unused)}")
        manifest = _commit(s, final)
        tags: list[str] = []
        for t in self.opts.tags:
            key = Reference.parse(t).store_key
            self.store.set_ref(key, manifest)
            tags.append(key)
        if not tags:
            self.store.add_untagged(manifest)  # docker's <none> image: listed, usable by id, kept by gc
        image_id = Digest.parse(self.store.read_json(manifest.digest)["config"]["digest"])
        lineage = {target}
        below = graph.base_stage(target)
        while below is not None:
            lineage.add(below)
            below = graph.base_stage(below)
        return BuildResult(
            manifest,
            image_id,
            tuple(tags),
            executor.step_no,
            executor.cached_steps,
            layers=tuple(final.layers),
            cache_entries=tuple(s.cache_entries),
            final_stages=frozenset(lineage),
        )


def _expand_from(s: BuildSession, stage: Stage, global_args: dict[str, str]) -> str:
    """A stage's FROM value expanded against the global ARGs (marking the build args it uses)."""
    try:
        base = s.lex.process_word(stage.base, global_args)
    except BuildError as e:
        raise DockerfileParseError(
            e.message, file=str(s.dockerfile_path), line=stage.node.start_line
        ) from None
    for name in s.lex.used_vars(stage.base, global_args):
        if name in s.opts.build_args:
            s.used_args.add(name)
    if not base:
        raise BuildError(
            f"{s.where(stage.node)}: base name ({stage.base}) should not be blank",
            hint="give FROM an image name, or set the ARG it uses with --build-arg",
        )
    return base


def _commit(s: BuildSession, st: StageState) -> Descriptor:
    """Store the stage as an image: empty config fields dropped, created = the last history entry's."""
    cfg = dict(st.config)
    c = dict(cfg["config"])
    for k in [k for k, v in c.items() if v in (None, {}, [], "") and k not in ("Cmd", "Entrypoint")]:
        c.pop(k)
    for k in ("Cmd", "Entrypoint"):
        if k in c and c[k] is None:
            c.pop(k)
    cfg["config"] = c
    hist = cfg.get("history") or []
    cfg["created"] = hist[-1]["created"] if hist else s.created(None)
    cfg["rootfs"] = {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in st.layers]}
    return commit_image(s.store, cfg, st.layers)
