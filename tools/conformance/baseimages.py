"""Offline base images for the conformance run: a busybox image built from Debian's busybox-static.

Upstream's cases use ``busybox:latest``, ``alpine:latest`` and ``busybox:stable-musl``. With no network,
one busybox image stands in for all three (alpine is *substituted* by busybox: no case runs ``apk``).
/etc/passwd and /etc/group mirror the official busybox image (buildroot skeleton: daemon, wheel, nobody…)
because cases assert ``id`` output against them. Debian's busybox has no ``adduser`` applet, so a small
POSIX-sh ``adduser`` implementing busybox's ``adduser [-D] [-u UID] [-G GROUP] [-h HOME] [-s SHELL] USER``
is installed instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from idpbuilder.errors import NotFoundError
from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.oci import Descriptor, Platform
from idpbuilder.store.layout import Store

__all__ = ["BASE_REFS", "BUSYBOX_BIN", "add_busybox_image", "build_busybox_rootfs"]

BUSYBOX_BIN = Path("/bin/busybox")
# every name a case's FROM can resolve to (docker.io/library/ normalisation, :latest default)
BASE_REFS = (
    "docker.io/library/busybox:latest",
    "docker.io/library/alpine:latest",
    "docker.io/library/busybox:stable-musl",
)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MTIME = 1_700_000_000  # fixed, so the image is byte-identical across runs

_PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

_GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nobody:x:65534:
"""

_ADDUSER = r"""#!/bin/sh
# adduser [-D] [-H] [-S] [-u UID] [-G GROUP] [-h HOME] [-s SHELL] [-g GECOS] USER
# (stand-in for busybox's applet, missing from Debian's busybox-static)
uid= grp= home= shell=/bin/sh gecos= nohome=
while getopts "DHSu:G:h:s:g:k:" o; do
  case $o in
    u) uid=$OPTARG ;; G) grp=$OPTARG ;; h) home=$OPTARG ;; s) shell=$OPTARG ;;
    g) gecos=$OPTARG ;; H) nohome=1 ;; *) ;;
  esac
done
shift $((OPTIND - 1))
user=$1
[ -n "$user" ] || { echo "usage: adduser [-D] [-u UID] [-G GROUP] USER" >&2; exit 1; }
if grep -q "^$user:" /etc/passwd; then echo "adduser: user '$user' in use" >&2; exit 1; fi
if [ -z "$uid" ]; then
  uid=$(awk -F: 'BEGIN{m=999} $3>=1000 && $3<60000 && $3>m {m=$3} END{print m+1}' /etc/passwd)
fi
if [ -n "$grp" ]; then
  gid=$(awk -F: -v g="$grp" '$1==g {print $3}' /etc/group)
  [ -n "$gid" ] || { echo "adduser: unknown group $grp" >&2; exit 1; }
else
  gid=$(awk -F: -v u="$uid" 'BEGIN{g=u} $3==g {g=-1} END{print g}' /etc/group)
  [ "$gid" -ge 0 ] 2>/dev/null || gid=$(awk -F: 'BEGIN{m=999} $3>=1000 && $3<60000 && $3>m {m=$3} END{print m+1}' /etc/group)
  echo "$user:x:$gid:" >> /etc/group
fi
[ -n "$home" ] || home=/home/$user
echo "$user:x:$uid:$gid:${gecos:-Linux User,,,}:$home:$shell" >> /etc/passwd
if [ -z "$nohome" ]; then
  mkdir -p "$home" && chown "$uid:$gid" "$home" && chmod 2755 "$home"
fi
"""


def build_busybox_rootfs(dest: Path, *, busybox: Path = BUSYBOX_BIN) -> None:
    """Write a busybox root filesystem (every applet in /bin, upstream's passwd/group) into ``dest``."""
    if not busybox.is_file():
        raise NotFoundError(f"busybox binary {busybox} not found", hint="apt-get install busybox-static")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for d, mode in (
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("lib", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/spool", 0o755),
        ("var/spool/mail", 0o755),
        ("var/www", 0o755),
    ):
        p = dest / d
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, mode)
    shutil.copyfile(busybox, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    for name in applets:
        if name in ("busybox", "[[") or "/" in name:
            continue
        os.symlink("busybox", dest / "bin" / name)
    os.symlink("busybox", dest / "bin" / "[[")
    (dest / "bin" / "adduser").write_text(_ADDUSER)
    os.chmod(dest / "bin" / "adduser", 0o755)
    (dest / "etc" / "passwd").write_text(_PASSWD)
    (dest / "etc" / "group").write_text(_GROUP)
    (dest / "etc" / "shadow").write_text(
        "".join(f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in _PASSWD.splitlines())
    )
    os.chmod(dest / "etc" / "shadow", 0o600)
    for p in [dest, *dest.rglob("*")]:
        os.utime(p, (_MTIME, _MTIME), follow_symlinks=False)


def add_busybox_image(store: Store, *, refs: tuple[str, ...] = BASE_REFS) -> Descriptor:
    """Build the busybox image into ``store`` and tag it as every name in ``refs``; return its manifest."""
    with tempfile.TemporaryDirectory(prefix="busybox-rootfs-") as tmp:
        root = Path(tmp)
        build_busybox_rootfs(root)
        with LayerWriter(store, compression="gzip", level=3) as lw:
            lw.add_tree(root, uid=0, gid=0, mtime=_MTIME)
        layer = lw.result
    created = "2023-11-14T22:13:20Z"
    config = {
        "created": created,
        "architecture": Platform.host().architecture,
        "os": "linux",
        "config": {"Env": [DEFAULT_PATH], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
        "history": [
            {"created": created, "created_by": "/bin/sh -c #(nop) ADD file:busybox-static in / "},
            {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        ],
    }
    desc = commit_image(store, config, [layer])
    for ref in refs:
        store.set_ref(ref, desc)
    return desc
