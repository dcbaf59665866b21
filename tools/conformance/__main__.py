"""``python -m tools.conformance CASES_DIR`` (from the repository root): run the BuildKit cases, print the table and totals."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tools.conformance.model import Verdict
from tools.conformance.report import format_table, report_json
from tools.conformance.runner import RunConfig, run_cases


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/idpbuilder/conformance-oracle`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "idpbuilder" / "conformance-oracle"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print; exit 0 when no case failed (1 otherwise, 2 on bad usage)."""
    ap = argparse.ArgumentParser(prog="python -m tools.conformance", description=__doc__)
    ap.add_argument("cases_dir", type=Path, help="the buildkit cases folder (with CASES.md)")
    ap.add_argument("-j", "--workers", type=int, default=2, help="parallel cases (default 2)")
    ap.add_argument("-k", "--case", action="append", default=[], help="run only this case (repeatable)")
    ap.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="oracle cache directory")
    ap.add_argument("--no-cache", action="store_true", help="ignore and do not write the oracle cache")
    ap.add_argument(
        "--no-oracle", action="store_true", help="do not run buildah; judge by EXPECT overrides only"
    )
    ap.add_argument("--self-check", action="store_true", help="judge buildah itself against the overrides")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-case progress lines")
    args = ap.parse_args(argv)
    if not args.cases_dir.is_dir():
        ap.error(f"{args.cases_dir} is not a directory")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="idpbuilder-conformance-", dir="/var/tmp"))
    cfg = RunConfig(
        cases_dir=args.cases_dir.resolve(),
        work_dir=work.resolve(),
        cache_dir=None if args.no_cache else args.cache_dir,
        workers=args.workers,
        only=tuple(args.case),
        use_oracle=not args.no_oracle,
        keep=args.keep,
        self_check=args.self_check,
    )

    def progress(v: Verdict) -> None:
        if not args.quiet:
            print(f"{v.status:4}  {v.case}  ({v.seconds:.1f}s) {v.reason[:150]}", file=sys.stderr, flush=True)

    summary = run_cases(cfg, progress=progress)
    print(format_table(summary))
    if args.json:
        args.json.write_text(json.dumps(report_json(summary), indent=1))
    if not args.keep and args.work_dir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
