#!/usr/bin/env python3
"""Regenerate ``src/idpbuilder/sandbox/seccomp_default.json`` from moby's default seccomp profile.

The RUN sandbox applies Docker's default seccomp profile (as podman and BuildKit do). Its rules are data,
so they are never copied by hand: this script reads moby's ``default.json`` and writes a compact copy of
its rules (comments dropped, ``name`` folded into ``names``, every field checked against the schema
``idpbuilder.sandbox.seccomp`` understands) plus where it came from. The conditions (``includes`` /
``excludes`` by caps, arches, minKernel) are kept: they are resolved at run time for the RUN's capability
set, the host architecture and the running kernel, as moby's ``setupSeccomp`` does.

Usage::

    # from a moby checkout or bare mirror (the profile lives in vendor/github.com/moby/profiles/seccomp/
    # in newer trees, profiles/seccomp/ in older ones)
    tools/gen_seccomp.py --git-dir /path/to/moby/.git [--rev HEAD]
    # from a file (containers/common's pkg/seccomp/seccomp.json has the same schema)
    tools/gen_seccomp.py --input default.json --source "moby/moby@<commit> profiles/seccomp/default.json"
    # exit 1 when the data file is not what the input generates
    tools/gen_seccomp.py --git-dir ... --check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "src" / "idpbuilder" / "sandbox" / "seccomp_default.json"
GIT_PATHS = ("vendor/github.com/moby/profiles/seccomp/default.json", "profiles/seccomp/default.json")

ACTIONS = {
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
}
OPS = {
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
}
_RULE_KEYS = {"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"}
_FILTER_KEYS = {"caps", "arches", "minKernel"}
_ARG_KEYS = {"index", "value", "valueTwo", "op"}
_TOP_KEYS = {"defaultAction", "defaultErrnoRet", "archMap", "syscalls", "architectures", "flags"}


class ProfileError(ValueError):
    """The input is not a profile this generator (and the runtime resolver) understands."""


def _filter(where: str, f: Any) -> dict[str, Any] | None:
    if f is None:
        return None
    if not isinstance(f, dict) or set(f) - _FILTER_KEYS:
        raise ProfileError(f"{where}: unexpected filter {f!r}")
    out: dict[str, Any] = {}
    for key in ("caps", "arches"):
        vals = f.get(key) or []
        if not isinstance(vals, list) or not all(isinstance(v, str) and v for v in vals):
            raise ProfileError(f"{where}: {key} must be a list of names")
        if vals:
            out[key] = list(vals)
    mk = f.get("minKernel")
    if mk:
        if not isinstance(mk, str) or not re.fullmatch(r"\d+\.\d+", mk):
            raise ProfileError(f"{where}: minKernel {mk!r} is not MAJOR.MINOR")
        out["minKernel"] = mk
    return out or None


def _rule(i: int, call: Any) -> dict[str, Any]:
    where = f"syscalls[{i}]"
    if not isinstance(call, dict) or set(call) - _RULE_KEYS:
        raise ProfileError(f"{where}: unexpected keys {sorted(set(call) - _RULE_KEYS)}")
    names = call.get("names") or []
    if call.get("name"):
        if names:
            raise ProfileError(f"{where}: both name and names")
        names = [call["name"]]
    if not names or not all(isinstance(n, str) and re.fullmatch(r"[a-z0-9_]+", n) for n in names):
        raise ProfileError(f"{where}: bad syscall names {names!r}")
    action = call.get("action")
    if action not in ACTIONS:
        raise ProfileError(f"{where}: unknown action {action!r}")
    rule: dict[str, Any] = {"names": list(names), "action": action}
    if call.get("errnoRet") is not None:
        if not isinstance(call["errnoRet"], int) or action != "SCMP_ACT_ERRNO":
            raise ProfileError(f"{where}: errnoRet only goes with SCMP_ACT_ERRNO")
        rule["errnoRet"] = call["errnoRet"]
    args = call.get("args") or []
    out_args = []
    for a in args:
        if not isinstance(a, dict) or set(a) - _ARG_KEYS or a.get("op") not in OPS:
            raise ProfileError(f"{where}: bad argument filter {a!r}")
        arg = {"index": int(a["index"]), "value": int(a.get("value", 0)), "op": a["op"]}
        if a.get("valueTwo"):
            arg["valueTwo"] = int(a["valueTwo"])
        out_args.append(arg)
    if out_args:
        rule["args"] = out_args
    for key in ("includes", "excludes"):
        f = _filter(f"{where}.{key}", call.get(key))
        if f:
            rule[key] = f
    return rule


def convert(profile: Any) -> dict[str, Any]:
    """The compact profile: default action/errno, archMap as {arch: [sub-arches]}, the rules."""
    if not isinstance(profile, dict) or set(profile) - _TOP_KEYS:
        raise ProfileError("not a seccomp profile (unexpected top-level keys)")
    if profile.get("architectures"):
        raise ProfileError("profiles with a fixed 'architectures' list are not supported; use archMap")
    if profile.get("defaultAction") not in ACTIONS:
        raise ProfileError(f"unknown defaultAction {profile.get('defaultAction')!r}")
    arch_map: dict[str, list[str]] = {}
    for entry in profile.get("archMap") or []:
        arch = entry.get("architecture")
        if not isinstance(arch, str) or not arch.startswith("SCMP_ARCH_"):
            raise ProfileError(f"bad archMap entry {entry!r}")
        arch_map[arch] = list(entry.get("subArchitectures") or [])
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    out["archMap"] = arch_map
    out["syscalls"] = [_rule(i, c) for i, c in enumerate(profile.get("syscalls") or [])]
    return out


def render(compact: dict[str, Any], source: str, sha256: str) -> str:
    """JSON text, one rule per line (small diffs when moby changes a rule)."""

    def dump(v: Any) -> str:
        return json.dumps(v, separators=(",", ":"))

    lines = [
        "{",
        f' "generatedBy":{dump("tools/gen_seccomp.py (do not edit by hand)")},',
        f' "source":{dump(source)},',
        f' "sourceSha256":{dump(sha256)},',
        f' "defaultAction":{dump(compact["defaultAction"])},',
    ]
    if "defaultErrnoRet" in compact:
        lines.append(f' "defaultErrnoRet":{dump(compact["defaultErrnoRet"])},')
    lines.append(f' "archMap":{dump(compact["archMap"])},')
    lines.append(' "syscalls":[')
    rules = compact["syscalls"]
    lines += [f"  {dump(r)}{',' if i < len(rules) - 1 else ''}" for i, r in enumerate(rules)]
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def _from_git(git_dir: str, rev: str) -> tuple[bytes, str]:
    commit = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", f"{rev}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for path in GIT_PATHS:
        p = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], capture_output=True, check=False
        )
        if p.returncode == 0:
            return p.stdout, f"github.com/moby/moby@{commit} {path}"
    raise SystemExit(f"no seccomp profile at {' or '.join(GIT_PATHS)} in {git_dir} {commit}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--git-dir", help="a moby git directory (bare mirrors work)")
    src.add_argument("--input", type=Path, help="a default.json file")
    ap.add_argument("--rev", default="HEAD", help="with --git-dir: the revision to read (default HEAD)")
    ap.add_argument("--source", help="with --input: where the file came from (recorded in the output)")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if the output differs")
    ns = ap.parse_args(argv)
    if ns.git_dir:
        raw, source = _from_git(ns.git_dir, ns.rev)
    else:
        raw = ns.input.read_bytes()
        source = ns.source or str(ns.input.name)
    try:
        text = render(convert(json.loads(raw)), source, hashlib.sha256(raw).hexdigest())
    except (ProfileError, ValueError) as e:
        print(f"gen_seccomp: {e}", file=sys.stderr)
        return 2
    if ns.check:
        current = ns.output.read_text() if ns.output.exists() else ""
        if current != text:
            print(f"gen_seccomp: {ns.output} is out of date", file=sys.stderr)
            return 1
        return 0
    ns.output.write_text(text)
    print(f"wrote {ns.output} ({len(json.loads(text)['syscalls'])} rules from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
