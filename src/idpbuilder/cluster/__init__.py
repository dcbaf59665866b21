"""The idpbuilder cluster: kubeconfig access (lightkube, lazily), registry/credential/CA discovery, Gitea rules.

Importing this package is cheap: lightkube is imported only when the cluster is first consulted.
"""

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
