"""Run the BuildKit Dockerfile conformance cases with idpbuilder and with buildah (the oracle), compare.

Per case: build every BuildSpec with ``idpbuilder --store HOME build`` and with ``buildah bud --isolation
chroot``, then compare the image config fields and the flattened rootfs; expected-failure builds must fail
in both (ours with a one-line ``Error:`` message, no traceback). Where buildah is known to differ from
BuildKit a case's ``Expect`` (from EXPECT.md) is the judge instead. Oracle results are cached on disk,
keyed by the case's content hash, the build spec, the buildah version and the base image digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from idpbuilder.conformance.baseimages import BASE_REFS, add_busybox_image
from idpbuilder.conformance.cases import CASES, RUNTIME_ARTIFACTS, category_of
from idpbuilder.conformance.flatten import Entry, FlatImage, load_layout_image
from idpbuilder.conformance.model import BuildOutcome, BuildSpec, CaseSpec, Verdict
from idpbuilder.errors import NotFoundError
from idpbuilder.store.layout import Store

__all__ = ["RunConfig", "Summary", "compare_images", "discover_cases", "run_cases"]

ORACLE_SCHEMA = "4"  # bump when what is cached changes
BUILD_TIMEOUT = 180.0
HTTP_PORT = 8000
MAX_DIFFS = 4


@dataclass(frozen=True)
class RunConfig:
    """Settings of one conformance run."""

    cases_dir: Path
    work_dir: Path
    cache_dir: Path | None
    workers: int = 2
    idpbuilder: tuple[str, ...] = (sys.executable, "-m", "idpbuilder")
    only: tuple[str, ...] = ()
    use_oracle: bool = True
    keep: bool = False
    self_check: bool = False  # judge buildah's own results against the EXPECT overrides (no idpbuilder)


@dataclass(frozen=True)
class Summary:
    """All verdicts plus the totals printed at the end."""

    verdicts: list[Verdict]
    seconds: float
    oracle_cache_hits: int

    @property
    def passed(self) -> int:
        return sum(v.status == "pass" for v in self.verdicts)

    @property
    def failed(self) -> int:
        return sum(v.status == "fail" for v in self.verdicts)

    @property
    def skipped(self) -> int:
        return sum(v.status == "skip" for v in self.verdicts)

    @property
    def pass_ratio(self) -> float:
        runnable = self.passed + self.failed
        return self.passed / runnable if runnable else 0.0

    def line(self) -> str:
        """``N passed, M failed, K skipped`` over the runnable cases."""
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def discover_cases(cases_dir: Path) -> list[str]:
    """Every case folder (one with an EXPECT.md), sorted."""
    if not cases_dir.is_dir():
        raise NotFoundError(f"conformance cases directory {cases_dir} not found")
    return sorted(p.name for p in cases_dir.iterdir() if (p / "EXPECT.md").is_file())


def content_hash(case_dir: Path) -> str:
    """sha256 over every name, type, mode, link target and content under ``case_dir``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(case_dir):
        dirs.sort()
        for name in sorted(files + dirs):
            p = Path(root) / name
            st = p.lstat()
            h.update(f"{p.relative_to(case_dir)}\0{st.st_mode:o}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _entry_text(e: Entry) -> str:
    extra = f" -> {e.link}" if e.link else (f" sha256:{e.sha256[:12]}" if e.sha256 else "")
    return f"{e.type} {e.mode:04o} {e.uid}:{e.gid} {e.size}B{extra}"


def compare_images(
    ours: FlatImage,
    theirs: FlatImage,
    *,
    ignore_config: tuple[str, ...] = (),
    ignore_paths: tuple[str, ...] = (),
) -> list[str]:
    """Differences between two images (config fields, then rootfs entries); empty when equivalent."""
    diffs: list[str] = []
    for key in sorted(set(ours.config) | set(theirs.config)):
        if key in ignore_config:
            continue
        a, b = ours.config.get(key), theirs.config.get(key)
        if key == "WorkingDir":  # BuildKit writes "/", buildah leaves it empty: the same at run time
            a, b = a or "/", b or "/"
        if a != b:
            diffs.append(f"config {key}: ours {a!r} buildah {b!r}")

    def ignored(path: str, a: Entry | None, b: Entry | None) -> bool:
        if any(path == p or path.startswith(p + "/") for p in ignore_paths):
            return True
        # mount points and files a RUN sandbox leaves behind: fine on one side when empty
        one = a if b is None else b if a is None else None
        return one is not None and path in RUNTIME_ARTIFACTS and one.size == 0

    for path in sorted(set(ours.files) | set(theirs.files)):
        a, b = ours.files.get(path), theirs.files.get(path)
        if a is not None and b is not None and a.type == b.type == "symlink":
            a, b = replace(a, mode=0o777), replace(b, mode=0o777)  # a symlink's mode means nothing on Linux
        if a == b or ignored(path, a, b):
            continue
        if a is None:
            diffs.append(f"/{path}: only in buildah ({_entry_text(b)})" if b else f"/{path}")
        elif b is None:
            diffs.append(f"/{path}: only in ours ({_entry_text(a)})")
        else:
            diffs.append(f"/{path}: ours {_entry_text(a)}, buildah {_entry_text(b)}")
    return diffs


# ---------------------------------------------------------------------------------------------- builders


def _tail(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])[-600:]


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        p = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        return 124, out + f"\ntimed out after {BUILD_TIMEOUT:.0f}s"
    return p.returncode, p.stdout.decode(errors="replace")


