"""The RUN sandbox: rootfs assembly (overlayfs or a copy), OCI runtime bundles, and change → layer.

Public API (re-exported here, each imported on first use: a build whose steps are all cached, and every
other command, imports ``isolation`` and ``state`` only, never the RUN machinery):

* ``RunSpec`` / ``MountSpec``: what the build engine asks for; ``Runner``: the protocol it calls.
* ``OciRunner``: the crun/runc implementation; ``detect_runtime``: which runtime works on this host.
* ``safe_extract`` / ``extract_layers`` / ``extract_image_rootfs``: safe layer extraction; ``layer_dir``:
  the per-diff_id cache of extracted layers used as overlay lower dirs.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idpbuilder.sandbox.extract import extract_image_rootfs, extract_layers, layer_dir, safe_extract
    from idpbuilder.sandbox.runner import OciRunner, mounts_under
    from idpbuilder.sandbox.runtime import detect_runtime
    from idpbuilder.sandbox.spec import MountSpec, Runner, RunSpec
    from idpbuilder.sandbox.users import ExecUser, resolve_user

_MODULES = {
    "ExecUser": "users",
    "MountSpec": "spec",
    "OciRunner": "runner",
    "RunSpec": "spec",
    "Runner": "spec",
    "detect_runtime": "runtime",
    "extract_image_rootfs": "extract",
    "extract_layers": "extract",
    "layer_dir": "extract",
    "mounts_under": "runner",
    "resolve_user": "users",
    "safe_extract": "extract",
}


def __getattr__(name: str) -> Any:
    """Re-exports, imported on first use (importing one submodule must not load them all)."""
    mod = _MODULES.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


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
