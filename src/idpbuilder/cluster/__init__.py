"""The idpbuilder cluster: kubeconfig access (lightkube, lazily), registry/credential/CA discovery, Gitea rules.

Importing this package is cheap: the re-exports below load their modules on first use, and lightkube is
imported only when the cluster is first consulted.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idpbuilder.cluster.discovery import (
        DEFAULT_REGISTRY_URL,
        ENV_REGISTRY_URL,
        ClusterCredentials,
        IdpCluster,
        LocalBuild,
        RegistryEndpoint,
        ca_cache_path,
        parse_localbuild,
        parse_registry_url,
    )
    from idpbuilder.cluster.gitea import (
        DEFAULT_OWNER,
        GiteaTarget,
        check_gitea_reference,
        gitea_owner,
        gitea_target,
    )
    from idpbuilder.cluster.kube import DEFAULT_CONTEXT, ClusterUnreachable, KubeClient, KubeOptions

_MODULES = {
    "DEFAULT_REGISTRY_URL": "discovery",
    "ENV_REGISTRY_URL": "discovery",
    "ClusterCredentials": "discovery",
    "IdpCluster": "discovery",
    "LocalBuild": "discovery",
    "RegistryEndpoint": "discovery",
    "ca_cache_path": "discovery",
    "parse_localbuild": "discovery",
    "parse_registry_url": "discovery",
    "DEFAULT_OWNER": "gitea",
    "GiteaTarget": "gitea",
    "check_gitea_reference": "gitea",
    "gitea_owner": "gitea",
    "gitea_target": "gitea",
    "DEFAULT_CONTEXT": "kube",
    "ClusterUnreachable": "kube",
    "KubeClient": "kube",
    "KubeOptions": "kube",
}


def __getattr__(name: str) -> Any:
    """Re-exports, imported on first use (importing one submodule must not load them all)."""
    mod = _MODULES.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_OWNER",
    "DEFAULT_REGISTRY_URL",
    "ENV_REGISTRY_URL",
    "ClusterCredentials",
    "ClusterUnreachable",
    "GiteaTarget",
    "IdpCluster",
    "KubeClient",
    "KubeOptions",
    "LocalBuild",
    "RegistryEndpoint",
    "ca_cache_path",
    "check_gitea_reference",
    "gitea_owner",
    "gitea_target",
    "parse_localbuild",
    "parse_registry_url",
]