def _image_ref(case: str, index: int) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    return f"conformance.local/cases/{name}:b{index}"


def _dockerfile_args(spec: BuildSpec, context: Path) -> list[str]:
    return ["-f", str(context / spec.dockerfile)] if spec.dockerfile else []


def _common_args(spec: BuildSpec) -> list[str]:
    args: list[str] = []
    for a in spec.build_args:
        args += ["--build-arg", a]
    if spec.target:
        args += ["--target", spec.target]
    if spec.platform:
        args += ["--platform", spec.platform]
    for label in spec.labels:
        args += ["--label", label]
    return args


def _secret_args(spec: BuildSpec, tmp: Path) -> list[str]:
    args: list[str] = []
    for sid, value in spec.secrets:
        f = tmp / f"secret-{sid}"
        f.write_text(value)
        args += ["--secret", f"id={sid},src={f}"]
    return args


def _outcome_from_layout(ok: bool, seconds: float, output: str, layout: Path, ref: str) -> BuildOutcome:
    if not ok:
        return BuildOutcome(False, seconds, _tail(output))
    try:
        raw, image, contents = load_layout_image(layout, ref)
    except Exception as e:  # a built image we cannot read is a failure of the build
        return BuildOutcome(False, seconds, f"built, but the image is unreadable: {e}")
    return BuildOutcome(True, seconds, "", raw, image, contents)


