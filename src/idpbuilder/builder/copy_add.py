"""COPY and ADD as build steps: expand the instruction, find its sources (context, an earlier stage, an
image, URLs, heredocs), key the cache on their content, and on a miss plan and write one layer.

The file-level rules (destinations, wildcards, metadata) are in ``copy``; archives and downloads in ``add``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from idpbuilder.builder.add import (
    Download,
    download,
    extract_archive,
    is_archive,
    is_git,
    is_url,
    parse_checksum,
)
from idpbuilder.builder.cache import chain_next, source_digest
from idpbuilder.builder.context import StepContext, prefixed
from idpbuilder.builder.copy import CopyOptions, LayerPlan, Matcher, expand_sources, iter_parents_matches
from idpbuilder.builder.fs import DIR, FILE, Meta, SourceFS, clean, contains_wildcards, resolve_path, walk
from idpbuilder.builder.modes import ChmodSpec, Owner, parse_chmod, resolve_owner
from idpbuilder.builder.rootfs import ImageFS, LayerMember
from idpbuilder.dockerfile import Add, Copy, ShellLex
from idpbuilder.dockerfile.dockerignore import IgnoreMatcher
from idpbuilder.errors import BuildError, IdpError, Interrupted
from idpbuilder.image import Layer

__all__ = ["do_copy"]


class _ExcludeMatcher:
    """--exclude patterns with .dockerignore semantics (a match on a parent excludes the child)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.m = IgnoreMatcher(list(patterns))

    def matches(self, relpath: str) -> bool:
        return bool(self.m.matches(relpath))


def _source_fs(ctx: StepContext, from_: str | None) -> tuple[SourceFS, str, bool]:
    """(view, cache identity, is the build context) for a COPY --from value."""
    s, st = ctx.session, ctx.state
    if not from_:
        return s.context(), "context", True
    if "$" in from_:
        raise BuildError(
            "variable expansion is not supported for --from, define a new stage with FROM using "
            "ARG from global scope as a workaround"
        )
    graph = ctx.stages.graph
    j = graph.index_of(from_, before=st.index)
    if j is not None:
        if j >= st.index:
            raise BuildError(
                f"cannot copy from stage {from_!r}, it needs to be defined before current stage",
                hint="move the stage it copies from above this one",
            )
        src = ctx.stages.stage_result(j)
        fs = s.open_fs(src.layers, name=f"stage {src.name}")
        return fs, "stage:" + ",".join(str(layer.diff_id) for layer in src.layers), False
    try:
        img = ctx.stages.load_image(from_, s.opts.platform)
    except IdpError as e:
        names = [g.name for g in graph.stages[: st.index] if g.name]
        if names and not isinstance(e, Interrupted):
            e.hint = "stages defined before this one: " + ", ".join(names)
        raise prefixed(e, f"--from={from_} is not an earlier stage, and as an image") from None
    fs = s.open_fs(img.layers, name=f"image {from_}")
    return fs, "image:" + str(img.manifest_descriptor.digest), False


