"""The progress display: plain lines and summary, rich bars, quiet, and the auto choice."""

from __future__ import annotations

import io

from idpbuilder.cli.progress import PlainReporter, QuietReporter, TTYReporter, human_bytes, make_reporter
from idpbuilder.digest import sha256_bytes

A = sha256_bytes(b"a")
B = sha256_bytes(b"b")
C = sha256_bytes(b"c")


def test_plain_lines_and_summary() -> None:
    out = io.StringIO()
    r = make_reporter("auto", verb="pushed", stream=out)  # a StringIO is not a TTY -> plain
    assert isinstance(r, PlainReporter)
    r.blob_start(A, 2_500_000, "layer 1")
    r.blob_progress(A, 1_000_000)
    r.blob_done(A, 2_500_000, "pushed")
    r.blob_done(B, 10, "exists")
    r.blob_done(C, 10, "mounted")
    r.note("pushing manifest x:1")
    r.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{A.hex[:12]}: pushing layer 1 (2.5 MB)"
    assert lines[1].startswith(f"{A.hex[:12]}: pushed 2.5 MB in ") and lines[1].endswith("/s)")
    assert lines[2] == f"{B.hex[:12]}: already present"
    assert lines[3] == f"{C.hex[:12]}: mounted"
    assert lines[4] == "pushing manifest x:1"
    assert lines[5].startswith("pushed 1 blob (2.5 MB) in ") and lines[5].endswith(
        "1 already present, 1 mounted"
    )


def test_tty_bars_and_quiet() -> None:
    out = io.StringIO()
    r = make_reporter("tty", verb="pulled", stream=out)
    assert isinstance(r, TTYReporter)
    r.blob_start(A, 3_000_000, "blob")
    r.blob_progress(A, 3_000_000)
    r.blob_done(A, 3_000_000, "pulled")
    r.blob_done(B, 5, "present")
    r.finish()
    text = out.getvalue()
    assert A.hex[:12] in text and "3.0" in text and "MB" in text
    assert "pulled 1 blob (3.0 MB)" in text and "1 already present" in text
    q = io.StringIO()
    r2 = make_reporter("quiet", stream=q)
    assert isinstance(r2, QuietReporter)
    r2.blob_done(A, 1, "pushed")
    r2.finish()
    assert q.getvalue() == ""


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 1_500_000, 2e9)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.5 MB",
        "2.0 GB",
    ]
