"""bench/rootless_bench.py: a smoke test of its options and its table of ratios (no build); one real round
(an account, a registry, four builders: 35-90 s) is marked slow, out of the default test command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import rootless_bench as rb


def test_options() -> None:
    args = rb.parse_args([])
    assert (args.rounds, args.debian_rounds, args.skip_debian) == (3, 1, False)
    args = rb.parse_args(["--rounds", "5", "--debian-rounds", "2", "--skip-debian"])
    assert (args.rounds, args.debian_rounds, args.skip_debian) == (5, 2, True)
    with pytest.raises(SystemExit):
        rb.parse_args(["--rounds", "0"])


def test_table_has_the_three_ratios_of_the_medians() -> None:
    times = {
        "ours-root": [1.0, 3.0, 2.0],
        "ours-rootless": [3.0],
        "podman-chroot": [6.0],
        "podman-oci": [4.0],
    }
    results: rb.Results = {}
    for mode in rb.MODES:
        for builder, secs in times.items():
            results[("busybox", mode, builder)] = rb.Series(list(secs))
    assert rb.ratios(results, "busybox", "cold") == (1.5, 0.5, 0.75)
    lines = rb.table(results).splitlines()
    assert lines[0].startswith("| image | mode | ours-root | ours-rootless | podman-chroot | podman-oci |")
    assert len(lines) == 4  # header, rule, cold, warm
    assert lines[2] == (
        "| busybox | cold | 2.00 s (1.00-3.00) | 3.00 s | 6.00 s | 4.00 s | **1.50x** | **0.50x** | **0.75x** |"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_busybox_round() -> None:
    """The benchmark itself (35-90 s here, load-dependent): one busybox round, by hand with ``-m slow``."""
    if os.geteuid() != 0:
        pytest.skip("the benchmark creates its account: needs root")
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    p = subprocess.run(
        [sys.executable, str(Path(rb.__file__)), "--rounds", "1", "--skip-debian"],
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "| busybox | cold |" in p.stdout and "| busybox | warm |" in p.stdout, p.stdout