class OursBuilder:
    """Runs ``idpbuilder --store HOME build`` (one HOME per case, seeded with the base images)."""

    def __init__(self, command: tuple[str, ...], template_home: Path) -> None:
        self.command = command
        self.template = template_home
        rc, out = _run([*command, "build", "--help"])
        self.available = rc == 0
        self.unavailable_reason = "" if self.available else f"`idpbuilder build` unavailable: {_tail(out, 2)}"
        self.supports_secret = "--secret" in out

    def new_home(self, dest: Path) -> Path:
        """A fresh idpbuilder home whose store already holds the base images."""
        shutil.copytree(self.template / "store", dest / "store", symlinks=True)
        return dest

    def build(self, home: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec; on success read the image back from HOME/store."""
        cmd = [*self.command, "--store", str(home), "build", *_dockerfile_args(spec, context), "-t", ref]
        cmd += _common_args(spec) + _secret_args(spec, tmp) + [str(context)]
        t0 = time.monotonic()
        rc, out = _run(cmd, env={**os.environ, "NO_COLOR": "1"})
        seconds = time.monotonic() - t0
        if rc != 0:
            return BuildOutcome(False, seconds, _ours_error(out))
        return _outcome_from_layout(True, seconds, out, home / "store", ref)


def _ours_error(output: str) -> str:
    """Our failure output, flagged when it is not a clear one-line ``Error:`` message."""
    text = output.strip()
    if "Traceback (most recent call last)" in text:
        return "UNCLEAR (traceback): " + _tail(text, 3)
    if "internal error" in text:
        return "UNCLEAR (internal error): " + _tail(text, 2)
    if not re.search(r"^Error: \S", text, re.M):
        return "UNCLEAR (no 'Error:' line): " + _tail(text, 3)
    return _tail(text, 4)


class BuildahBuilder:
    """The oracle: Debian buildah with overlay storage and chroot isolation, one storage root per worker."""

    def __init__(self, work: Path, base_layout: Path, roots: int) -> None:
        self.version = subprocess.run(
            ["buildah", "--version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.work = work
        self.base_layout = base_layout
        self.root_count = roots
        self._roots: queue.Queue[Path] = queue.Queue()
        self._made = 0
        self._lock = threading.Lock()

    def _base(self, root: Path) -> list[str]:
        return [
            "buildah",
            "--root",
            str(root / "root"),
            "--runroot",
            str(root / "run"),
            "--storage-driver",
            "overlay",
        ]

    @staticmethod
    def _env(root: Path) -> dict[str, str]:
        # buildah keeps RUN --mount=type=cache dirs under $TMPDIR (default /var/tmp, shared by every run)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return {**os.environ, "TMPDIR": str(root / "tmp")}

    def _prepare(self, root: Path) -> None:
        b = self._base(root)
        rc, out = _run([*b, "pull", "-q", f"oci:{self.base_layout}:{BASE_REFS[0]}"], env=self._env(root))
        if rc != 0:
            raise RuntimeError(f"buildah pull of the base image failed: {_tail(out)}")
        image_id = out.strip().splitlines()[-1]
        rc, out = _run([*b, "tag", image_id, *BASE_REFS])
        if rc != 0:
            raise RuntimeError(f"buildah tag failed: {_tail(out)}")

    @contextlib.contextmanager
    def root(self) -> Iterator[Path]:
        """Borrow a storage root (created and seeded on first use)."""
        try:
            r = self._roots.get_nowait()
        except queue.Empty:
            with self._lock:
                self._made += 1
                r = self.work / f"buildah-{self._made}"
            r.mkdir(parents=True, exist_ok=True)
            self._prepare(r)
        try:
            yield r
        finally:
            self._roots.put(r)

    def build(self, root: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec with buildah and read the result back through an OCI layout."""
        b = self._base(root)
        df = (
            ["-f", str(context / spec.oracle_dockerfile)]
            if spec.oracle_dockerfile
            else _dockerfile_args(spec, context)
        )
        cmd = [*b, "bud", "--isolation", "chroot", "--layers", "-q", *df, "-t", ref, *spec.oracle_args]
        cmd += _common_args(spec) + _secret_args(spec, tmp) + [str(context)]
        t0 = time.monotonic()
        rc, out = _run(cmd, env=self._env(root))
        seconds = time.monotonic() - t0
        if rc != 0:
            return BuildOutcome(False, seconds, _tail(out))
        layout = tmp / "buildah-oci"
        shutil.rmtree(layout, ignore_errors=True)
        rc, out = _run([*b, "push", "-q", ref, f"oci:{layout}:img"], env=self._env(root))
        if rc != 0:
            return BuildOutcome(False, seconds, "push to OCI layout failed: " + _tail(out))
        return _outcome_from_layout(True, seconds, out, layout, "img")

    def cleanup(self) -> None:
        """Remove every storage root this builder made."""
        while True:
            try:
                r = self._roots.get_nowait()
            except queue.Empty:
                break
            _run([*self._base(r), "rm", "--all"], env=self._env(r))
            _run([*self._base(r), "rmi", "--all", "--force"], env=self._env(r))
            unmount_below(r)
            shutil.rmtree(r, ignore_errors=True)


def unmount_below(root: Path) -> None:
    """Unmount every mount under ``root`` (buildah's overlay driver leaves layer mounts behind)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for m in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        if subprocess.run(["umount", m], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True)


# ------------------------------------------------------------------------------------------ HTTP server


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def serve(case_dir: Path) -> Iterator[None]:
    """Run the case's serve.py on 127.0.0.1:8000 for the duration of the block."""
    if not _port_free(HTTP_PORT):
        raise RuntimeError(f"port {HTTP_PORT} is busy; the case's HTTP server cannot start")
    proc = subprocess.Popen(
        [sys.executable, str(case_dir / "serve.py")],
        cwd=case_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", HTTP_PORT), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve.py did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------ judge


def _judge_build(
    spec: BuildSpec, case: CaseSpec, ours: BuildOutcome, theirs: BuildOutcome | None
) -> str | None:
    """None when this build passes, else the reason it fails."""
    if spec.fail is not None:
        if ours.ok:
            return f"[{spec.label}] must fail, but ours succeeded"
        if ours.error.startswith("UNCLEAR"):
            return f"[{spec.label}] failed without a clear message: {ours.error}"
        if spec.oracle and theirs is not None and theirs.ok:
            return f"[{spec.label}] oracle buildah did not fail (add an override)"
        return None
    if not ours.ok:
        return f"[{spec.label}] build failed: {ours.error}"
    assert ours.image is not None and ours.raw_config is not None
    problems: list[str] = []
    if spec.expect is not None:
        problems += spec.expect.check(ours.raw_config, ours.image, ours.contents)
    if spec.oracle and theirs is not None:
        if not theirs.ok:
            problems.append(f"oracle buildah failed ({theirs.error[:160]}); add an override")
        else:
            assert theirs.image is not None
            problems += compare_images(
                ours.image, theirs.image, ignore_config=case.ignore_config, ignore_paths=case.ignore_paths
            )
    if problems:
        more = f" (+{len(problems) - MAX_DIFFS} more)" if len(problems) > MAX_DIFFS else ""
        return f"[{spec.label}] " + "; ".join(problems[:MAX_DIFFS]) + more
    return None


def _writable_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    for p in [dest, *dest.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    return dest


def repair_context(context: Path, spec: CaseSpec) -> list[str]:
    """Recreate the symlinks and sockets the fixture copy lost; return what was repaired."""
    done: list[str] = []
    for rel, target in spec.symlinks:
        p = context / rel
        if p.is_symlink():
            continue
        if p.is_file() and p.read_text().strip() != target:
            raise RuntimeError(f"cannot repair {rel}: it holds neither a symlink nor its link text")
        p.unlink(missing_ok=True)
        os.symlink(target, p)
        done.append(rel)
    for rel in spec.sockets:
        p = context / rel
        if p.exists() or p.is_symlink():
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(p))
        done.append(rel)
    return done


def _apply_edits(context: Path, edits: tuple[tuple[str, str], ...]) -> None:
    for rel, text in edits:
        p = context / rel
        p.chmod(0o644)
        p.write_text(text)


# ------------------------------------------------------------------------------------------------- run


class _OracleCache:
    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self._lock = threading.Lock()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> list[BuildOutcome] | None:
        if self.root is None:
            return None
        p = self.root / f"{key}.json"
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        with self._lock:
            self.hits += 1
        return [BuildOutcome.from_json(d) for d in data["builds"]]

    def put(self, key: str, case: str, outcomes: list[BuildOutcome]) -> None:
        if self.root is None:
            return
        tmp = self.root / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps({"case": case, "builds": [o.to_json() for o in outcomes]}))
        os.replace(tmp, self.root / f"{key}.json")


def _timed_case(
    name: str,
    cfg: RunConfig,
    ours_b: OursBuilder,
    theirs_b: BuildahBuilder | None,
    cache: _OracleCache,
    base_digest: str,
    http_lock: threading.Lock,
) -> Verdict:
    times: dict[str, float] = {}
    v = _run_case(name, cfg, ours_b, theirs_b, cache, base_digest, http_lock, times)
    return replace(v, ours_seconds=times.get("ours", 0.0), buildah_seconds=times.get("buildah", 0.0))


def _run_case(
    name: str,
    cfg: RunConfig,
    ours_b: OursBuilder,
    theirs_b: BuildahBuilder | None,
    cache: _OracleCache,
    base_digest: str,
    http_lock: threading.Lock,
    times: dict[str, float],
) -> Verdict:
    case_dir = cfg.cases_dir / name
    spec = CASES.get(name, CaseSpec())
    category = category_of(case_dir)
    if spec.skip:
        return Verdict(name, category, "skip", "-", "-", spec.skip)
    if not ours_b.supports_secret and any(b.secrets for b in spec.builds):
        return Verdict(name, category, "skip", "-", "-", "idpbuilder build has no --secret option")
    t0 = time.monotonic()
    needs_http = (case_dir / "serve.py").is_file()
    with contextlib.ExitStack() as stack:
        if needs_http:
            stack.enter_context(http_lock)
            try:
                stack.enter_context(serve(case_dir))
            except RuntimeError as e:
                return Verdict(name, category, "skip", "-", "-", f"untestable here: {e}")
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cfg.work_dir))
        if not cfg.keep:
            stack.callback(shutil.rmtree, tmp, True)
        context = case_dir / "context"
        repaired: list[str] = []
        if any(b.edits for b in spec.builds) or spec.symlinks or spec.sockets:
            context = _writable_copy(case_dir / "context", tmp / "context")
            repaired = repair_context(context, spec)
        key = hashlib.sha256(
            "\0".join(
                [ORACLE_SCHEMA, content_hash(case_dir), theirs_b.version if theirs_b else "", base_digest]
                + [spec.repair_key()]
                + [b.key() for b in spec.builds]
            ).encode()
        ).hexdigest()
        theirs: list[BuildOutcome] | None = None
        cached = False
        if theirs_b is not None:
            theirs = cache.get(key)
            cached = theirs is not None
            if theirs is None:
                theirs = []
                oracle_ctx = context
                if any(b.edits for b in spec.builds):
                    oracle_ctx = tmp / "oracle-context"
                    shutil.copytree(context, oracle_ctx, symlinks=True)
                    repair_context(oracle_ctx, spec)  # sockets are not copied
                with theirs_b.root() as root:
                    for i, b in enumerate(spec.builds):
                        _apply_edits(oracle_ctx, b.edits)
                        theirs.append(theirs_b.build(root, oracle_ctx, b, _image_ref(name, i), tmp))
                cache.put(key, name, theirs)
        ours: list[BuildOutcome] = []
        if cfg.self_check and theirs is not None:
            ours = theirs
            theirs = None
        elif ours_b.available:
            home = ours_b.new_home(tmp / "home")
            for i, b in enumerate(spec.builds):
                _apply_edits(context, b.edits)
                ours.append(ours_b.build(home, context, b, _image_ref(name, i), tmp))
    seconds = time.monotonic() - t0
    times["ours"] = sum(o.seconds for o in ours)
    times["buildah"] = sum(o.seconds for o in theirs or [])
    buildah_col = "-"
    if theirs is not None:
        good = all(
            (not o.ok) if b.fail is not None else o.ok for b, o in zip(spec.builds, theirs, strict=True)
        )
        buildah_col = ("ok" if good else "fail") + ("*" if cached else "")
    if not ours_b.available and not cfg.self_check:
        return Verdict(name, category, "fail", "fail", buildah_col, ours_b.unavailable_reason, seconds)
    reasons = [
        r
        for i, b in enumerate(spec.builds)
        if (r := _judge_build(b, spec, ours[i], theirs[i] if theirs is not None else None)) is not None
    ]
    ours_col = (
        "ok"
        if all((not o.ok) if b.fail is not None else o.ok for b, o in zip(spec.builds, ours, strict=True))
        else "fail"
    )
    if reasons and cfg.self_check and spec.buildah_differs:
        return Verdict(
            name, category, "skip", ours_col, buildah_col, "known: " + spec.buildah_differs, seconds
        )
    if reasons:
        return Verdict(name, category, "fail", ours_col, buildah_col, "; ".join(reasons), seconds)
    note = "; ".join(
        x
        for x in (
            spec.note,
            spec.buildah_differs and "buildah differs: " + spec.buildah_differs,
            repaired and "fixture repaired: " + ", ".join(repaired),
        )
        if x
    )
    return Verdict(name, category, "pass", ours_col, buildah_col, note, seconds)


