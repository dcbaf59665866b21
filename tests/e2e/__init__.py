"""End-to-end workflow tests (real CLI, registries, runtimes)."""
