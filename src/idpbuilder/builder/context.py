"""What a step handler gets instead of the builder: the build-wide ``BuildSession`` (store, options, lexer,
hash cache, scratch space, open image views, runner) and a per-step ``StepContext`` (session, stage state,
step, and a ``StageResolver`` for ``--from`` lookups). Also the two steps every handler ends with: a
metadata step (history entry only) or a layer step (cache lookup, else make the layer).

Handlers (``metadata``, ``copy_add``, ``run``) depend on this module, never on the builder itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import idpbuilder.builder.config as cfgmod
from idpbuilder._records import dataclass, field
from idpbuilder.builder.cache import FileHashCache, chain_next
from idpbuilder.builder.fs import ContextFS
from idpbuilder.builder.options import BuildOptions, CacheEntry
from idpbuilder.builder.progress import StepInfo, StepReporter
from idpbuilder.builder.rootfs import ImageFS, LayerMember
from idpbuilder.builder.stages import StageGraph
from idpbuilder.builder.state import StageState
from idpbuilder.digest import Digest
from idpbuilder.dockerfile import Node, ShellLex
from idpbuilder.dockerfile.dockerignore import IgnoreMatcher, read_ignore_file
from idpbuilder.errors import DockerfileParseError, IdpError, Interrupted, RunFailedError, UsageError
from idpbuilder.image import Image, Layer
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.owner import stamped

if TYPE_CHECKING:
    from idpbuilder.sandbox.spec import RunSpec
    from idpbuilder.store.layout import Store

__all__ = [
    "BuildSession",
    "LayerMaker",
    "Runner",
    "StageResolver",
    "StepContext",
    "located",
    "prefixed",
]

# what a layer step's ``make`` returns: the new layer (with its members when known), or None for no change
LayerMaker = Callable[[], tuple[Layer, list[LayerMember] | None] | None]


class Runner(Protocol):
    """Runs one RUN step in a sandbox over ``base_layers``; the change as a stored layer (None: no change)."""

    def run(
        self,
        store: Store,
        base_layers: Sequence[Layer],
        spec: RunSpec,
        on_output: Callable[[str], None] | None = None,
    ) -> Layer | None: ...


class StageResolver(Protocol):
    """Other stages and images, as ``--from`` and ``RUN --mount=from=`` see them."""

    @property
    def graph(self) -> StageGraph: ...

    def stage_result(self, j: int) -> StageState:
        """The built state of stage ``j`` (built now if nothing asked for it before)."""
        ...

    def load_image(self, ref_text: str, platform: Platform | None) -> Image:
        """The image ``ref_text`` from the store, pulled first when missing."""
        ...


@dataclass
class BuildSession:
    """Build-wide resources and counters shared by every step; ``close()`` releases them."""

    store: Store
    opts: BuildOptions
    lex: ShellLex
    dockerfile_path: Path
    reporter: StepReporter
    runner: Runner | None = None
    epoch: int | None = None  # SOURCE_DATE_EPOCH: clamps times
    start: float = field(default_factory=time.time)
    used_args: set[str] = field(default_factory=set)  # build args some ARG or FROM consumed
    meta_declared: dict[str, str | None] = field(default_factory=dict)  # global ARGs (before the first FROM)
    mount_roots: dict[str, str] = field(default_factory=dict)  # layer chain -> extracted host dir
    on_close: list[Callable[[], None]] = field(default_factory=list)  # e.g. the runner the session made
    cache_entries: list[CacheEntry] = field(default_factory=list)  # what a remote cache export writes
    _hashes: FileHashCache | None = field(default=None, init=False, repr=False)
    _context_fs: ContextFS | None = field(default=None, init=False, repr=False)
    _tmp: Path | None = field(default=None, init=False, repr=False)
    _open_fs: list[ImageFS] = field(default_factory=list, init=False, repr=False)

    @property
    def hashes(self) -> FileHashCache:
        """sha256 of context files, remembered across builds in the store."""
        if self._hashes is None:
            self._hashes = FileHashCache(self.store.path_for("build") / "filehashes.json")
        return self._hashes

    def where(self, node: Node) -> str:
        """``Dockerfile:3``: the file and line of ``node`` for messages."""
        return f"{self.dockerfile_path.name}:{node.start_line}"

    def context(self) -> ContextFS:
        """The build context as a view, with .dockerignore applied."""
        if self._context_fs is None:
            patterns = read_ignore_file(self.opts.context, self.dockerfile_path)
            self._context_fs = ContextFS(self.opts.context, IgnoreMatcher(patterns) if patterns else None)
        return self._context_fs

    def open_fs(self, layers: Sequence[Layer], *, name: str) -> ImageFS:
        """A view of ``layers``, closed with the session."""
        fs = ImageFS(self.store, list(layers), name=name)
        self._open_fs.append(fs)
        return fs

    def rootfs(self, st: StageState) -> ImageFS:
        """The stage's current rootfs as a view (opened once; layer steps stack onto it)."""
        if st.fs is None:
            st.fs = self.open_fs(st.layers, name=f"stage {st.name}")
        return st.fs

    def scratch_dir(self) -> Path:
        """A temporary directory for this build (downloads, extracted archives), removed by ``close``."""
        if self._tmp is None:
            import tempfile

            self._tmp = Path(
                tempfile.mkdtemp(prefix=stamped("build-"), dir=self.store.path_for("build", "tmp"))
            )
        return self._tmp

    def created(self, rec: dict[str, Any] | None) -> str:
        """The ``created`` time of a history entry: SOURCE_DATE_EPOCH, else the cached one, else now."""
        if self.epoch is not None:
            return cfgmod.rfc3339(self.epoch)
        if rec is not None and "created" in rec:
            return str(rec["created"])
        return cfgmod.rfc3339(self.start)

    def mtime_for_created(self) -> float:
        """The mtime of files a step creates (heredocs, WORKDIR, parents): the epoch or the build start."""
        return float(self.epoch) if self.epoch is not None else float(int(self.start))

    def close(self) -> None:
        """Close image views and what the session opened, remove the scratch dir, persist new file hashes."""
        for f in self._open_fs:
            f.close()
        while self.on_close:
            self.on_close.pop()()
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._hashes is not None:
            self._hashes.save()


