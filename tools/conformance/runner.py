"""Run the BuildKit Dockerfile conformance cases with idpbuilder and with an oracle (buildah), compare.

Per case: build every BuildSpec with ``idpbuilder --store HOME build`` and with the oracle, then compare
the image config fields and the flattened rootfs; expected-failure builds must fail in both (ours with a
one-line ``Error:`` message, no traceback). Where the oracle is known to differ from BuildKit a case's
``Expect`` (from EXPECT.md) is the judge instead. Oracle results are cached on disk, keyed by the case's
content hash, the build spec, the oracle's version and the base image digest.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from idpbuilder.errors import NotFoundError
from idpbuilder.store.layout import Store
from tools.conformance.baseimages import add_busybox_image
from tools.conformance.buildcmd import image_ref
from tools.conformance.cache import OracleCache, oracle_key
from tools.conformance.cases import CASES, category_of, with_oracle_differences
from tools.conformance.fixtures import apply_edits, content_hash, repair_context, writable_copy
from tools.conformance.httpserve import serve
from tools.conformance.judge import judge_build
from tools.conformance.model import BuildOutcome, CaseSpec, Verdict
from tools.conformance.oracles import ORACLES, Oracle
from tools.conformance.ours import OursBuilder

__all__ = ["RunConfig", "Summary", "discover_cases", "run_cases"]


@dataclass(frozen=True)
class RunConfig:
    """Settings of one conformance run."""

    cases_dir: Path
    work_dir: Path
    cache_dir: Path | None
    workers: int = 2
    idpbuilder: tuple[str, ...] = (sys.executable, "-m", "idpbuilder")
    only: tuple[str, ...] = ()
    oracle: str = "buildah"  # a key of ``oracles.ORACLES``
    use_oracle: bool = True
    keep: bool = False
    self_check: bool = False  # judge the oracle's own results against the EXPECT overrides (no idpbuilder)


@dataclass(frozen=True)
class Summary:
    """All verdicts plus the totals printed at the end."""

    verdicts: list[Verdict]
    seconds: float
    oracle_cache_hits: int
    oracle: str = "buildah"

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


@dataclass(frozen=True)
class _Run:
    """What every case of one run shares."""

    cfg: RunConfig
    cases: Mapping[str, CaseSpec]  # with the oracle's differences laid over
    oracle_name: str
    ours: OursBuilder
    oracle: Oracle | None  # None: --no-oracle
    cache: OracleCache
    base_digest: str
    http_lock: threading.Lock


def _oracle_outcomes(
    run: _Run, name: str, spec: CaseSpec, context: Path, tmp: Path, key: str
) -> tuple[list[BuildOutcome], bool]:
    """The oracle's outcome per build (from the cache when there), and whether it came from the cache."""
    assert run.oracle is not None
    cached = run.cache.get(key)
    if cached is not None:
        return cached, True
    outcomes: list[BuildOutcome] = []
    oracle_ctx = context
    if any(b.edits for b in spec.builds):
        oracle_ctx = tmp / "oracle-context"
        shutil.copytree(context, oracle_ctx, symlinks=True)
        repair_context(oracle_ctx, spec)  # sockets are not copied
    with run.oracle.workspace() as ws:
        for i, b in enumerate(spec.builds):
            apply_edits(oracle_ctx, b.edits)
            outcomes.append(run.oracle.build(ws, oracle_ctx, b, image_ref(name, i), tmp))
    run.cache.put(key, name, outcomes)
    return outcomes, False


def _all_as_expected(spec: CaseSpec, outcomes: list[BuildOutcome]) -> bool:
    return all((not o.ok) if b.fail is not None else o.ok for b, o in zip(spec.builds, outcomes, strict=True))


