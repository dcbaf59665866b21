"""The .dockerignore matcher against moby/patternmatcher's own tables, ReadAll cases and file lookup rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpbuilder.dockerfile import IgnoreMatcher, read_ignore_file, read_ignore_text
from idpbuilder.errors import UsageError

FAIL, EXACT, INEXACT = "fail", "exact", "inexact"

# patternmatcher_test.go TestMatches: (pattern, path, expectation). "exact": matches the path itself;
# "inexact": matches only through a parent directory; "fail": no match at all.
MATCHES = [
    ("**", "file", EXACT),
    ("**", "file/", EXACT),
    ("**/", "file", EXACT),
    ("**/", "file/", EXACT),
    ("**", "/", EXACT),
    ("**/", "/", EXACT),
    ("**", "dir/file", EXACT),
    ("**/", "dir/file", EXACT),
    ("**", "dir/file/", EXACT),
    ("**/", "dir/file/", EXACT),
    ("**/**", "dir/file", EXACT),
    ("**/**", "dir/file/", EXACT),
    ("dir/**", "dir/file", EXACT),
    ("dir/**", "dir/file/", EXACT),
    ("dir/**", "dir/dir2/file", EXACT),
    ("dir/**", "dir/dir2/file/", EXACT),
    ("**/dir", "dir", EXACT),
    ("**/dir", "dir/file", INEXACT),
    ("**/dir2/*", "dir/dir2/file", EXACT),
    ("**/dir2/*", "dir/dir2/file/", INEXACT),
    ("**/dir2/**", "dir/dir2/dir3/file", EXACT),
    ("**/dir2/**", "dir/dir2/dir3/file/", EXACT),
    ("**file", "file", EXACT),
    ("**file", "dir/file", EXACT),
    ("**/file", "dir/file", EXACT),
    ("**file", "dir/dir/file", EXACT),
    ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL),
    ("**/*.txt", "file.txt", EXACT),
    ("**/**/*.txt", "file.txt", EXACT),
    ("a**/*.txt", "a/file.txt", EXACT),
    ("a**/*.txt", "a/dir/file.txt", EXACT),
    ("a**/*.txt", "a/dir/dir/file.txt", EXACT),
    ("a/*.txt", "a/dir/file.txt", FAIL),
    ("a/*.txt", "a/file.txt", EXACT),
    ("a/*.txt**", "a/file.txt", EXACT),
    ("a[b-d]e", "ae", FAIL),
    ("a[b-d]e", "ace", EXACT),
    ("a[b-d]e", "aae", FAIL),
    ("a[^b-d]e", "aze", EXACT),
    (".*", ".foo", EXACT),
    (".*", "foo", FAIL),
    ("abc.def", "abcdef", FAIL),
    ("abc.def", "abc.def", EXACT),
    ("abc.def", "abcZdef", FAIL),
    ("abc?def", "abcZdef", EXACT),
    ("abc?def", "abcdef", FAIL),
    ("**/foo/bar", "foo/bar", EXACT),
    ("**/foo/bar", "dir/foo/bar", EXACT),
    ("**/foo/bar", "dir/dir2/foo/bar", EXACT),
    ("abc/**", "abc", FAIL),
    ("abc/**", "abc/def", EXACT),
    ("abc/**", "abc/def/ghi", EXACT),
    ("**/.foo", ".foo", EXACT),
    ("**/.foo", "bar.foo", FAIL),
    ("a(b)c/def", "a(b)c/def", EXACT),
    ("a(b)c/def", "a(b)c/xyz", FAIL),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        EXACT,
    ),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT),
    ("a\\*b", "a*b", EXACT),
    # [!x] is Go syntax for a class of "!" and "x" (negation is [^x])
    ("a[!x]b", "a!b", EXACT),
    ("a[!x]b", "axb", EXACT),
    ("a[!x]b", "ayb", FAIL),
]

MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", FAIL),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", EXACT),
    (
        ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        FAIL,
    ),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", FAIL),
    # the single-case tests of patternmatcher_test.go
    (["*"], "fileutils.go", EXACT),
    (["*.go"], "fileutils.go", EXACT),
    (["!fileutils.go", "*.go"], "fileutils.go", EXACT),
    (["docs", "!docs/README.md"], "docs/README.md", FAIL),
    (["docs/", "!docs/README.md"], "docs/README.md", FAIL),
    (["docs/*", "!docs/README.md"], "docs/README.md", FAIL),
    (["*.go", "!fileutils.go"], "fileutils.go", FAIL),
    (["*.go"], ".", FAIL),
    ([], "/any/path/there", FAIL),
    # re-inclusion under an excluded parent, and exclusion again below it
    (["vendor", "!vendor/keep"], "vendor/keep/a.go", FAIL),
    (["vendor", "!vendor/keep"], "vendor/drop/a.go", EXACT),
    (["vendor", "!vendor/keep", "vendor/keep/*.tmp"], "vendor/keep/x.tmp", EXACT),
    (["**/*.md", "!README.md"], "README.md", FAIL),
    (["**/*.md", "!README.md"], "docs/README.md", EXACT),
]

# Go's filepath.Match table (patternmatcher_test.go matchTests): (pattern, path, match, is_error)
GO_MATCH = [
    ("abc", "abc", True, False),
    ("*", "abc", True, False),
    ("*c", "abc", True, False),
    ("a*", "a", True, False),
    ("a*", "abc", True, False),
    ("a*", "ab/c", True, False),
    ("a*/b", "abc/b", True, False),
    ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False),
    ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False),
    ("ab[b-d]", "abc", True, False),
    ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False),
    ("ab[^b-d]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False),
    ("a\\*b", "a*b", True, False),
    ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False),
    ("a[^a]b", "a☺b", True, False),
    ("a???b", "a☺b", False, False),
    ("a[^a][^a][^a]b", "a☺b", False, False),
    ("[a-ζ]*", "α", True, False),
    ("*[a-ζ]", "A", False, False),
    ("a?b", "a/b", False, False),
    ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False),
    ("[\\-]", "-", True, False),
    ("[x\\-]", "x", True, False),
    ("[x\\-]", "-", True, False),
    ("[x\\-]", "z", False, False),
    ("[\\-x]", "x", True, False),
    ("[\\-x]", "-", True, False),
    ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True),
    ("[-]", "-", False, True),
    ("[x-]", "x", False, True),
    ("[x-]", "-", False, True),
    ("[x-]", "z", False, True),
    ("[-x]", "x", False, True),
    ("[-x]", "-", False, True),
    ("[-x]", "a", False, True),
    ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True),
    ("[", "a", False, True),
    ("[^", "a", False, True),
    ("[^bc", "a", False, True),
    ("a[", "a", False, True),
    ("a[", "ab", False, True),
    ("*x", "xxx", True, False),
]


def _id(p: object, t: str) -> str:
    return f"{p}~{t}"


@pytest.mark.parametrize(("pattern", "path", "kind"), MATCHES, ids=[_id(p, t) for p, t, _ in MATCHES])
def test_single_pattern(pattern: str, path: str, kind: str) -> None:
    m = IgnoreMatcher([pattern])
    assert m.matches_exact(path) is (kind == EXACT)
    assert m.matches(path) is (kind != FAIL)
    # walking from the top with the parent's result gives the same answer
    parts = [p for p in path.strip("/").split("/") if p]
    parent = False
    for i in range(1, len(parts)):
        parent = m.matches_with_parents("/".join(parts[:i]), parent)
    if parts:
        assert m.matches_with_parents(path, parent) is (kind != FAIL)


@pytest.mark.parametrize(("patterns", "path", "kind"), MULTI, ids=[_id(p, t) for p, t, _ in MULTI])
def test_pattern_list(patterns: list[str], path: str, kind: str) -> None:
    m = IgnoreMatcher(patterns)
    assert m.matches(path) is (kind != FAIL)
    parts = path.split("/")
    parent = False
    for i in range(1, len(parts)):
        parent = m.matches_with_parents("/".join(parts[:i]), parent)
    assert m.matches_with_parents(path, parent) is (kind != FAIL)


@pytest.mark.parametrize(
    ("pattern", "path", "match", "error"), GO_MATCH, ids=[_id(p, s) for p, s, _, _ in GO_MATCH]
)
def test_go_filepath_match_table(pattern: str, path: str, match: bool, error: bool) -> None:
    if error:
        with pytest.raises(UsageError):
            IgnoreMatcher([pattern])
        return
    assert IgnoreMatcher([pattern]).matches(path) is match


@pytest.mark.parametrize("bad", ["!", "  !  ", "[Local-Only]/"])
def test_bad_patterns_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as ei:
        IgnoreMatcher(["ok", bad])
    assert "\n" not in ei.value.message


def test_blank_and_padded_patterns() -> None:
    m = IgnoreMatcher(["docs", "config", ""])
    assert len(m.patterns) == 2
    m = IgnoreMatcher(["docs", "  !docs/README.md  "])
    assert m.exclusions
    assert not m.matches("docs/README.md")
    assert m.matches("docs/other.md")


def test_read_all_like_buildkit() -> None:
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_ignore_text(content) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "!",
        "!",
    ]


def test_read_all_cleans_paths() -> None:
    text = "\ufeff./a/../b/\r\n  c//d  \n#comment\n !./e\n/\n"
    assert read_ignore_text(text) == ["b", "c/d", "!e", "/"]


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "docker").mkdir(parents=True)
    (ctx / ".dockerignore").write_text("from-context\n")
    dockerfile = ctx / "docker" / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert read_ignore_file(ctx, dockerfile) == ["from-context"]
    (ctx / "docker" / "app.Dockerfile.dockerignore").write_text("*.log\n!keep.log\n")
    assert read_ignore_file(ctx, dockerfile) == ["*.log", "!keep.log"]
    assert read_ignore_file(ctx, None) == ["from-context"]


def test_no_ignore_file(tmp_path: Path) -> None:
    assert read_ignore_file(tmp_path, tmp_path / "Dockerfile") == []


def test_ignore_file_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").mkdir()
    with pytest.raises(UsageError):
        read_ignore_file(tmp_path, None)


@pytest.mark.parametrize(
    ("patterns", "directory", "skippable"),
    [
        (["build"], "build", True),
        (["build"], "src", False),
        (["build", "!build/keep.txt"], "build", False),
        (["build", "!other/keep.txt"], "build", True),
        # Docker walks an excluded directory only when an exception's text starts with "dir/": one that
        # starts with a wildcard brings nothing back (checked against docker in tests/conformance)
        (["build", "!**/keep.txt"], "build", True),
        (["build", "!*/keep.txt"], "build", True),
        (["build", "!src/*/keep.txt"], "build", True),
        (["build/**", "!build/a/keep"], "build/b", True),
        (["build/**", "!build/a/keep"], "build/a", False),
        (["**/node_modules"], "web/node_modules", True),
        (["*", "!src"], "docs", True),
        (["*", "!src"], "src", False),
    ],
)
def test_excludes_dir_entirely(patterns: list[str], directory: str, skippable: bool) -> None:
    assert IgnoreMatcher(patterns).excludes_dir_entirely(directory) is skippable