@dataclass(frozen=True)
class StepContext:
    """What one instruction's handler works with: the session, its stage, its step and the other stages."""

    session: BuildSession
    stages: StageResolver
    state: StageState
    step: StepInfo

    def expand(self, word: str) -> str:
        """``word`` expanded against the stage's ARGs and ENV."""
        return self.session.lex.process_word(word, self.state.expansion_env())

    def meta_step(self, created_by: str, chain_item: Any) -> None:
        """A metadata-only step: an empty-layer history entry (its time remembered for reproducible
        rebuilds). As in BuildKit it does not enter the chain: a later step's key holds what it uses
        (RUN: env, user, workdir, shell; COPY: expanded paths), so a LABEL or an ENV that a COPY does not
        use leaves that COPY cached."""
        s, st = self.session, self.state
        key = chain_next(st.chain, chain_item)
        rec = None if s.opts.no_cache else s.store.cache_get(key)
        if rec is None:
            rec = {"created": s.created(None)}
            if not s.opts.no_cache:
                s.store.cache_put(key, rec, [])
        s.cache_entries.append(CacheEntry(st.index, st.chain, key, rec, tuple(st.layers)))
        cfgmod.add_history(st.config, created_by, created=s.created(rec), empty_layer=True)

    def layer_step(self, created_by: str, key: str, make: LayerMaker) -> bool:
        """A layer step: reuse the cached layer for ``key`` or ``make`` one; returns True when cached."""
        s, st = self.session, self.state
        parent, st.chain = st.chain, key
        rec = None if s.opts.no_cache else s.store.cache_get(key)
        if rec is not None:
            layer_json = rec.get("layer")
            if layer_json is None:
                self._log(parent, key, rec)
                cfgmod.add_history(st.config, created_by, created=s.created(rec), empty_layer=True)
                return True
            layer = Layer(Descriptor.from_json(layer_json), Digest.parse(rec["diff_id"]))
            self._append_layer(layer, None)
            self._log(parent, key, rec)
            cfgmod.add_history(st.config, created_by, created=s.created(rec), empty_layer=False)
            return True
        made = make()
        created = s.created(None)
        if made is None:
            rec = {"created": created, "layer": None}
            if not s.opts.no_cache:
                s.store.cache_put(key, rec, [])
            self._log(parent, key, rec)
            cfgmod.add_history(st.config, created_by, created=created, empty_layer=True)
            return False
        layer, members = made
        rec = {"created": created, "layer": layer.descriptor.to_json(), "diff_id": str(layer.diff_id)}
        s.store.cache_put(key, rec, [layer.descriptor.digest])
        self._append_layer(layer, members)
        self._log(parent, key, rec)
        cfgmod.add_history(st.config, created_by, created=created, empty_layer=False)
        return False

    def _log(self, parent: str, key: str, rec: dict[str, Any]) -> None:
        st = self.state
        self.session.cache_entries.append(CacheEntry(st.index, parent, key, rec, tuple(st.layers)))

    def _append_layer(self, layer: Layer, members: list[LayerMember] | None) -> None:
        self.state.layers.append(layer)
        if self.state.fs is not None:
            self.state.fs.add_layer(layer, members)


def prefixed(e: IdpError, prefix: str) -> IdpError:
    """``e`` itself (type, hint and context kept) with ``prefix: `` in front of its message; errors that
    carry their own location (parse errors, a failed RUN) and interruptions are left as they are."""
    if not isinstance(e, (DockerfileParseError, RunFailedError, Interrupted)):
        e.message = f"{prefix}: {e.message}"
        e.args = (e.message,)
    if isinstance(e, UsageError):
        e.exit_code = 1  # bad Dockerfile content (a FROM --platform, a mount), not a bad command line
    return e


def located(e: IdpError, where: str) -> IdpError:
    """``e`` with ``where`` (``Dockerfile:3``) in front of its message, unless it names a place already."""
    if e.message.startswith(where.split(":", 1)[0] + ":"):
        return e
    return prefixed(e, where)
