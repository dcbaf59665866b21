"""The run's output: the per-case table with totals, and the JSON report."""

from __future__ import annotations

from typing import Any

from tools.conformance.runner import Summary

__all__ = ["format_table", "report_json"]


def format_table(summary: Summary, *, width: int = 110) -> str:
    """The per-case table plus the totals line."""
    oracle = summary.oracle
    rows = [("case", "category", "ours", oracle, "verdict", "reason")]
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
    lines.append(f"build time summed over cases: idpbuilder {ours_t:.0f}s, {oracle} {theirs_t:.0f}s")
    lines.append(
        f"{summary.line()}  (pass ratio {summary.passed}/{runnable} = {summary.pass_ratio:.0%}; "
        f"{summary.seconds:.0f}s wall; oracle cache hits {summary.oracle_cache_hits}; "
        f"{oracle} column: * = from cache)"
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