def _run_case(run: _Run, name: str) -> Verdict:
    cfg = run.cfg
    case_dir = cfg.cases_dir / name
    spec = run.cases.get(name, CaseSpec())
    category = category_of(case_dir)
    if spec.skip:
        return Verdict(name, category, "skip", "-", "-", spec.skip)
    if not run.ours.supports_secret and any(b.secrets for b in spec.builds):
        return Verdict(name, category, "skip", "-", "-", "idpbuilder build has no --secret option")
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if (case_dir / "serve.py").is_file():
            stack.enter_context(run.http_lock)
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
            context = writable_copy(case_dir / "context", tmp / "context")
            repaired = repair_context(context, spec)
        version = run.oracle.version if run.oracle else ""
        key = oracle_key(content_hash(case_dir), version, run.base_digest, spec)
        theirs: list[BuildOutcome] | None = None
        cached = False
        if run.oracle is not None:
            theirs, cached = _oracle_outcomes(run, name, spec, context, tmp, key)
        ours: list[BuildOutcome] = []
        if cfg.self_check and theirs is not None:
            ours = theirs
            theirs = None
        elif run.ours.available:
            home = run.ours.new_home(tmp / "home")
            for i, b in enumerate(spec.builds):
                apply_edits(context, b.edits)
                ours.append(run.ours.build(home, context, b, image_ref(name, i), tmp))
    seconds = time.monotonic() - t0
    times = {
        "ours_seconds": sum(o.seconds for o in ours),
        "oracle_seconds": sum(o.seconds for o in theirs or []),
    }
    oracle_col = "-"
    if theirs is not None:
        oracle_col = ("ok" if _all_as_expected(spec, theirs) else "fail") + ("*" if cached else "")

    def verdict(status: str, ours_col: str, reason: str) -> Verdict:
        return Verdict(
            name,
            category,
            status,
            ours_col,
            oracle_col,
            reason,
            seconds,
            ours_seconds=times["ours_seconds"],
            buildah_seconds=times["oracle_seconds"],
        )

    if not run.ours.available and not cfg.self_check:
        return verdict("fail", "fail", run.ours.unavailable_reason)
    oracle_outcomes: list[BuildOutcome | None] = list(theirs) if theirs is not None else [None] * len(ours)
    reasons = [
        r
        for b, o, t in zip(spec.builds, ours, oracle_outcomes, strict=True)
        if (r := judge_build(b, spec, o, t, oracle=run.oracle_name)) is not None
    ]
    ours_col = "ok" if _all_as_expected(spec, ours) else "fail"
    if reasons and cfg.self_check and spec.oracle_differs:
        return verdict("skip", ours_col, "known: " + spec.oracle_differs)
    if reasons:
        return verdict("fail", ours_col, "; ".join(reasons))
    note = "; ".join(
        x
        for x in (
            spec.note,
            spec.oracle_differs and f"{run.oracle_name} differs: " + spec.oracle_differs,
            repaired and "fixture repaired: " + ", ".join(repaired),
        )
        if x
    )
    return verdict("pass", ours_col, note)


def run_cases(cfg: RunConfig, *, progress: Callable[[Verdict], None] | None = None) -> Summary:
    """Run every (or ``cfg.only``) case with ``cfg.workers`` in parallel and judge each."""
    t0 = time.monotonic()
    kind = ORACLES[cfg.oracle]
    names = discover_cases(cfg.cases_dir)
    if cfg.only:
        names = [n for n in names if n in cfg.only]
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    template = cfg.work_dir / "template-home"
    shutil.rmtree(template, ignore_errors=True)
    store = Store.open(template)
    base_digest = str(add_busybox_image(store).digest)
    store.close()
    run = _Run(
        cfg=cfg,
        cases=with_oracle_differences(CASES, kind.differences),
        oracle_name=kind.name,
        ours=OursBuilder(cfg.idpbuilder, template),
        oracle=kind.make(cfg.work_dir, template / "store", cfg.workers) if cfg.use_oracle else None,
        cache=OracleCache(cfg.cache_dir),
        base_digest=base_digest,
        http_lock=threading.Lock(),
    )
    verdicts: dict[str, Verdict] = {}

    def one(name: str) -> None:
        try:
            v = _run_case(run, name)
        except Exception as e:  # a runner problem: reported, never a crash of the whole run
            v = Verdict(name, category_of(cfg.cases_dir / name), "fail", "?", "?", f"runner error: {e!r}")
        verdicts[name] = v
        if progress is not None:
            progress(v)

    try:
        with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
            list(pool.map(one, names))
    finally:
        if run.oracle is not None and not cfg.keep:
            run.oracle.cleanup()
        if not cfg.keep:
            shutil.rmtree(template, ignore_errors=True)
    return Summary([verdicts[n] for n in names], time.monotonic() - t0, run.cache.hits, kind.name)
