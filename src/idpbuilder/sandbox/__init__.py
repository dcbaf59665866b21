"""The RUN sandbox: rootfs assembly (overlayfs or a copy), OCI runtime bundles, and change → layer.

Public API (re-exported here):

* ``RunSpec`` / ``MountSpec``: what the build engine asks for; ``Runner``: the protocol it calls.
* ``OciRunner``: the crun/runc implementation; ``detect_runtime``: which runtime works on this host.
* ``safe_extract`` / ``extract_layers`` / ``extract_image_rootfs``: safe layer extraction; ``layer_dir``:
  the per-diff_id cache of extracted layers used as overlay lower dirs.
"""

from idpbuilder.sandbox.extract import extract_image_rootfs, extract_layers, layer_dir, safe_extract
from idpbuilder.sandbox.runner import OciRunner, mounts_under
from idpbuilder.sandbox.runtime import detect_runtime
from idpbuilder.sandbox.spec import MountSpec, Runner, RunSpec
from idpbuilder.sandbox.users import ExecUser, resolve_user

__all__ = [
    "ExecUser",
    "MountSpec",
    "OciRunner",
    "RunSpec",
    "Runner",
    "detect_runtime",
    "extract_image_rootfs",
    "extract_layers",
    "layer_dir",
    "mounts_under",
    "resolve_user",
    "safe_extract",
]