def run_cases(cfg: RunConfig, *, progress: Callable[[Verdict], None] | None = None) -> Summary:
    """Run every (or ``cfg.only``) case with ``cfg.workers`` in parallel and judge each."""
    t0 = time.monotonic()
    names = discover_cases(cfg.cases_dir)
    if cfg.only:
        names = [n for n in names if n in cfg.only]
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    template = cfg.work_dir / "template-home"
    shutil.rmtree(template, ignore_errors=True)
    store = Store.open(template)
    base_digest = str(add_busybox_image(store).digest)
    store.close()
    ours_b = OursBuilder(cfg.idpbuilder, template)
    theirs_b = BuildahBuilder(cfg.work_dir, template / "store", cfg.workers) if cfg.use_oracle else None
    cache = _OracleCache(cfg.cache_dir)
    http_lock = threading.Lock()
    verdicts: dict[str, Verdict] = {}

    def one(name: str) -> None:
        try:
            v = _timed_case(name, cfg, ours_b, theirs_b, cache, base_digest, http_lock)
        except Exception as e:  # a runner problem: reported, never a crash of the whole run
            v = Verdict(name, category_of(cfg.cases_dir / name), "fail", "?", "?", f"runner error: {e!r}")
        verdicts[name] = v
        if progress is not None:
            progress(v)

    try:
        with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
            list(pool.map(one, names))
    finally:
        if theirs_b is not None and not cfg.keep:
            theirs_b.cleanup()
        if not cfg.keep:
            shutil.rmtree(template, ignore_errors=True)
    return Summary([verdicts[n] for n in names], time.monotonic() - t0, cache.hits)


