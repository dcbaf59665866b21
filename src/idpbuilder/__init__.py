"""idpbuilder: daemonless Dockerfile builds, a local OCI image store, and registry push/pull."""

__version__ = "0.1.0"
__all__ = ["__version__"]
