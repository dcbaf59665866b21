"""The Dockerfile build engine: stage graph → per-stage dispatch of typed instructions → image in the store.

Shape: BuildKit's dispatcher over buildah's imperative stage executor. Each stage keeps one mutable
``StageState`` (config, layers, cache chain, lazily indexed rootfs). Every instruction folds its
expanded form into the stage's cache chain; layer-producing steps (COPY/ADD/RUN/WORKDIR) look the
chain up in the store's build cache before doing any work (COPY/ADD add the digest of their sources).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from idpbuilder.builder import config as cfgmod
from idpbuilder.builder.add import download, extract_archive, is_archive, is_git, is_url, parse_checksum
from idpbuilder.builder.cache import FileHashCache, chain_next, source_digest
from idpbuilder.builder.copy import CopyOptions, LayerPlan, Matcher, expand_sources, iter_parents_matches
from idpbuilder.builder.fs import (
    DIR,
    FILE,
    ContextFS,
    Meta,
    SourceFS,
    clean,
    contains_wildcards,
    resolve_path,
)
from idpbuilder.builder.modes import ChmodSpec, Owner, parse_chmod, resolve_owner
from idpbuilder.builder.rootfs import ImageFS, LayerMember
from idpbuilder.builder.stages import StageGraph
from idpbuilder.digest import Digest
from idpbuilder.errors import (
    BuildError,
    DockerfileParseError,
    IdpError,
    Interrupted,
    NotFoundError,
    RunFailedError,
    UsageError,
)
from idpbuilder.image import Image, Layer, commit_image
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.reference import Reference

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = ["BuildOptions", "BuildResult", "Builder", "NullReporter", "Reporter", "StepInfo"]

log = logging.getLogger("idpbuilder.builder")

# the instructions BuildKit numbers (and shows as steps); metadata-only ones are applied silently
NUMBERED = frozenset({"Run", "Copy", "Add", "Workdir"})

PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)


# ------------------------------------------------------------------ options, results, progress


@dataclass(frozen=True)
class BuildOptions:
    """Everything a build needs from the user."""

    context: Path
    dockerfile: Path | None = None  # default: context/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    no_cache: bool = False
    network: str = "host"
    secrets: Mapping[str, Path | str] = field(default_factory=dict)  # id -> file path (or value for env=)
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class BuildResult:
    """The built image: manifest descriptor, image id (config digest) and the tags set."""

    manifest: Descriptor
    image_id: Digest
    tags: tuple[str, ...]
    steps: int
    cached: int


@dataclass(frozen=True)
class StepInfo:
    """One step as the progress display shows it: ``[stage n/total] TEXT``; ``stage`` is empty when the
    Dockerfile has a single stage (BuildKit then prints ``[n/total] TEXT``).

    As BuildKit numbers them: ``number``/``total`` count the stage's FROM (of an image) and its RUN, COPY,
    ADD and WORKDIR instructions; ``id`` is the build-wide sequence number (``#id`` of output lines)."""

    number: int
    total: int
    stage: str
    text: str
    id: int = 0

    @property
    def label(self) -> str:
        """``[stage n/total] TEXT``, the index padded to the width of the total as BuildKit pads it."""
        stage = f"{self.stage} " if self.stage else ""
        return f"[{stage}{self.number:>{len(str(self.total))}}/{self.total}] {self.text}"


class Reporter(Protocol):
    """Receives build progress (the CLI renders it; the engine never prints)."""

    def step_start(self, step: StepInfo) -> None: ...

    def step_output(self, step: StepInfo, data: bytes) -> None: ...

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None: ...

    def warning(self, message: str) -> None: ...


class NullReporter:
    """A reporter that ignores everything."""

    def step_start(self, step: StepInfo) -> None:
        return None

    def step_output(self, step: StepInfo, data: bytes) -> None:
        return None

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        return None

    def warning(self, message: str) -> None:
        return None


# ------------------------------------------------------------------ per-stage state


@dataclass
class StageState:
    """The mutable state of one stage while its instructions run."""

    index: int
    name: str
    platform: Platform
    config: dict[str, Any]
    layers: list[Layer]
    chain: str
    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value
    cmd_set: bool = False
    fs: ImageFS | None = None
    auto_args: dict[str, str] = field(default_factory=dict)  # BuildKit's automatic args (TARGETOS, ...)

    @property
    def c(self) -> dict[str, Any]:
        return self.config["config"]  # type: ignore[no-any-return]

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.c.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def expansion_env(self) -> dict[str, str]:
        """Variables for word expansion: ARGs, overridden by ENV (Docker's precedence)."""
        return {**self.args, **self.env}

    @property
    def workdir(self) -> str:
        return str(self.c.get("WorkingDir") or "/")

    @property
    def shell(self) -> list[str]:
        sh = self.c.get("Shell")
        return list(sh) if sh else ["/bin/sh", "-c"]


class _ExcludeMatcher:
    """--exclude patterns with .dockerignore semantics (a match on a parent excludes the child)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        from idpbuilder.dockerfile.dockerignore import IgnoreMatcher

        self.m = IgnoreMatcher(list(patterns))

    def matches(self, relpath: str) -> bool:
        return bool(self.m.matches(relpath))


# ------------------------------------------------------------------ the builder


class Builder:
    """Runs a Dockerfile build against a store. One instance per build."""

    def __init__(
        self,
        store: Store,
        opts: BuildOptions,
        *,
        reporter: Reporter | None = None,
        runner: Any | None = None,
        pull: Callable[[Store, str, Platform | None], Descriptor] | None = None,
    ) -> None:
        self.store = store
        self.opts = opts
        self.reporter: Reporter = reporter or NullReporter()
        self._runner = runner
        self._pull = pull
        self.build_platform = Platform.host()
        self.target_platform = opts.platform or self.build_platform
        epoch = opts.source_date_epoch
        if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
            epoch = int(os.environ["SOURCE_DATE_EPOCH"])
        self.epoch = epoch
        self.start = time.time()
        self.used_args: set[str] = set()
        self.step_no = 0  # build-wide sequence of shown steps
        self.cached_steps = 0
        self._step_pos: dict[int, list[int]] = {}  # stage index -> [steps shown so far, stage total]
        self._fs_to_close: list[ImageFS] = []
        self._tmp: Path | None = None
        self._hashes = FileHashCache(self.store.path_for("build") / "filehashes.json")
        self._context_fs: ContextFS | None = None

    # -------------------------------------------------------------- entry point
    def build(self) -> BuildResult:
        """Build the target stage, store it under every tag and return the result."""
        try:
            return self._build()
        finally:
            for f in self._fs_to_close:
                f.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._hashes.save()

    def _build(self) -> BuildResult:
        from idpbuilder.dockerfile.instructions import parse_dockerfile

        context = self.opts.context
        if not context.is_dir():
            raise NotFoundError(
                f"build context {str(context)!r} not found or not a directory",
                hint="pass the directory holding your sources, e.g. `idpbuilder build .`",
            )
        dfpath = self.opts.dockerfile or default_dockerfile(context)
        try:
            text = dfpath.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(
                f"Dockerfile {str(dfpath)!r} not found",
                hint="pass its path with -f/--file, or run from the directory that holds it",
            ) from None
        except UnicodeDecodeError as e:
            raise DockerfileParseError(f"not UTF-8 text: {e}", file=str(dfpath)) from None
        try:
            df = parse_dockerfile(text, filename=str(dfpath))
        except DockerfileParseError as e:
            if e.hint is None:
                e.hint = "see the Dockerfile reference: https://docs.docker.com/reference/dockerfile/"
            raise
        self.df = df
        self.lex = df.lexer()
        self.dockerfile_path = dfpath
        for w in getattr(df, "warnings", ()):
            self.reporter.warning(w)

        # global scope: predefined platform args, then the meta ARGs (build args override defaults)
        self.global_args: dict[str, str] = self._platform_args(self.target_platform)
        self.meta_declared: dict[str, str | None] = {}
        for arg in df.meta_args:
            for name, default in arg.items:
                name = self.lex.process_word(name, self.global_args)
                if name in self.opts.build_args:
                    value: str | None = self.opts.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    value = self.lex.process_word(default, self.global_args)
                else:
                    value = None
                self.meta_declared[name] = value
                if value is not None:
                    self.global_args[name] = value
                else:
                    self.global_args.pop(name, None)

        bases = [self._expand_from(st) for st in df.stages]
        graph = StageGraph(df.stages, bases)
        for i in range(len(df.stages)):
            graph.deps(i)  # reject --from references to later stages anywhere in the file
        target = graph.target_index(self.opts.target)
        self.graph = graph
        order = graph.needed(target)
        results: dict[int, StageState] = {}
        self.results = results
        self.target_name = df.stages[target].name or "default"
        for i in order:
            if i not in results:
                results[i] = self._build_stage(i, target_name=self.target_name)

        final = results[target]
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
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.reporter.warning(f"one or more build args were not consumed: {', '.join(unused)}")
        manifest = self._commit(final)
        tags: list[str] = []
        for t in self.opts.tags:
            key = Reference.parse(t).store_key
            self.store.set_ref(key, manifest)
            tags.append(key)
        if not tags:
            self.store.add_untagged(manifest)  # docker's <none> image: listed, usable by id, kept by gc
        image_id = Digest.parse(self.store.read_json(manifest.digest)["config"]["digest"])
        return BuildResult(manifest, image_id, tuple(tags), self.step_no, self.cached_steps)

    def _commit(self, st: StageState) -> Descriptor:
        cfg = dict(st.config)
        c = dict(cfg["config"])
        for k in [k for k, v in c.items() if v in (None, {}, [], "") and k not in ("Cmd", "Entrypoint")]:
            if k != "WorkingDir":
                c.pop(k)
        for k in ("Cmd", "Entrypoint"):
            if k in c and c[k] is None:
                c.pop(k)
        cfg["config"] = c
        hist = cfg.get("history") or []
        cfg["created"] = hist[-1]["created"] if hist else self._created(None)
        cfg["rootfs"] = {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in st.layers]}
        return commit_image(self.store, cfg, st.layers)

    # -------------------------------------------------------------- args and platforms
    def _platform_args(self, target: Platform) -> dict[str, str]:
        b = self.build_platform
        return {
            "BUILDPLATFORM": str(b),
            "BUILDOS": b.os,
            "BUILDARCH": b.architecture,
            "BUILDVARIANT": b.variant or "",
            "TARGETPLATFORM": str(target),
            "TARGETOS": target.os,
            "TARGETARCH": target.architecture,
            "TARGETVARIANT": target.variant or "",
        }

    def _expand_from(self, stage: Any) -> str:
        try:
            base = self.lex.process_word(stage.base, self.global_args)
        except BuildError as e:
            raise DockerfileParseError(
                e.message, file=str(self.dockerfile_path), line=stage.node.start_line
            ) from None
        for name in self.lex.used_vars(stage.base, self.global_args):
            if name in self.opts.build_args:
                self.used_args.add(name)
        if not base:
            raise BuildError(
                f"{self._where(stage.node)}: base name ({stage.base}) should not be blank",
                hint="give FROM an image name, or set the ARG it uses with --build-arg",
            )
        return base

    def _where(self, node: Any) -> str:
        return f"{self.dockerfile_path.name}:{node.start_line}"

    # -------------------------------------------------------------- stages
    def _stage_total(self, i: int) -> int:
        """BuildKit's step count of stage ``i``: FROM (unless scratch or a stage) + RUN/COPY/ADD/WORKDIR."""
        base = self.graph.bases[i]
        n = 0 if base.lower() == "scratch" or self.graph.base_stage(i) is not None else 1
        return n + sum(1 for c in self.df.stages[i].commands if type(c).__name__ in NUMBERED)

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

    def _build_stage(self, i: int, *, target_name: str) -> StageState:
        try:
            return self._build_stage_at(i, target_name=target_name)
        except IdpError as e:
            raise _located(e, self._where(self.df.stages[i].node)) from None

    def _build_stage_at(self, i: int, *, target_name: str) -> StageState:
        stage = self.df.stages[i]
        sname = stage.name or f"stage-{i}"
        base = self.graph.bases[i]
        platform = self.target_platform
        if stage.platform:
            plat_text = self.lex.process_word(stage.platform, self.global_args)
            platform = Platform.parse(plat_text)
        base_stage = self.graph.base_stage(i)
        from_numbered = base_stage is None and base.lower() != "scratch"
        step = self._step(i, sname, f"FROM {base}", numbered=from_numbered)
        t0 = time.monotonic()
        if from_numbered:
            self.reporter.step_start(step)
        onbuild: list[str] = []
        if base_stage is not None:
            parent = self.results[base_stage]
            cfg = cfgmod.new_config(parent.config, parent.platform)
            st = StageState(i, sname, parent.platform, cfg, list(parent.layers), parent.chain)
            onbuild = list(cfg["config"].get("OnBuild") or [])
        elif base.lower() == "scratch":
            cfg = cfgmod.new_config(None, platform)
            st = StageState(
                i, sname, platform, cfg, [], chain_next("", {"from": "scratch", "platform": str(platform)})
            )
        else:
            wanted = platform if (stage.platform or self.opts.platform) else None
            img = self._load_image(base, wanted)
            cfg = cfgmod.new_config(img.config, img.platform)
            from_key: dict[str, str] = {"from": str(img.manifest_descriptor.digest)}
            if wanted is not None and not wanted.matches(img.platform):
                # BuildKit builds on (InvalidBaseImagePlatform) but for the requested platform: its
                # steps are not the same as the base platform's, and the image is labelled with it
                self.reporter.warning(
                    f"{self._where(stage.node)}: base image {base} is {img.platform}, "
                    f"not the requested {wanted}"
                )
                from_key["platform"] = str(wanted)
            st = StageState(i, sname, img.platform, cfg, list(img.layers), chain_next("", from_key))
            onbuild = list(cfg["config"].get("OnBuild") or [])
        if onbuild:
            st.c.pop("OnBuild", None)
        if from_numbered:
            self.reporter.step_done(step, cached=False, seconds=time.monotonic() - t0)
        # BuildKit's automatic stage args
        auto = self._platform_args(self.target_platform)
        auto["TARGETSTAGE"] = target_name
        st.auto_args = auto
        for trigger in onbuild:
            self._run_onbuild(st, trigger)
        for cmd in stage.commands:
            self._dispatch(st, cmd)
        return st

    def stage_result(self, j: int) -> StageState:
        """The built state of stage ``j``, building it now when no static dependency asked for it
        (an ONBUILD trigger's ``--from`` is only known when the trigger runs)."""
        if j not in self.results:
            for dep in self.graph.needed(j):
                if dep not in self.results:
                    self.results[dep] = self._build_stage(dep, target_name=self.target_name)
        return self.results[j]

    def _run_onbuild(self, st: StageState, trigger: str) -> None:
        from idpbuilder.dockerfile.instructions import parse_dockerfile

        df = parse_dockerfile(f"FROM scratch\n{trigger}\n", filename=f"ONBUILD {trigger.splitlines()[0]}")
        for cmd in df.stages[0].commands:
            if type(cmd).__name__ in NUMBERED:
                self._step_pos.setdefault(st.index, [0, self._stage_total(st.index)])[1] += 1
            self._dispatch(st, cmd, onbuild=True)

    def _load_image(self, ref_text: str, platform: Platform | None) -> Image:
        try:
            ref = Reference.parse(ref_text)
        except UsageError as e:
            raise BuildError(f"invalid base image reference {ref_text!r}: {e.message}", hint=e.hint) from None
        desc = self.store.lookup(str(ref))
        if desc is None:
            desc = self._pull_image(str(ref), platform)
        try:
            return Image.load(self.store, desc, platform=platform)
        except NotFoundError:
            if platform is None:
                raise
            return Image.load(self.store, self._pull_image(str(ref), platform), platform=platform)

    def _pull_image(self, ref: str, platform: Platform | None) -> Descriptor:
        if self._pull is not None:
            try:
                return self._pull(self.store, ref, platform)
            except IdpError as e:
                raise _prefixed(e, f"pulling {ref}") from None
        try:
            from idpbuilder.registry.pull import pull_image
        except ImportError as e:  # pragma: no cover - the registry package ships with the tool
            raise BuildError(
                f"image {ref!r} is not in the local store and pulling is unavailable: {e}"
            ) from None
        return pull_image(self.store, ref, platform=platform)

    # -------------------------------------------------------------- dispatch
    def _dispatch(self, st: StageState, cmd: Any, *, onbuild: bool = False) -> None:
        kind = type(cmd).__name__
        numbered = kind in NUMBERED
        text = cmd.node.original if kind != "Onbuild" else f"ONBUILD {cmd.expression}"
        step = self._step(st.index, st.name, ("ONBUILD " if onbuild else "") + text, numbered=numbered)
        t0 = time.monotonic()
        if numbered:
            self.reporter.step_start(step)
        handler = getattr(self, f"_do_{kind.lower()}", None)
        if handler is None:
            raise BuildError(f"{self._where(cmd.node)}: {kind.upper()} is not supported by this builder")
        try:
            cached = bool(handler(st, cmd, step))
        except DockerfileParseError:
            raise
        except RunFailedError as e:
            if e.hint:
                raise
            where = "the " + ("ONBUILD trigger" if onbuild else f"RUN at {self._where(cmd.node)}")
            raise RunFailedError(
                e.message,
                exit_status=e.exit_status,
                output_tail=e.output_tail,
                hint=f"{where} exited with status {e.exit_status}; its output is shown above",
            ) from None
        except IdpError as e:
            if e.hint is None and not isinstance(e, Interrupted):
                e.hint = f"check the {kind.upper()} instruction at {self._where(cmd.node)}"
            raise _located(e, self._where(cmd.node)) from None
        if not numbered:
            return
        if cached:
            self.cached_steps += 1
        self.reporter.step_done(step, cached=cached, seconds=time.monotonic() - t0)

    def _created(self, rec: dict[str, Any] | None) -> str:
        if self.epoch is not None:
            return cfgmod.rfc3339(self.epoch)
        if rec is not None and "created" in rec:
            return str(rec["created"])
        return cfgmod.rfc3339(self.start)

    def _meta_step(self, st: StageState, created_by: str, chain_item: Any) -> None:
        """A metadata-only step: an empty-layer history entry (its time remembered for reproducible
        rebuilds). As in BuildKit it does not enter the chain: a later step's key holds what it uses
        (RUN: env, user, workdir, shell; COPY: expanded paths), so a LABEL or an ENV that a COPY does not
        use leaves that COPY cached."""
        key = chain_next(st.chain, chain_item)
        rec = None if self.opts.no_cache else self.store.cache_get(key)
        if rec is None:
            rec = {"created": self._created(None)}
            if not self.opts.no_cache:
                self.store.cache_put(key, rec, [])
        cfgmod.add_history(st.config, created_by, created=self._created(rec), empty_layer=True)

    def _layer_step(
        self,
        st: StageState,
        created_by: str,
        key: str,
        make: Callable[[], tuple[Layer, list[LayerMember]] | None],
    ) -> bool:
        """A layer step: reuse the cached layer for ``key`` or ``make`` one; returns True when cached."""
        st.chain = key
        rec = None if self.opts.no_cache else self.store.cache_get(key)
        if rec is not None:
            layer_json = rec.get("layer")
            if layer_json is None:
                cfgmod.add_history(st.config, created_by, created=self._created(rec), empty_layer=True)
                return True
            layer = Layer(Descriptor.from_json(layer_json), Digest.parse(rec["diff_id"]))
            self._append_layer(st, layer, None)
            cfgmod.add_history(st.config, created_by, created=self._created(rec), empty_layer=False)
            return True
        made = make()
        created = self._created(None)
        if made is None:
            rec = {"created": created, "layer": None}
            if not self.opts.no_cache:
                self.store.cache_put(key, rec, [])
            cfgmod.add_history(st.config, created_by, created=created, empty_layer=True)
            return False
        layer, members = made
        rec = {"created": created, "layer": layer.descriptor.to_json(), "diff_id": str(layer.diff_id)}
        self.store.cache_put(key, rec, [layer.descriptor.digest])
        self._append_layer(st, layer, members)
        cfgmod.add_history(st.config, created_by, created=created, empty_layer=False)
        return False

    def _append_layer(self, st: StageState, layer: Layer, members: list[LayerMember] | None) -> None:
        st.layers.append(layer)
        if st.fs is not None:
            st.fs.add_layer(layer, members)

    def _rootfs(self, st: StageState) -> ImageFS:
        if st.fs is None:
            st.fs = ImageFS(self.store, list(st.layers), name=f"stage {st.name}")
            self._fs_to_close.append(st.fs)
        return st.fs

    def _scratch_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="build-", dir=self.store.path_for("build", "tmp")))
        return self._tmp

    # -------------------------------------------------------------- metadata instructions
    def _do_arg(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        parts: list[str] = []
        auto = st.auto_args
        for name, default in cmd.items:
            name = self.lex.process_word(name, st.expansion_env())
            value: str | None
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                value = self.lex.process_word(default, st.expansion_env())
            elif name in self.meta_declared:
                value = self.meta_declared[name]
            elif name in auto:
                value = auto[name]
            else:
                value = None
            if value is not None:
                st.args[name] = value
                parts.append(f"{name}={value}")
            else:
                st.args.pop(name, None)
                parts.append(name)
            if getattr(cmd, "required", False) and value is None:
                raise BuildError(f"ARG {name} is required", hint=f"pass --build-arg {name}=VALUE")
        self._meta_step(st, "ARG " + " ".join(parts), {"arg": parts})
        return False

    def _do_env(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        env = st.expansion_env()
        pairs = [(self.lex.process_word(k, env), self.lex.process_word(v, env)) for k, v in cmd.pairs]
        for k, v in pairs:
            cfgmod.set_env(st.config, k, v)
        text = " ".join(f"{k}={v}" for k, v in pairs)
        self._meta_step(st, "ENV " + text, {"env": pairs})
        return False

    def _do_label(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        env = st.expansion_env()
        pairs = [(self.lex.process_word(k, env), self.lex.process_word(v, env)) for k, v in cmd.pairs]
        labels = dict(st.c.get("Labels") or {})
        for k, v in pairs:
            labels[k] = v
        st.c["Labels"] = labels
        self._meta_step(st, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), {"label": pairs})
        return False

    def _do_maintainer(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        name = self.lex.process_word(cmd.name, st.expansion_env())
        st.config["author"] = name
        self._meta_step(st, f"MAINTAINER {name}", {"maintainer": name})
        return False

    def _do_user(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        user = self.lex.process_word(cmd.user, st.expansion_env())
        st.c["User"] = user
        self._meta_step(st, f"USER {user}", {"user": user})
        return False

    def _do_expose(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        ports: dict[str, dict[str, Any]] = dict(st.c.get("ExposedPorts") or {})
        added: list[str] = []
        for word in cmd.ports:
            for p in self.lex.process_words(word, st.expansion_env()):
                for q in _expand_port(p):
                    ports[q] = {}
                    added.append(q)
        st.c["ExposedPorts"] = ports
        self._meta_step(st, "EXPOSE " + cfgmod.go_list(sorted(set(added))), {"expose": sorted(set(added))})
        return False

    def _do_volume(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        vols: dict[str, dict[str, Any]] = dict(st.c.get("Volumes") or {})
        paths = [self.lex.process_word(p, st.expansion_env()) for p in cmd.paths]
        for p in paths:
            if not p.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            vols[p] = {}
        st.c["Volumes"] = vols
        self._meta_step(st, "VOLUME " + cfgmod.go_list(paths), {"volume": paths})
        return False

    def _do_shell(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        st.c["Shell"] = list(cmd.argv)
        self._meta_step(st, "SHELL " + cfgmod.go_list(list(cmd.argv)), {"shell": list(cmd.argv)})
        return False

    def _do_stopsignal(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        sig = self.lex.process_word(cmd.signal, st.expansion_env())
        st.c["StopSignal"] = sig
        self._meta_step(st, f"STOPSIGNAL {sig}", {"stopsignal": sig})
        return False

    def _do_healthcheck(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        if cmd.test is None:
            hc: dict[str, Any] = {"Test": ["NONE"]}
        else:
            hc = {"Test": list(cmd.test)}
            for attr, key in (
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start_period", "StartPeriod"),
                ("start_interval", "StartInterval"),
                ("retries", "Retries"),
            ):
                v = getattr(cmd, attr, 0)
                if v:
                    hc[key] = v
        st.c["Healthcheck"] = hc
        text = "HEALTHCHECK " + ("NONE" if cmd.test is None else cfgmod.go_quote_list(list(cmd.test)))
        self._meta_step(st, text, {"healthcheck": hc})
        return False

    def _argv(self, st: StageState, cmd: Any) -> list[str]:
        if cmd.json:
            return list(cmd.args)
        return [*st.shell, " ".join(cmd.args)]

    def _do_cmd(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        argv = self._argv(st, cmd)
        st.c["Cmd"] = argv
        st.cmd_set = True
        self._meta_step(st, "CMD " + cfgmod.go_quote_list(argv), {"cmd": argv})
        return False

    def _do_entrypoint(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        argv = self._argv(st, cmd)
        st.c["Entrypoint"] = argv
        if not st.cmd_set:
            st.c["Cmd"] = None
        self._meta_step(
            st, "ENTRYPOINT " + cfgmod.go_quote_list(argv), {"entrypoint": argv, "cmdset": st.cmd_set}
        )
        return False

    def _do_onbuild(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        triggers = list(st.c.get("OnBuild") or [])
        triggers.append(cmd.expression)
        st.c["OnBuild"] = triggers
        self._meta_step(st, f"ONBUILD {cmd.expression}", {"onbuild": cmd.expression})
        return False

    # -------------------------------------------------------------- WORKDIR
    def _owner_for_user(self, st: StageState) -> Owner | None:
        user = str(st.c.get("User") or "")
        if not user:
            return None
        fs = self._rootfs(st)
        try:
            return resolve_owner(user, lambda p: fs.read_file(resolve_path(fs, p)))
        except BuildError:
            return None

    def _do_workdir(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        path = self.lex.process_word(cmd.path, st.expansion_env())
        wd = clean(posixpath.join(st.workdir, path)) if path else st.workdir
        st.c["WorkingDir"] = wd
        key = chain_next(st.chain, {"workdir": wd, "user": st.c.get("User") or ""})

        def make() -> tuple[Layer, list[LayerMember]] | None:
            fs = self._rootfs(st)
            owner = self._owner_for_user(st)
            plan = LayerPlan(fs, CopyOptions(owner=owner, created_mtime=self._mtime_for_created()))
            plan.mkdir_all(wd)
            if not plan.entries:
                return None
            return plan.write(self.store)

        return self._layer_step(st, f"WORKDIR {wd}", key, make)

    def _mtime_for_created(self) -> float:
        return float(self.epoch) if self.epoch is not None else float(int(self.start))

    # -------------------------------------------------------------- COPY / ADD
    def _do_copy(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        return self._copy_like(st, cmd, is_add=False)

    def _do_add(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        return self._copy_like(st, cmd, is_add=True)

    def _context(self) -> ContextFS:
        if self._context_fs is None:
            from idpbuilder.dockerfile.dockerignore import IgnoreMatcher, read_ignore_file

            patterns = read_ignore_file(self.opts.context, self.dockerfile_path)
            self._context_fs = ContextFS(self.opts.context, IgnoreMatcher(patterns) if patterns else None)
        return self._context_fs

    def _copy_source_fs(self, st: StageState, from_: str | None) -> tuple[SourceFS, str, bool]:
        """(view, cache identity, is the build context) for a COPY --from value."""
        if not from_:
            return self._context(), "context", True
        if "$" in from_:
            raise BuildError(
                "variable expansion is not supported for --from, define a new stage with FROM using "
                "ARG from global scope as a workaround"
            )
        j = self.graph.index_of(from_, before=st.index)
        if j is not None:
            if j >= st.index:
                raise BuildError(
                    f"cannot copy from stage {from_!r}, it needs to be defined before current stage",
                    hint="move the stage it copies from above this one",
                )
            src = self.stage_result(j)
            fs = ImageFS(self.store, list(src.layers), name=f"stage {src.name}")
            self._fs_to_close.append(fs)
            return fs, "stage:" + ",".join(str(layer.diff_id) for layer in src.layers), False
        try:
            img = self._load_image(from_, self.opts.platform)
        except IdpError as e:
            names = [s.name for s in self.df.stages[: st.index] if s.name]
            if names and not isinstance(e, Interrupted):
                e.hint = "stages defined before this one: " + ", ".join(names)
            raise _prefixed(e, f"--from={from_} is not an earlier stage, and as an image") from None
        fs = ImageFS(self.store, list(img.layers), name=f"image {from_}")
        self._fs_to_close.append(fs)
        return fs, "image:" + str(img.manifest_descriptor.digest), False

    def _copy_like(self, st: StageState, cmd: Any, *, is_add: bool) -> bool:
        kw = "ADD" if is_add else "COPY"
        raw_from = getattr(cmd, "from_", None)
        src_fs, src_identity, from_context = self._copy_source_fs(st, raw_from)
        env = st.expansion_env()
        sources = [self.lex.process_word(s, env) for s in cmd.sources]
        dest_raw = self.lex.process_word(cmd.dest, env)
        chown = self.lex.process_word(cmd.chown, env) if cmd.chown else None
        chmod_text = self.lex.process_word(cmd.chmod, env) if cmd.chmod else None
        chmod: ChmodSpec | None = parse_chmod(chmod_text) if chmod_text else None
        excludes = [self.lex.process_word(e, env) for e in cmd.exclude]
        exclude: Matcher | None = _ExcludeMatcher(excludes) if excludes else None
        checksum = (
            self.lex.process_word(cmd.checksum, env) if is_add and getattr(cmd, "checksum", None) else None
        )
        unpack = getattr(cmd, "unpack", None) if is_add else False
        heredocs = []
        for h in cmd.heredocs:
            content = h.content
            if h.expand:
                lex = self.lex.__class__("\\")
                lex.skip_process_quotes = True
                content = lex.process_word(content, env)
            heredocs.append((h.name, content))

        if checksum is not None:
            parse_checksum(checksum)
            if any(not is_url(s) for s in sources) or heredocs:
                raise BuildError(
                    "checksum requires HTTP(S) or Git sources", hint="remove --checksum for local files"
                )
        if not is_add and any(is_url(s) for s in sources):
            raise BuildError(
                f"source can't be a URL for COPY: {next(s for s in sources if is_url(s))}",
                hint="use ADD to download files",
            )
        for s in sources:
            if is_add and is_git(s):
                raise BuildError(
                    f"git sources are not supported: {s}", hint="clone the repository into the context"
                )

        multiple = len(sources) + len(heredocs) > 1
        dest_is_dir = dest_raw in ("", ".") or dest_raw.endswith("/") or dest_raw.endswith("/.")
        dest_abs = clean(posixpath.join(st.workdir, dest_raw))

        # what the sources are: (kind, source path(s)) — computed before any cache lookup
        downloads: list[Any] = []
        local: list[tuple[str, str | None]] = []  # (resolved view path, parents-relative path or name)
        for s in sources:
            if is_add and is_url(s):
                downloads.append(download(s, self._scratch_dir(), checksum=checksum))
                continue
            if cmd.parents:
                local.extend(self._parents_sources(src_fs, s))
                continue
            local.extend((m, "name:" + named) for named, m in expand_sources(src_fs, s))
        if not local and not downloads and not heredocs and not cmd.parents:
            raise BuildError(
                f"no source files were specified (nothing matched {' '.join(sources)!r})",
                hint="check the wildcard, and that .dockerignore does not exclude the files",
            )
        if len(local) + len(downloads) + len(heredocs) > 1:
            multiple = True

        content = (
            source_digest(
                src_fs, [p for p, _ in local], exclude=exclude, hashes=self._hashes if from_context else None
            )
            if from_context
            else src_identity + "|" + ",".join(f"{p}:{r}" for p, r in local)
        )
        flags = []
        if chown:
            flags.append(f"--chown={chown}")
        if chmod_text:
            flags.append(f"--chmod={chmod_text}")
        if raw_from:
            flags.append(f"--from={raw_from}")
        if cmd.link:
            flags.append("--link")
        if cmd.parents:
            flags.append("--parents")
        for e in excludes:
            flags.append(f"--exclude={e}")
        # BuildKit's history text: sources, heredoc names, dest (no flags)
        shown_sources = [*sources, *(f"<<{n}" for n, _ in heredocs)]
        created_by = f"{kw} {' '.join([*shown_sources, dest_raw])} # buildkit"
        parent = "link" if cmd.link else st.chain
        key = chain_next(
            parent,
            {
                "op": kw,
                "flags": flags,
                "sources": sources,
                "dest": dest_abs,
                "dest_dir": dest_is_dir or multiple,
                "content": content,
                "heredocs": heredocs,
                "downloads": [(d.sha256, d.filename, d.mtime) for d in downloads],
                "unpack": unpack,
                "workdir": st.workdir,
            },
        )
        if cmd.link:
            key = chain_next(st.chain, {"linked": key})

        def make() -> tuple[Layer, list[LayerMember]] | None:
            dest_view = None if cmd.link else self._rootfs(st)
            owner: Owner | None = None
            if chown:
                owner_fs = self._rootfs(st)
                owner = resolve_owner(chown, lambda p: owner_fs.read_file(resolve_path(owner_fs, p)))
            plan = LayerPlan(
                dest_view,
                CopyOptions(
                    owner=owner,
                    chmod=chmod,
                    exclude=exclude,
                    mtime_clamp=float(self.epoch) if self.epoch is not None else None,
                    created_mtime=self._mtime_for_created(),
                ),
            )
            as_dir = dest_is_dir or multiple
            if as_dir:
                plan.mkdir_all(dest_abs)
            else:
                plan.mkdir_all(posixpath.dirname(dest_abs))
            if isinstance(src_fs, ImageFS):
                wanted: list[str] = []
                for p, _ in local:
                    m = src_fs.lstat(p)
                    if m is not None and m.kind == DIR:
                        wanted.extend(q for q, qm in _walk_files(src_fs, p))
                    else:
                        wanted.append(p)
                src_fs.prefetch(wanted)
            for name, data in heredocs:
                meta = Meta(
                    FILE,
                    chmod.apply(0o644, is_dir=False) if chmod else 0o644,
                    owner.uid if owner else 0,
                    owner.gid if owner else 0,
                    len(data.encode()),
                    self._mtime_for_created(),
                )
                target = self._file_target(plan, dest_abs, name, as_dir)
                plan.add_bytes(target, data.encode(), meta)
            for d in downloads:
                if unpack is True and is_archive(_HostFile(d.path), "/f"):
                    extract_archive(
                        _HostFile(d.path), "/f", plan, plan.mkdir_all(dest_abs), self._scratch_dir()
                    )
                    continue
                mode = chmod.apply(0o600, is_dir=False) if chmod else 0o600
                mtime = d.mtime if d.mtime is not None else self._mtime_for_created()
                meta = Meta(FILE, mode, owner.uid if owner else 0, owner.gid if owner else 0, d.size, mtime)
                target = self._file_target(plan, dest_abs, d.filename, as_dir)
                plan.put_file(target, meta, _host_opener(d.path))
            for path, parents_rel in local:
                if parents_rel is not None and not parents_rel.startswith("name:"):
                    self._copy_parents(plan, src_fs, path, parents_rel, dest_abs, from_context)
                    continue
                if is_add and unpack is not False and from_context and is_archive(src_fs, path):
                    extract_archive(src_fs, path, plan, plan.mkdir_all(dest_abs), self._scratch_dir())
                    continue
                named = parents_rel[5:] if parents_rel else None
                plan.copy_source(
                    src_fs, path, dest_abs, dest_is_dir=as_dir, from_context=from_context, name=named
                )
            return plan.write(self.store)

        return self._layer_step(st, created_by, key, make)

    def _file_target(self, plan: LayerPlan, dest_abs: str, name: str, as_dir: bool) -> str:
        dreal = plan.resolve(dest_abs)
        dm = plan.view.lstat(dreal)
        if as_dir or (dm is not None and dm.kind == DIR):
            return posixpath.join(plan.mkdir_all(dest_abs), name)
        parent = plan.mkdir_all(posixpath.dirname(dest_abs))
        return posixpath.join(parent, posixpath.basename(dest_abs))

    def _parents_sources(self, fs: SourceFS, src: str) -> list[tuple[str, str | None]]:
        """--parents: (resolved view path, path kept below the destination) for each match."""
        if "/./" in src:
            base_raw, _, pattern = src.partition("/./")
        else:
            base_raw, pattern = "/", src
        base_raw = base_raw or "/"
        pattern = clean(pattern).lstrip("/")
        if contains_wildcards(base_raw):
            bases = [m for _, m in expand_sources(fs, base_raw)]
        else:
            bases = [resolve_path(fs, base_raw)]
        out: list[tuple[str, str | None]] = []
        for b in bases:
            if not contains_wildcards(pattern) and "**" not in pattern:
                p = posixpath.join(b, pattern) if pattern else b
                resolved = resolve_path(fs, p)
                if fs.lstat(resolved) is None:
                    raise BuildError(
                        f"{fs.describe(p)} not found", hint="check the path given to COPY --parents"
                    )
                out.append((resolved, pattern))
                continue
            for rel in iter_parents_matches(fs, b, pattern):
                out.append((resolve_path(fs, posixpath.join(b, rel)), rel))
        return out

    def _copy_parents(
        self, plan: LayerPlan, fs: SourceFS, src: str, rel: str, dest_abs: str, from_context: bool
    ) -> None:
        dest_root = plan.mkdir_all(dest_abs)
        parts = [p for p in rel.split("/") if p]
        # the directories between the pivot and the match keep the source directories' metadata
        src_dir = posixpath.dirname(src)
        chain = []
        for _ in parts[:-1]:
            chain.append(src_dir)
            src_dir = posixpath.dirname(src_dir)
        cur = dest_root
        for k, comp in enumerate(parts[:-1]):
            cur = posixpath.join(cur, comp)
            if plan.view.lstat(cur) is None:
                srcm = fs.lstat(chain[len(parts) - 2 - k])
                meta = plan._final_meta(srcm, from_context=from_context) if srcm else plan._dir_meta()
                plan.put_dir(cur, meta)
        target = posixpath.join(dest_root, rel) if parts else dest_root
        m = fs.lstat(src)
        if m is not None and m.kind == DIR and parts:
            plan.put_dir(target, plan._final_meta(m, from_context=from_context))
        plan.copy_tree(fs, src, target, from_context=from_context)

    # -------------------------------------------------------------- RUN
    def _do_run(self, st: StageState, cmd: Any, step: StepInfo) -> bool:
        from idpbuilder.builder.run import execute_run

        return execute_run(self, st, cmd, step)


def _prefixed(e: IdpError, prefix: str) -> IdpError:
    """``e`` itself (type, hint and context kept) with ``prefix: `` in front of its message; errors that
    carry their own location (parse errors, a failed RUN) and interruptions are left as they are."""
    if not isinstance(e, (DockerfileParseError, RunFailedError, Interrupted)):
        e.message = f"{prefix}: {e.message}"
        e.args = (e.message,)
    return e


def _located(e: IdpError, where: str) -> IdpError:
    """``e`` with ``where`` (``Dockerfile:3``) in front of its message, unless it names a place already."""
    if e.message.startswith(where.split(":", 1)[0] + ":"):
        return e
    return _prefixed(e, where)


def default_dockerfile(context: Path) -> Path:
    """CONTEXT/Dockerfile, else a lower-case CONTEXT/dockerfile (as docker does)."""
    p = context / "Dockerfile"
    if not p.exists() and (context / "dockerfile").is_file():
        return context / "dockerfile"
    return p


def _walk_files(fs: SourceFS, top: str) -> list[tuple[str, Meta]]:
    from idpbuilder.builder.fs import walk

    return [(p, m) for p, m in walk(fs, top) if m.kind == FILE]


def _expand_port(p: str) -> list[str]:
    num, _, proto = p.partition("/")
    proto = (proto or "tcp").lower()
    hint = "EXPOSE takes port[/tcp|udp|sctp] or a range a-b, ports 0 to 65535"
    if not num:
        raise BuildError(f"invalid port {p!r}", hint=hint)
    lo, sep, hi = num.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()) or int(lo) > 65535 or (sep and int(hi) > 65535):
        raise BuildError(f"invalid containerPort: {num}", hint=hint)
    if not sep:
        return [f"{int(lo)}/{proto}"]
    if int(hi) < int(lo):
        raise BuildError(f"invalid range specified for containerPort: {num}", hint=hint)
    return [f"{n}/{proto}" for n in range(int(lo), int(hi) + 1)]


def _host_opener(p: Path) -> Callable[[], Any]:
    return lambda: open(p, "rb")


class _HostFile:
    """A single host file exposed as the view path "/f" (downloads)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lstat(self, path: str) -> Meta | None:
        if path == "/":
            return Meta(DIR, 0o755)
        if path != "/f":
            return None
        return Meta(FILE, 0o600, size=self.path.stat().st_size)

    def listdir(self, path: str) -> list[str]:
        return ["f"] if path == "/" else []

    def open(self, path: str) -> Any:
        return open(self.path, "rb")

    def describe(self, path: str) -> str:
        return f"download {self.path.name}"
