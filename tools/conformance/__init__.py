"""Dev tool: run BuildKit's Dockerfile conformance cases against ``idpbuilder build`` with Docker's own
engine as the oracle (``--oracle buildah`` for buildah, ``--classic`` for docker's legacy builder), or
build any context with both and print the differences (``--compare DIR``).

    python -m tools.conformance /work/shared/conformance/buildkit [-j 2] [-k CASE] [--json OUT]
    python -m tools.conformance --compare DIR [-f Dockerfile] [--build-arg K=V] [--base-archive T.tar]

Run from the repository root (``tools/`` is not part of the wheel). Modules:

- ``model`` value types (what to build, what to expect, what happened); ``cases`` the per-case table
  from EXPECT.md; ``checks`` its custom assertions;
- ``baseimages`` offline busybox standing in for busybox/alpine; ``flatten`` OCI layout -> config
  subset + flattened rootfs; ``fixtures`` a case's context (hash, writable copy, repairs, edits);
- ``ours`` the builder under test; ``oracles`` the reference builders (``oracles.docker``: a private
  dockerd per worker from ``dockerd``; ``oracles.buildah``), each with its table of known differences
  from current BuildKit; ``buildcmd`` what all share; ``compare`` the ``--compare`` mode;
- ``judge`` comparison and verdict per build; ``cache`` the on-disk oracle cache; ``httpserve`` the
  case's HTTP server; ``procs`` subprocess and mount helpers;
- ``runner`` the parallel run; ``report`` the table and JSON; ``__main__`` the command line.

Not part of the ``idpbuilder`` CLI.
"""
