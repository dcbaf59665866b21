"""Living beside the Go idpbuilder: commands we lack are exec'd in the other ``idpbuilder`` on PATH.

A stand-in shell script plays the Go tool; it prints its arguments and marker variable and exits 7. The CLI
runs as the installed console script (``.venv/bin/idpbuilder``), as users run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fixtures.cli import CliResult, hermetic_env

OURS = Path(sys.executable).parent / "idpbuilder"
STAND_IN = """#!/bin/sh
echo "go-idpbuilder args: $*"
echo "go-idpbuilder stderr" >&2
echo "marker: ${IDPBUILDER_PASSTHROUGH:-unset}"
exit 7
"""


def _stand_in(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "idpbuilder"
    exe.write_text(STAND_IN)
    exe.chmod(0o755)
    return exe


def _run(home: Path, path_dirs: list[Path], *args: str, exe: Path = OURS, **extra: str) -> CliResult:
    env = hermetic_env(
        home, extra={"PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin:/bin"]), **extra}
    )
    p = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60)
    return CliResult(p.returncode, p.stdout, p.stderr)


def test_go_command_is_handed_over_with_same_args_streams_and_exit_code(
    idp_home: Path, tmp_path: Path
) -> None:
    go = _stand_in(tmp_path / "go-bin")
    # ours first on PATH, the Go tool later (the documented order)
    code, out, err = _run(idp_home, [OURS.parent, go.parent], "get", "secrets", "-p", "gitea", "--foo=bar")
    assert code == 7
    assert "go-idpbuilder args: get secrets -p gitea --foo=bar" in out
    assert "go-idpbuilder stderr" in err and "Error" not in err
    assert f"marker: {OURS.resolve()}" in out


def test_global_flags_before_the_command_are_passed_too(idp_home: Path, tmp_path: Path) -> None:
    go = _stand_in(tmp_path / "go-bin")
    code, out, _ = _run(idp_home, [OURS.parent, go.parent], "-l", "debug", "create", "--build-name", "x")
    assert code == 7 and "go-idpbuilder args: -l debug create --build-name x" in out


def test_go_tool_earlier_on_path_still_gets_its_commands(idp_home: Path, tmp_path: Path) -> None:
    go = _stand_in(tmp_path / "go-bin")
    code, out, _ = _run(idp_home, [go.parent, OURS.parent], "version")
    assert code == 7 and "go-idpbuilder args: version" in out
    # and our own commands stay ours
    code, out, err = _run(idp_home, [go.parent, OURS.parent], "images")
    assert code == 0, err
    assert out.startswith("REPOSITORY") and "go-idpbuilder" not in out


def test_help_says_whose_commands_are_whose(idp_home: Path, tmp_path: Path) -> None:
    go = _stand_in(tmp_path / "go-bin")
    code, out, _ = _run(idp_home, [OURS.parent, go.parent], "--help")
    assert code == 0
    assert "Commands of the Go idpbuilder" in out and str(go) in out
    code, out, _ = _run(idp_home, [OURS.parent], "--help")
    assert code == 0 and "not on PATH" in out


def test_without_go_tool_a_go_command_fails_with_an_install_hint(idp_home: Path) -> None:
    code, out, err = _run(idp_home, [OURS.parent], "create")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[-2] == "Error: 'create' is a command of the Go idpbuilder, which is not on PATH"
    assert lines[-1].startswith("Hint: install the Go idpbuilder")


def test_never_recurses_into_itself(idp_home: Path, tmp_path: Path) -> None:
    # a symlink to ourselves and a copy of our launcher script elsewhere on PATH are both skipped
    link_dir = tmp_path / "link"
    link_dir.mkdir()
    (link_dir / "idpbuilder").symlink_to(OURS)
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    (copy_dir / "idpbuilder").write_text(OURS.read_text())
    (copy_dir / "idpbuilder").chmod(0o755)
    code, _, err = _run(idp_home, [link_dir, copy_dir, OURS.parent], "create", exe=link_dir / "idpbuilder")
    assert code == 2 and "not on PATH" in err
    # started by a hand-over (marker set), a copy of this tool never hands over again
    go = _stand_in(tmp_path / "go-bin")
    code, out, err = _run(idp_home, [go.parent], "create", IDPBUILDER_PASSTHROUGH="/somewhere/idpbuilder")
    assert code == 2 and "go-idpbuilder" not in out


def test_typo_of_our_command_suggests_it(idp_home: Path) -> None:
    code, _, err = _run(idp_home, [OURS.parent], "bulid")
    assert code == 2
    assert err.strip().splitlines()[-2:] == [
        "Error: No such command 'bulid'",
        "Hint: did you mean 'build'? see 'idpbuilder --help'",
    ]
