"""``RUN --mount=`` specs: the CSV of key=value BuildKit's ``runmount.go`` accepts, parsed and validated
into a frozen ``Mount``; values holding ``$`` wait for expansion at dispatch time."""

from __future__ import annotations

import csv
import re

from idpbuilder._records import dataclass
from idpbuilder.dockerfile.flags import Expander, InstructionError, did_you_mean
from idpbuilder.dockerfile.lexer import go_quote
from idpbuilder.errors import BuildError

__all__ = ["MOUNT_TYPES", "Mount", "parse_mount"]


MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = (
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "size",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "env",
)
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(key: str, value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise InstructionError(f"invalid value for {key}: {value}")


def _ram_in_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?", value)
    if m is None:
        raise ValueError(value)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


@dataclass(frozen=True, kw_only=True)
class Mount:
    """One ``RUN --mount=`` spec. Fields hold raw values until ``expanded`` runs the stage's expander over them."""

    spec: str
    type: str = "bind"
    source: str | None = None
    target: str | None = None
    from_: str | None = None
    id: str | None = None
    sharing: str | None = None  # shared | private | locked (cache only)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    readonly: bool = True
    required: bool = False
    env: str | None = None  # secret exposed as this environment variable
    size: int | None = None  # tmpfs size limit in bytes
    needs_expansion: bool = False  # some value contains "$": call expanded() at dispatch time

    def expanded(self, expand: Expander) -> Mount:
        """Re-parse the spec with every value passed through ``expand`` (e.g. ``lambda v: lex.process_word(v, env)``)."""
        return parse_mount(self.spec, expand=expand)


def parse_mount(spec: str, *, expand: Expander | None = None) -> Mount:
    """Parse and validate one ``--mount`` value (CSV of key=value); values with ``$`` wait for ``expand``."""
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise InstructionError(f"failed to parse csv mounts: {e}") from None
    if not rows or not rows[0]:
        raise InstructionError("failed to parse csv mounts: empty mount specification")
    fields: dict[str, object] = {"type": "bind"}
    ro_auto = True
    deferred = False
    for fld in rows[0]:
        key, has_value, value = fld.partition("=")
        key = key.lower()
        mtype = str(fields["type"])
        if not has_value:
            if key in ("readonly", "ro"):
                fields["readonly"] = True
                ro_auto = False
                continue
            if key in ("readwrite", "rw"):
                fields["readonly"] = False
                ro_auto = False
                continue
            if key == "required":
                if mtype in ("secret", "ssh"):
                    fields["required"] = True
                    continue
                raise InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            raise InstructionError(f"invalid field '{fld}' must be a key=value pair")
        if key == "from" and "$" in value[:-1]:
            raise InstructionError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        if expand is not None:
            try:
                value = expand(value)
            except BuildError as e:
                raise InstructionError(e.message, e.hint) from None
        elif "$" in value and key not in ("from",):
            deferred = True
            if key in ("source", "src", "target", "dst", "destination", "id", "env"):
                fields[{"src": "source", "dst": "target", "destination": "target"}.get(key, key)] = value
            elif key not in _MOUNT_KEYS:
                raise InstructionError(f"unexpected key '{key}' in '{fld}'{did_you_mean(key, _MOUNT_KEYS)}")
            continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise InstructionError(
                    f"unsupported mount type {go_quote(value)}{did_you_mean(value, MOUNT_TYPES, case_sensitive=True)}"
                )
            fields["type"] = value.lower()
        elif key == "from":
            fields["from_"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("readonly", "ro"):
            fields["readonly"] = _go_bool(key, value)
            ro_auto = False
        elif key in ("readwrite", "rw"):
            fields["readonly"] = not _go_bool(key, value)
            ro_auto = False
        elif key == "required":
            if mtype not in ("secret", "ssh"):
                raise InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            fields["required"] = _go_bool(key, value)
        elif key == "size":
            if mtype != "tmpfs":
                raise InstructionError(f"unexpected key '{key}' for mount type '{mtype}'")
            try:
                fields["size"] = _ram_in_bytes(value)
            except ValueError:
                raise InstructionError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            fields["id"] = value
        elif key == "sharing":
            if value.lower() not in ("shared", "private", "locked"):
                raise InstructionError(f"unsupported sharing value {go_quote(value)}")
            fields["sharing"] = value.lower()
        elif key == "mode":
            try:
                fields["mode"] = int(value, 8)
            except ValueError:
                raise InstructionError(f"invalid value {value} for mode") from None
        elif key in ("uid", "gid"):
            if not value.isdigit():
                raise InstructionError(f"invalid value {value} for {key}")
            fields[key] = int(value)
        elif key == "env":
            fields["env"] = value
        else:
            raise InstructionError(f"unexpected key '{key}' in '{fld}'{did_you_mean(key, _MOUNT_KEYS)}")

    mtype = str(fields["type"])
    if ro_auto:
        fields["readonly"] = mtype not in ("cache", "tmpfs")
    if fields.get("sharing") is not None and mtype != "cache":
        raise InstructionError(f"invalid cache sharing set for {mtype} mount")
    if mtype == "secret":
        if fields.get("from_") is not None:
            raise InstructionError("secret mount should not have a from")
        if not (fields.get("source") or fields.get("target") or fields.get("id")):
            raise InstructionError("invalid secret mount. one of source, target required")
        if fields.get("source") and fields.get("id"):
            raise InstructionError("both source and id can't be set")
    return Mount(spec=spec, needs_expansion=deferred, **fields)  # type: ignore[arg-type]
