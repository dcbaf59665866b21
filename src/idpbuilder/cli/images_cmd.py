"""`idpbuilder images`: list the local store like `docker images` (kept light: no rich, no image model)."""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from idpbuilder.digest import Digest
from idpbuilder.errors import NotFoundError, StoreError, UsageError
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform
from idpbuilder.reference import DOCKER_HUB, Reference
from idpbuilder.store.layout import Store

__all__ = [
    "ImageRow",
    "command",
    "familiar_name",
    "human_duration",
    "human_size",
    "list_images",
    "render_table",
]

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """Docker's decimal size with 3 significant digits (``4.26MB``, ``523B``)."""
    i = 0
    while size >= 1000.0 and i < len(_SIZE_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{_SIZE_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """Docker's (go-units) humanised duration: ``About a minute``, ``3 hours``, ``2 weeks``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def parse_created(value: Any) -> _dt.datetime | None:
    """Parse an image config ``created`` timestamp (RFC 3339, nanoseconds allowed); None when absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Go writes up to 9
    if "." in text:
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        rest = frac[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        dt = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return dt


def familiar_name(ref: Reference) -> str:
    """The repository as docker shows it: ``docker.io/library/busybox`` → ``busybox``."""
    if ref.registry == DOCKER_HUB:
        repo = ref.repository
        return repo[len("library/") :] if repo.startswith("library/") and repo.count("/") == 1 else repo
    return ref.name


def _normalized_name(ref: Reference) -> str:
    """``registry/repository`` with Docker Hub defaults, for matching names typed either way."""
    r = ref if ref.registry else ref.with_registry(DOCKER_HUB)
    return r.name


@dataclass(frozen=True)
class ImageRow:
    """One tagged reference in the local store, with what `images` shows about it."""

    name: str  # the full reference kept in the store
    repository: str  # familiar repository name, or <none>
    tag: str  # tag, or <none>
    image_id: Digest  # config digest (index digest for a multi-platform index)
    digest: Digest  # manifest (or index) digest
    media_type: str
    created: _dt.datetime | None
    size: int  # compressed layers + config (of the host platform's manifest for an index)
    platform: str | None

    def to_json(self, now: float) -> dict[str, Any]:
        """Every field, machine-readable."""
        return {
            "Name": self.name,
            "Repository": self.repository,
            "Tag": self.tag,
            "ID": str(self.image_id),
            "Digest": str(self.digest),
            "MediaType": self.media_type,
            "Created": self.created.isoformat().replace("+00:00", "Z") if self.created else None,
            "CreatedSince": self.created_since(now),
            "Size": self.size,
            "Platform": self.platform,
        }

    def created_since(self, now: float) -> str:
        """``5 weeks ago`` or ``N/A``."""
        if self.created is None:
            return "N/A"
        return human_duration(max(0.0, now - self.created.timestamp())) + " ago"


def _pick_manifest(store: Store, index: dict[str, Any]) -> dict[str, Any] | None:
    """The host platform's manifest from an index (first manifest otherwise); None if none is stored."""
    host = Platform.host()
    entries = [
        m for m in index.get("manifests", []) if m.get("mediaType") in MANIFEST_TYPES or "platform" in m
    ]
    entries.sort(
        key=lambda m: 0 if m.get("platform") and host.matches(Platform.from_json(m["platform"])) else 1
    )
    for m in entries:
        try:
            d = Digest.parse(str(m["digest"]))
        except (KeyError, UsageError):
            continue
        if store.has_blob(d):
            doc = store.read_json(d)
            if isinstance(doc, dict) and "config" in doc:
                return doc
    return None


def _describe(store: Store, name: str, desc: Descriptor) -> ImageRow:
    try:
        return _describe_stored(store, name, desc)
    except (NotFoundError, StoreError):
        # a damaged entry (e.g. a blob deleted by hand) is listed, not allowed to break the whole listing
        ref = _parse_or_none(name)
        return ImageRow(
            name=name,
            repository=familiar_name(ref) if ref else name,
            tag=(ref.tag or "<none>") if ref else "<none>",
            image_id=desc.digest,
            digest=desc.digest,
            media_type=desc.media_type,
            created=None,
            size=0,
            platform=None,
        )


def _parse_or_none(name: str) -> Reference | None:
    try:
        return Reference.parse(name)
    except UsageError:
        return None


def _describe_stored(store: Store, name: str, desc: Descriptor) -> ImageRow:
    ref = _parse_or_none(name)
    doc = store.read_json(desc.digest)
    if not isinstance(doc, dict):
        raise StoreError(f"stored manifest {desc.digest} of {name} is not a JSON object")
    is_index = desc.media_type in INDEX_TYPES or ("manifests" in doc and "layers" not in doc)
    manifest = _pick_manifest(store, doc) if is_index else doc
    config: dict[str, Any] = {}
    size = 0
    image_id = desc.digest
    if manifest is not None and isinstance(manifest.get("config"), dict):
        cdesc = Descriptor.from_json(manifest["config"])
        if not is_index:
            image_id = cdesc.digest
        size = cdesc.size + sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        if store.has_blob(cdesc.digest):
            loaded = store.read_json(cdesc.digest)
            config = loaded if isinstance(loaded, dict) else {}
    plat = None
    if config.get("os") or config.get("architecture"):
        plat = str(Platform.from_json(config))
    return ImageRow(
        name=name,
        repository=familiar_name(ref) if ref else name,
        tag=(ref.tag or "<none>") if ref else "<none>",
        image_id=image_id,
        digest=desc.digest,
        media_type=desc.media_type,
        created=parse_created(config.get("created")),
        size=size,
        platform=plat,
    )


def _matches(name: str, pattern: str) -> bool:
    """docker's reference filter: familiar or full repository name, optional tag, shell wildcards."""
    try:
        ref = Reference.parse(name)
    except UsageError:
        return fnmatch.fnmatchcase(name, pattern)
    repo_pat, tag_pat = pattern, None
    slash, colon = pattern.rfind("/"), pattern.rfind(":")
    if colon > slash:
        repo_pat, tag_pat = pattern[:colon], pattern[colon + 1 :]
    if tag_pat is not None and not fnmatch.fnmatchcase(ref.tag or "", tag_pat):
        return False
    if any(ch in repo_pat for ch in "*?["):
        return fnmatch.fnmatchcase(familiar_name(ref), repo_pat) or fnmatch.fnmatchcase(ref.name, repo_pat)
    try:
        want = Reference.parse(repo_pat)
    except UsageError:
        return False
    return _normalized_name(want) == _normalized_name(ref)


def list_images(store: Store, pattern: str | None = None) -> list[ImageRow]:
    """Every tagged image in the store (optionally filtered by REPO[:TAG]), newest first."""
    rows = [
        _describe(store, n or "<none>", d)
        for n, d in store.entries()
        if (n is None and pattern is None) or (n is not None and (pattern is None or _matches(n, pattern)))
    ]
    epoch = _dt.datetime.fromtimestamp(0, _dt.UTC)
    rows.sort(key=lambda r: (-(r.created or epoch).timestamp(), r.repository, r.tag))
    return rows


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns laid out as docker's tabwriter does (min width 10, padding 3)."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in [list(header), *map(list, rows)]:
        cells = [cell.ljust(max(widths[i] + 3, 10)) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out) + "\n"


class _ImagesCommand(click.Command):
    """`images` with the `--remote` options (and the cluster/registry code behind them) loaded on demand.

    Listing the local store must stay near interpreter start-up time; the remote options pull in ssl and
    the cluster modules, so they join the command only when an option this command lacks is given, or
    for --help.
    """

    _remote_loaded = False

    def _load_remote(self) -> None:
        if self._remote_loaded:
            return
        from idpbuilder.cli.remote_images import remote_options

        def holder() -> None:
            """Carries the options the decorator attaches."""

        decorated = remote_options(holder)
        # click.option decorators record params innermost-last; click.command reverses them the same way
        self.params.extend(reversed(getattr(decorated, "__click_params__", [])))
        self._remote_loaded = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)}
        for a in args:
            if a == "--":
                break
            if a.startswith("--") and a.split("=", 1)[0] not in known:
                self._load_remote()
                break
        return super().parse_args(ctx, args)

    def get_help(self, ctx: click.Context) -> str:
        self._load_remote()
        return super().get_help(ctx)


@click.command("images", cls=_ImagesCommand)
@click.argument("reference", required=False, metavar="[REPO[:TAG]]")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs (each once).")
@click.option("--digests", is_flag=True, help="Show the manifest digest of each image.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format: a docker-like table or a JSON list.",
)
@click.option("--no-trunc", is_flag=True, help="Show full image IDs.")
@click.pass_obj
def command(
    obj: Any,
    /,
    reference: str | None,
    quiet: bool,
    digests: bool,
    fmt: str,
    no_trunc: bool,
    remote: bool = False,
    **remote_kw: Any,
) -> None:
    """List images in the local store, like `docker images` (--remote: the tags in the registry)."""
    if remote:
        from idpbuilder.cli.remote_images import run_remote

        run_remote(obj.home, reference, fmt=fmt, quiet=quiet, **remote_kw)
        return
    store = Store.open(obj.home)
    rows = list_images(store, reference)
    now = time.time()
    if fmt == "json":
        click.echo(json.dumps([r.to_json(now) for r in rows], indent=2))
        return
    if quiet:
        seen: set[Digest] = set()
        for r in rows:
            if r.image_id not in seen:
                seen.add(r.image_id)
                click.echo(str(r.image_id) if no_trunc else r.image_id.short)
        return
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = []
    for r in rows:
        cells = [r.repository, r.tag]
        if digests:
            cells.append(str(r.digest))
        cells += [str(r.image_id) if no_trunc else r.image_id.short, r.created_since(now), human_size(r.size)]
        table.append(cells)
    click.echo(render_table(header, table), nl=False)
