"""Start-up cost of the commands people run all the time, checked without timing anything.

Timing is too noisy on a loaded machine to assert on; what a command imports is not. Each hot command
(``--help``, ``images``, a warm ``push``, a fully cached ``build``) runs in a subprocess under
``python -X importtime`` (which also reports the imports of a build's forked namespace child) and must not
import the modules it has no use for, and no more idpbuilder modules than its budget. Every module of the
package is also imported once with an audit hook: module-level code must not start processes, open files,
load libraries or touch the network, and only the parsers every command uses may compile regexes then.

When a budget fails because a command legitimately needs a new module, raise the budget in the same change
and say why; when it fails because something is imported eagerly, import it where it is used instead.
The numbers behind this are in bench/README.md ("Start-up").
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.cli import hermetic_env
from fixtures.plugin import BusyboxImage
from fixtures.registry import RegistryInfo

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# never on any hot path: the stdlib dataclasses (idpbuilder._records replaces it), the RUN machinery,
# rich (only for progress bars on a terminal), the cluster client and what only some flags need
NEVER = {
    "dataclasses",
    "rich",
    "lightkube",
    "yaml",
    "idpbuilder.sandbox.runner",
    "idpbuilder.sandbox.runtime",
    "idpbuilder.sandbox.extract",
    "idpbuilder.sandbox.ocispec",
    "idpbuilder.sandbox.seccomp",
    "idpbuilder.sandbox.users",
    "idpbuilder.sandbox.spec",
    "idpbuilder.sandbox.diff",
    "idpbuilder.sandbox.promote",
    "idpbuilder.builder.outputs",
    "idpbuilder.builder.remote_cache",
    "idpbuilder.image.archive",
    "idpbuilder.image.archive_load",
    "idpbuilder.image.archive_save",
    "concurrent.futures",
    "asyncio",
}
# no network and no cluster: no HTTP client, TLS or e-mail parsing (http.client's), no ctypes
LOCAL = NEVER | {
    "urllib3",
    "http.client",
    "ssl",
    "email.utils",
    "email.parser",
    "ctypes",
    "idpbuilder.cluster",
}
FORBIDDEN: dict[str, set[str]] = {
    "help": LOCAL | {"logging", "pathlib", "json", "hashlib", "tarfile", "idpbuilder.store"},
    "images": LOCAL | {"logging", "tarfile", "tempfile", "idpbuilder.image", "idpbuilder.builder"},
    "push": NEVER
    | {"tarfile", "ctypes", "idpbuilder.image.layer", "idpbuilder.builder", "idpbuilder.dockerfile"},
    # a build whose steps are all cached reads no tar, writes no layer and (without a terminal) logs nothing
    "build": NEVER
    | {"urllib3", "ssl", "http.client", "email.utils", "logging", "tarfile", "tempfile", "queue"}
    | {"idpbuilder.sandbox.tarread", "idpbuilder.cluster.transfer", "idpbuilder.registry.client"},
}
# idpbuilder modules each command may import (measured when the budgets were set, plus a little room)
BUDGET = {"help": 8, "images": 22, "push": 52, "build": 70}


def _imports(args: list[str], home: Path, cwd: Path) -> set[str]:
    """Every module ``python -m idpbuilder ARGS`` imported (its namespace child's included)."""
    (cwd / "xdg").mkdir(mode=0o700, exist_ok=True)
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "idpbuilder", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        # a private runtime dir: run state other tests leave there would be reaped (and logged) here
        env=hermetic_env(home, extra={"XDG_RUNTIME_DIR": str(cwd / "xdg")}),
    )
    assert p.returncode == 0, (
        f"idpbuilder {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    )
    mods = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)$", p.stderr, re.M))
    assert len(mods) > 20, f"no -X importtime report in:\n{p.stderr[-2000:]}"
    return mods


def _check(command: str, mods: set[str]) -> None:
    bad = sorted(m for m in mods for f in FORBIDDEN[command] if m == f or m.startswith(f + "."))
    assert not bad, f"`{command}` imported {bad}: import them where they are used"
    ours = sorted(m for m in mods if m == "idpbuilder" or m.startswith("idpbuilder."))
    assert len(ours) <= BUDGET[command], (
        f"`{command}` imported {len(ours)} idpbuilder modules (budget {BUDGET[command]}):\n  "
        + "\n  ".join(ours)
    )


@pytest.fixture
def home(tmp_path: Path, busybox_image: BusyboxImage) -> Path:
    h = tmp_path / "home"
    busybox_image.install(h)
    return h


def test_help_imports_only_click_and_the_entry_point(home: Path, tmp_path: Path) -> None:
    _check("help", _imports(["--help"], home, tmp_path))