def format_table(summary: Summary, *, width: int = 110) -> str:
    """The per-case table plus the totals line."""
    rows = [("case", "category", "ours", "buildah", "verdict", "reason")]
    for v in summary.verdicts:
        reason = v.reason if len(v.reason) <= width else v.reason[: width - 1] + "…"
        rows.append((v.case, v.category[:34], v.ours, v.buildah, v.status, reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5])) + "  " + r[5])
    lines.insert(1, "-" * (sum(widths) + 10 + 6))
    runnable = summary.passed + summary.failed
    ours_t = sum(v.ours_seconds for v in summary.verdicts)
    theirs_t = sum(v.buildah_seconds for v in summary.verdicts)
    lines.append("")
    lines.append(f"build time summed over cases: idpbuilder {ours_t:.0f}s, buildah {theirs_t:.0f}s")
    lines.append(
        f"{summary.line()}  (pass ratio {summary.passed}/{runnable} = {summary.pass_ratio:.0%}; "
        f"{summary.seconds:.0f}s wall; oracle cache hits {summary.oracle_cache_hits}; "
        "buildah column: * = from cache)"
    )
    return "\n".join(lines)


def report_json(summary: Summary) -> dict[str, Any]:
    """The run as JSON (for CI artifacts)."""
    return {
        "passed": summary.passed,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "seconds": round(summary.seconds, 1),
        "cases": [v.__dict__ for v in summary.verdicts],
    }
