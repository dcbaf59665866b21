"""Dev tool: run BuildKit's Dockerfile conformance cases against ``idpbuilder build`` with buildah as oracle.

    python -m tools.conformance /work/shared/conformance/buildkit [-j 2] [-k CASE] [--json OUT]

Run from the repository root (``tools/`` is not part of the wheel). Modules:

- ``model`` value types (what to build, what to expect, what happened); ``cases`` the per-case table
  from EXPECT.md; ``checks`` its custom assertions;
- ``baseimages`` offline busybox standing in for busybox/alpine; ``flatten`` OCI layout -> config
  subset + flattened rootfs; ``fixtures`` a case's context (hash, writable copy, repairs, edits);
- ``ours`` the builder under test; ``oracles`` the reference builders (``oracles.buildah``), each with
  its table of known differences from BuildKit; ``buildcmd`` what both share;
- ``judge`` comparison and verdict per build; ``cache`` the on-disk oracle cache; ``httpserve`` the
  case's HTTP server; ``procs`` subprocess and mount helpers;
- ``runner`` the parallel run; ``report`` the table and JSON; ``__main__`` the command line.

Not part of the ``idpbuilder`` CLI.
"""