def do_copy(ctx: StepContext, cmd: Copy) -> bool:
    """COPY, or ADD when ``cmd`` is an ``Add`` (URLs, archives, --checksum, --unpack); True when cached."""
    s, st = ctx.session, ctx.state
    is_add = isinstance(cmd, Add)
    kw = "ADD" if is_add else "COPY"
    raw_from = cmd.from_
    src_fs, src_identity, from_context = _source_fs(ctx, raw_from)
    env = st.expansion_env()
    lex = s.lex
    sources = [lex.process_word(w, env) for w in cmd.sources]
    dest_raw = lex.process_word(cmd.dest, env)
    chown = lex.process_word(cmd.chown, env) if cmd.chown else None
    chmod_text = lex.process_word(cmd.chmod, env) if cmd.chmod else None
    chmod: ChmodSpec | None = parse_chmod(chmod_text) if chmod_text else None
    excludes = [lex.process_word(e, env) for e in cmd.exclude]
    exclude: Matcher | None = _ExcludeMatcher(excludes) if excludes else None
    checksum = lex.process_word(cmd.checksum, env) if isinstance(cmd, Add) and cmd.checksum else None
    unpack = cmd.unpack if isinstance(cmd, Add) else False
    heredocs: list[tuple[str, str]] = []
    for h in cmd.heredocs:
        content = h.content
        if h.expand:
            hlex = ShellLex("\\")
            hlex.skip_process_quotes = True
            content = hlex.process_word(content, env)
        heredocs.append((h.name, content))

    if checksum is not None:
        parse_checksum(checksum)
        if any(not is_url(w) for w in sources) or heredocs:
            raise BuildError(
                "checksum requires HTTP(S) or Git sources", hint="remove --checksum for local files"
            )
    if not is_add and any(is_url(w) for w in sources):
        raise BuildError(
            f"source can't be a URL for COPY: {next(w for w in sources if is_url(w))}",
            hint="use ADD to download files",
        )
    for w in sources:
        if is_add and is_git(w):
            raise BuildError(
                f"git sources are not supported: {w}", hint="clone the repository into the context"
            )

    multiple = len(sources) + len(heredocs) > 1
    dest_is_dir = dest_raw in ("", ".") or dest_raw.endswith("/") or dest_raw.endswith("/.")
    dest_abs = clean(posixpath.join(st.workdir, dest_raw))

    # what the sources are: (kind, source path(s)) — computed before any cache lookup
    downloads: list[Download] = []
    local: list[tuple[str, str | None]] = []  # (resolved view path, parents-relative path or name)
    for w in sources:
        if is_add and is_url(w):
            downloads.append(download(w, s.scratch_dir(), checksum=checksum))
            continue
        if cmd.parents:
            local.extend(_parents_sources(src_fs, w))
            continue
        local.extend((m, "name:" + named) for named, m in expand_sources(src_fs, w))
    # a wildcard matching nothing is no error, even when nothing at all matched (BuildKit's
    # AllowEmptyWildcard); a missing plain path is (expand_sources raised above)
    if len(local) + len(downloads) + len(heredocs) > 1:
        multiple = True

    content = (
        source_digest(
            src_fs, [p for p, _ in local], exclude=exclude, hashes=s.hashes if from_context else None
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

    def make() -> tuple[Layer, list[LayerMember] | None] | None:
        dest_view = None if cmd.link else s.rootfs(st)
        owner: Owner | None = None
        if chown:
            owner_fs = s.rootfs(st)
            owner = resolve_owner(chown, lambda p: owner_fs.read_file(resolve_path(owner_fs, p)))
        plan = LayerPlan(
            dest_view,
            CopyOptions(
                owner=owner,
                chmod=chmod,
                exclude=exclude,
                mtime_clamp=float(s.epoch) if s.epoch is not None else None,
                created_mtime=s.mtime_for_created(),
            ),
        )
        # heredocs and downloads: several go into a directory; local sources are copied one after the
        # other as BuildKit does (fsutil Copy per source): without a trailing slash a file source becomes
        # the destination unless a directory is there by then, a directory's contents go into it
        as_dir = dest_is_dir or multiple
        if heredocs or downloads or cmd.parents:  # --parents: the destination is made even for no match
            plan.mkdir_all(dest_abs if as_dir else posixpath.dirname(dest_abs))
        if isinstance(src_fs, ImageFS):
            wanted: list[str] = []
            for p, _ in local:
                m = src_fs.lstat(p)
                if m is not None and m.kind == DIR:
                    wanted.extend(q for q, qm in walk(src_fs, p) if qm.kind == FILE)
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
                s.mtime_for_created(),
            )
            target = _file_target(plan, dest_abs, name, as_dir)
            plan.add_bytes(target, data.encode(), meta)
        for d in downloads:
            if unpack is True and is_archive(_HostFile(d.path), "/f"):
                extract_archive(_HostFile(d.path), "/f", plan, plan.mkdir_all(dest_abs), s.scratch_dir())
                continue
            mode = chmod.apply(0o600, is_dir=False) if chmod else 0o600
            mtime = d.mtime if d.mtime is not None else s.mtime_for_created()
            meta = Meta(FILE, mode, owner.uid if owner else 0, owner.gid if owner else 0, d.size, mtime)
            target = _file_target(plan, dest_abs, d.filename, as_dir)
            plan.put_file(target, meta, _host_opener(d.path))
        for path, parents_rel in local:
            if parents_rel is not None and not parents_rel.startswith("name:"):
                _copy_parents(plan, src_fs, path, parents_rel, dest_abs, from_context)
                continue
            if is_add and unpack is not False and from_context and is_archive(src_fs, path):
                extract_archive(src_fs, path, plan, plan.mkdir_all(dest_abs), s.scratch_dir())
                continue
            named = parents_rel[5:] if parents_rel else None
            plan.copy_source(
                src_fs, path, dest_abs, dest_is_dir=dest_is_dir, from_context=from_context, name=named
            )
        return plan.write(s.store)

    return ctx.layer_step(created_by, key, make)


def _file_target(plan: LayerPlan, dest_abs: str, name: str, as_dir: bool) -> str:
    """Where a named file (heredoc, download) lands: inside a directory destination, else at the destination."""
    dreal = plan.resolve(dest_abs)
    dm = plan.view.lstat(dreal)
    if as_dir or (dm is not None and dm.kind == DIR):
        return posixpath.join(plan.mkdir_all(dest_abs), name)
    parent = plan.mkdir_all(posixpath.dirname(dest_abs))
    return posixpath.join(parent, posixpath.basename(dest_abs))


def _parents_sources(fs: SourceFS, src: str) -> list[tuple[str, str | None]]:
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
                raise BuildError(f"{fs.describe(p)} not found", hint="check the path given to COPY --parents")
            out.append((resolved, pattern))
            continue
        for rel in iter_parents_matches(fs, b, pattern):
            out.append((resolve_path(fs, posixpath.join(b, rel)), rel))
    return out


def _copy_parents(
    plan: LayerPlan, fs: SourceFS, src: str, rel: str, dest_abs: str, from_context: bool
) -> None:
    """Copy one --parents match to ``dest_abs/rel``, creating the directories between."""
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


def _host_opener(p: Path) -> Callable[[], BinaryIO]:
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

    def open(self, path: str) -> BinaryIO:
        return open(self.path, "rb")

    def describe(self, path: str) -> str:
        return f"download {self.path.name}"
