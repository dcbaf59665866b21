"""``--chmod`` (octal and symbolic) and ``--chown`` / ``USER`` name resolution against /etc/passwd and /etc/group."""

from __future__ import annotations

import re
from collections.abc import Callable

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError

__all__ = ["ChmodSpec", "Owner", "parse_chmod", "parse_group_file", "parse_passwd_file", "resolve_owner"]

# patterns as strings: compiled (and cached by re) when a --chmod is parsed, not when a build starts
_OCTAL = r"^[0-7]+$"
_CLAUSE = r"^([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)$"
_ACTION = r"([-+=])([rwxXst]*|[ugo])"


@dataclass(frozen=True)
class ChmodSpec:
    """A parsed --chmod value: an octal mode or a list of symbolic clauses."""

    text: str
    octal: int | None
    clauses: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def apply(self, mode: int, *, is_dir: bool) -> int:
        """The permission bits after applying this spec to ``mode``."""
        if self.octal is not None:
            return self.octal
        cur = mode & 0o7777
        for who, actions in self.clauses:
            w = who or "a"
            if "a" in w:
                w = "ugo"
            for op, perms in actions:
                bits = 0
                if perms in ("u", "g", "o"):
                    shift = {"u": 6, "g": 3, "o": 0}[perms]
                    src = (cur >> shift) & 0o7
                    for c in w:
                        bits |= src << {"u": 6, "g": 3, "o": 0}[c]
                else:
                    for c in w:
                        sh = {"u": 6, "g": 3, "o": 0}[c]
                        for p in perms:
                            if p == "r":
                                bits |= 0o4 << sh
                            elif p == "w":
                                bits |= 0o2 << sh
                            elif p == "x":
                                bits |= 0o1 << sh
                            elif p == "X" and (is_dir or mode & 0o111):
                                bits |= 0o1 << sh
                            elif p == "s" and c in "ug":
                                bits |= 0o4000 if c == "u" else 0o2000
                            elif p == "t" and c == "o":
                                bits |= 0o1000
                if op == "+":
                    cur |= bits
                elif op == "-":
                    cur &= ~bits
                else:
                    clear = 0
                    for c in w:
                        sh = {"u": 6, "g": 3, "o": 0}[c]
                        clear |= 0o7 << sh
                        clear |= {"u": 0o4000, "g": 0o2000, "o": 0o1000}[c]
                    cur = (cur & ~clear) | bits
        return cur & 0o7777


def parse_chmod(text: str) -> ChmodSpec:
    """Parse a --chmod value; BuildError with BuildKit's wording when invalid."""
    bad = BuildError(
        f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777",
        hint="use an octal mode such as 0755, or a symbolic one such as u=rwx,go=rx",
    )
    if re.match(_OCTAL, text):
        v = int(text, 8)
        if v > 0o7777:
            raise bad
        return ChmodSpec(text, v)
    clauses: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for part in text.split(","):
        m = re.match(_CLAUSE, part)
        if not m:
            raise bad
        clauses.append((m.group(1), tuple((a, b) for a, b in re.findall(_ACTION, m.group(2)))))
    return ChmodSpec(text, None, tuple(clauses))


@dataclass(frozen=True)
class Owner:
    """Numeric owner of files written by COPY/ADD."""

    uid: int
    gid: int


def parse_passwd_file(data: bytes) -> dict[str, tuple[int, int]]:
    """name -> (uid, primary gid) from /etc/passwd contents."""
    out: dict[str, tuple[int, int]] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] and not line.startswith("#"):
            try:
                out.setdefault(parts[0], (int(parts[2]), int(parts[3])))
            except ValueError:
                continue
    return out


def parse_group_file(data: bytes) -> dict[str, int]:
    """name -> gid from /etc/group contents."""
    out: dict[str, int] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] and not line.startswith("#"):
            try:
                out.setdefault(parts[0], int(parts[2]))
            except ValueError:
                continue
    return out


def resolve_owner(spec: str, read_file: Callable[[str], bytes | None]) -> Owner:
    """Resolve ``user[:group]`` (names or ids) like BuildKit; names come from the image's files."""
    user, _, group = spec.partition(":")
    if not user:
        raise BuildError(f"invalid chown {spec!r}: missing user", hint="use --chown=user[:group]")
    passwd: dict[str, tuple[int, int]] | None = None
    if user.isdigit():
        uid = gid = int(user)
    else:
        data = read_file("/etc/passwd")
        passwd = parse_passwd_file(data) if data is not None else {}
        if user not in passwd:
            raise BuildError(
                f"unable to find user {user}: no matching entries in passwd file",
                hint="use a numeric uid, or create the user in an earlier step",
            )
        uid, gid = passwd[user]
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gdata = read_file("/etc/group")
            groups = parse_group_file(gdata) if gdata is not None else {}
            if group not in groups:
                raise BuildError(
                    f"unable to find group {group}: no matching entries in group file",
                    hint="use a numeric gid, or create the group in an earlier step",
                )
            gid = groups[group]
    return Owner(uid, gid)
