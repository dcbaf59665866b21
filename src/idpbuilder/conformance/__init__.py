"""Dev tool: run BuildKit's Dockerfile conformance cases against ``idpbuilder build`` with buildah as oracle.

    python -m idpbuilder.conformance /work/shared/conformance/buildkit [-j 2] [-k CASE] [--json OUT]

Modules: ``baseimages`` (offline busybox standing in for busybox/alpine), ``flatten`` (OCI layout ->
config subset + flattened rootfs), ``cases`` (per-case builds, expected failures, buildah differences),
``runner`` (parallel run, oracle cache, comparison, table). Not part of the ``idpbuilder`` CLI.
"""