def test_images_imports_only_the_store(home: Path, tmp_path: Path) -> None:
    _check("images", _imports(["images"], home, tmp_path))


def test_warm_push_imports_no_image_or_build_code(
    home: Path, tmp_path: Path, registry_plain: RegistryInfo
) -> None:
    dest = registry_plain.ref("startup/busybox:latest")
    _imports(["push", "busybox", dest], home, tmp_path)  # cold: uploads the blobs
    mods = _imports(["push", "busybox", dest], home, tmp_path)
    assert "urllib3" in mods
    _check("push", mods)


def test_cached_build_imports_no_run_machinery(home: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nENV GREETING=hello\n")
    (ctx / "hello.txt").write_text("hello\n")
    args = ["build", "-t", "startup:cached", str(ctx)]
    _imports(args, home, tmp_path)  # fills the build cache
    mods = _imports(args, home, tmp_path)
    assert "idpbuilder.builder.executor" in mods  # the namespace child's imports are seen
    _check("build", mods)


# module-level regexes: only in the parsers every command runs (references, digests, owner stamps, the
# Dockerfile front end, ARG/ENV secret-name checks) and in image/archive (loaded by save/load only)
REGEX_AT_IMPORT = {
    "idpbuilder.digest",
    "idpbuilder.owner",
    "idpbuilder.reference",
    "idpbuilder.builder.metadata",
    "idpbuilder.image.archive",
}

_IMPORT_WORK = textwrap.dedent(
    """
    import importlib, re, sys
    from pathlib import Path

    pkg = Path(sys.argv[1]) / "idpbuilder"
    found = []

    def ours():
        # the innermost frame of ours, unless an import of someone else's module comes first
        f = sys._getframe(2)
        while f is not None:
            name = f.f_code.co_filename
            if name.startswith("<frozen importlib"):
                return None
            if name.startswith(str(pkg)):
                return f
            f = f.f_back
        return None

    def module_level():
        f = ours()
        return None if f is None or f.f_code.co_name != "<module>" else f.f_globals["__name__"]

    WATCH = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork", "ctypes.dlopen",
             "socket.connect", "socket.getaddrinfo", "open", "os.listdir", "os.scandir"}

    def hook(event, args):
        if event in WATCH:
            mod = module_level()
            if mod is not None:
                found.append(f"{mod}: {event} {args!r:.100}")

    compile_ = re._compile

    def counting_compile(pattern, flags):
        mod = module_level()
        if mod is not None:
            found.append(f"{mod}: re.compile")
        return compile_(pattern, flags)

    sys.addaudithook(hook)
    re._compile = counting_compile
    for p in sorted(pkg.rglob("*.py")):
        name = ".".join(p.relative_to(pkg.parent).with_suffix("").parts).removesuffix(".__init__")
        if not name.endswith("__main__"):
            importlib.import_module(name)
    print("\\n".join(found))
    """
)


def test_no_work_at_import_time() -> None:
    p = subprocess.run(
        [sys.executable, "-c", _IMPORT_WORK, str(SRC)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    work = [line for line in p.stdout.splitlines() if line]
    regex_mods = {line.split(":")[0] for line in work if line.endswith("re.compile")}
    others = [line for line in work if not line.endswith("re.compile")]
    assert not others, "module-level code does work (do it on first use):\n" + "\n".join(others)
    extra = sorted(
        m for m in regex_mods if m not in REGEX_AT_IMPORT and not m.startswith("idpbuilder.dockerfile")
    )
    assert not extra, (
        f"modules compiling regexes at import (compile on first use, see builder/modes.py): {extra}"
    )
    assert "idpbuilder.reference" in regex_mods, "the import-work probe saw nothing: is it still working?"


def test_src_does_not_use_stdlib_dataclasses() -> None:
    uses = [
        f"{p.relative_to(REPO)}:{n}"
        for p in sorted((SRC / "idpbuilder").rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"\s*(from dataclasses import|import dataclasses)", line)
    ]
    assert not uses, "use idpbuilder._records (cheap to define) instead of dataclasses:\n" + "\n".join(uses)


def test_logging_is_configured_when_first_imported() -> None:
    code = textwrap.dedent(
        """
        import sys
        from idpbuilder.cli.logs import setup
        assert "logging" not in sys.modules
        setup("info", False)
        import logging
        assert type(logging.__loader__).__name__ != "_ThenLoader"
        logging.getLogger("idpbuilder.x").debug("not shown")
        logging.getLogger("idpbuilder.x").warning("shown %s", 1)
        setup("debug", False)
        logging.getLogger("idpbuilder.x").debug("now shown")
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert [line.split(" ", 3)[3] for line in lines] == ["WARN shown 1", "DEBUG now shown"], p.stderr
