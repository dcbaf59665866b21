"""``idpbuilder inspect``: an image's manifest, config and layers as one JSON-able object, and the documented
subset of docker's ``--format`` Go templates over it (:func:`render_template`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from idpbuilder.errors import DigestMismatchError, StoreError, UsageError
from idpbuilder.image.model import Image
from idpbuilder.oci import INDEX_TYPES, Descriptor
from idpbuilder.store.layout import Store

__all__ = ["TemplateError", "inspect_image", "render_template"]


def inspect_image(store: Store, text: str) -> dict[str, Any]:
    """Manifest, config and layers of an image as one JSON-able object (docker inspect's spirit)."""
    desc = store.resolve(text)
    image = Image.load(store, desc)  # manifest and config are read whole and verified
    _check_layer_files(store, text, image.layers)
    tags = sorted(n for n, d in store.refs() if d.digest == desc.digest)
    config = image.config
    out: dict[str, Any] = {
        "Id": str(image.id),
        "Digest": str(desc.digest),
        "RepoTags": tags,
        "MediaType": desc.media_type,
        "Created": config.get("created"),
        "Author": config.get("author"),
        "Os": config.get("os"),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Size": image.config_descriptor.size + sum(layer.descriptor.size for layer in image.layers),
        "RepoDigests": _repo_digests(tags, str(desc.digest)),
        "Config": config.get("config") or {},
        "RootFS": {
            "Type": (config.get("rootfs") or {}).get("type", "layers"),
            "Layers": [str(layer.diff_id) for layer in image.layers],
        },
        "History": config.get("history") or [],
        "Layers": [
            {
                "Digest": str(layer.descriptor.digest),
                "DiffID": str(layer.diff_id),
                "MediaType": layer.descriptor.media_type,
                "Size": layer.descriptor.size,
            }
            for layer in image.layers
        ],
        "ManifestDescriptor": image.manifest_descriptor.to_json(),
        "Manifest": image.manifest,
        "ImageConfig": config,
    }
    if desc.media_type in INDEX_TYPES or image.manifest_descriptor.digest != desc.digest:
        out["Index"] = store.read_json(desc.digest)
    return out


def _repo_digests(tags: list[str], digest: str) -> list[str]:
    """``repository@digest`` for each tag's repository (the manifest digest a registry serves it under)."""
    from idpbuilder.reference import Reference

    out: set[str] = set()
    for t in tags:
        try:
            out.add(f"{Reference.parse(t).name}@{digest}")
        except UsageError:
            continue
    return sorted(out)


def _check_layer_files(store: Store, text: str, layers: Sequence[Any]) -> None:
    """Each layer blob is present with the size its descriptor says (a cheap check: no layer is hashed)."""
    for layer in layers:
        d: Descriptor = layer.descriptor
        path = store.blob_path(d.digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(
                f"image {text}: layer {d.digest} is missing from the store",
                hint="build or pull the image again",
            ) from None
        if size != d.size:
            raise DigestMismatchError(
                f"image {text}: layer {d.digest} in the store is damaged ({size} bytes, the manifest says {d.size})",
                hint=f"delete {path} and build or pull the image again",
            )


# ---------------------------------------------------------------------------------------------- --format
# Not a template engine: the documented subset of what people pass to `docker inspect --format`.
#   text {{.Path.To.Field}} text      a field, printed as Go's text/template prints it
#   {{json .Path}}                     the value as JSON
#   {{index .Path "key"}}              a map entry (or list element, by number)
#   {{join .Path "sep"}}               a list joined with sep
#   {{.Path | json}}                   pipe form of json
# Fields of .Config that docker has but the image does not set print as their zero value ([] / map[] / "").
_CONFIG_LISTS = {"Env", "Cmd", "Entrypoint", "OnBuild", "Shell"}
_CONFIG_MAPS = {"ExposedPorts", "Volumes", "Labels"}
_CONFIG_STRINGS = {"User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image"}
_CONFIG_OTHER = {"Healthcheck", "ArgsEscaped"}


class TemplateError(UsageError):
    """A ``--format`` template this tool does not understand."""


def _go_text(value: Any) -> str:
    """Go's fmt.Print rendering of a JSON value (what text/template prints)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(_go_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_text(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _lookup(data: dict[str, Any], path: str) -> Any:
    if path == ".":
        return data
    if not path.startswith("."):
        raise TemplateError(
            f"--format: {path!r} is not a field (fields start with a dot, e.g. .Config.Env)",
            hint="see docs/coming-from-docker.md for the supported template forms",
        )
    value: Any = data
    parts = path[1:].split(".")
    for i, name in enumerate(parts):
        where = "." + ".".join(parts[: i + 1])
        if isinstance(value, dict) and name in value:
            value = value[name]
            continue
        if i == 1 and parts[0] == "Config":
            if name in _CONFIG_LISTS:
                return []
            if name in _CONFIG_MAPS:
                return {}
            if name in _CONFIG_STRINGS:
                return ""
            if name in _CONFIG_OTHER:
                return None
        known = ", ".join(sorted(value)) if isinstance(value, dict) else ""
        parent = "." + ".".join(parts[:i]) if i else "the image"
        raise TemplateError(
            f"--format: no field {where}" + (f" ({parent} has {known})" if known else ""),
            hint="`idpbuilder inspect IMAGE` prints every field as JSON",
        )
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in '"`':
        return arg[1:-1] if arg[0] == "`" else json.loads(arg)  # type: ignore[no-any-return]
    raise TemplateError(f"--format: expected a quoted string, got {arg!r}", hint='quote it: "key"')


def _action(data: dict[str, Any], action: str) -> str:
    import shlex

    text = action.strip()
    pipe_json = False
    if "|" in text:
        left, _, right = text.partition("|")
        if right.strip() != "json":
            raise TemplateError(
                f"--format: unsupported pipe in {{{{{action}}}}}", hint="only `| json` is supported"
            )
        text, pipe_json = left.strip(), True
    try:
        words = shlex.split(text, posix=False)
    except ValueError:
        raise TemplateError(f"--format: cannot parse {{{{{action}}}}}", hint="check the quotes") from None
    if not words:
        raise TemplateError("--format: empty action {{}}", hint="e.g. {{.Config.Env}}")
    fn, args = words[0], words[1:]
    if fn.startswith(".") and not args:
        value = _lookup(data, fn)
        return _json(value) if pipe_json else _go_text(value)
    if fn == "json" and len(args) == 1:
        return _json(_lookup(data, args[0]))
    if fn == "index" and len(args) >= 2:
        value = _lookup(data, args[0])
        for key in args[1:]:
            if isinstance(value, dict):
                value = value.get(_unquote(key), "")
            elif isinstance(value, list) and key.isdigit():
                if int(key) >= len(value):
                    raise TemplateError(
                        f"--format: index {key} out of range in {{{{{action}}}}}", hint="count from 0"
                    )
                value = value[int(key)]
            else:
                raise TemplateError(
                    f"--format: cannot index {args[0]} with {key}", hint='index maps by "key"'
                )
        return _json(value) if pipe_json else _go_text(value)
    if fn == "join" and len(args) == 2:
        value = _lookup(data, args[0])
        if not isinstance(value, list):
            raise TemplateError(
                f"--format: {args[0]} is not a list", hint="join takes a list and a separator"
            )
        return _unquote(args[1]).join(_go_text(v) for v in value)
    raise TemplateError(
        f"--format: unsupported template action {{{{{action}}}}}",
        hint='supported: {{.Field.Path}}, {{json .Path}}, {{index .Path "key"}}, {{join .Path ","}}',
    )


def render_template(data: dict[str, Any], template: str) -> str:
    """``template`` with every ``{{…}}`` action replaced by its value from ``data`` (an inspect object)."""
    out: list[str] = []
    rest = template
    while rest:
        start = rest.find("{{")
        if start < 0:
            out.append(rest)
            break
        end = rest.find("}}", start + 2)
        if end < 0:
            raise TemplateError("--format: unclosed {{", hint="close every action with }}")
        out.append(rest[:start])
        inner = rest[start + 2 : end]
        if inner.startswith("-"):  # {{- trims space on the left, -}} on the right, as in Go
            inner = inner[1:]
            out[-1] = out[-1].rstrip()
        trim_right = inner.endswith("-")
        if trim_right:
            inner = inner[:-1]
        out.append(_action(data, inner))
        rest = rest[end + 2 :]
        if trim_right:
            rest = rest.lstrip()
    return "".join(out)
