"""ShellLex beyond the conformance files: BuildKit's TestProcessWithMatches table, ${VAR?} errors, patterns."""

from __future__ import annotations

import pytest

from idpbuilder.dockerfile import ShellLex
from idpbuilder.errors import BuildError

# lex_test.go TestProcessWithMatches: (input, env, expected or None for an error, names found in env)
WITH_MATCHES: list[tuple[str, dict[str, str], str | None, set[str]]] = [
    ("x", {"DUMMY": "dummy"}, "x", set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set()),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc", {"FOO", "BAR"}),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None, set()),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None, set()),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None, set()),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None, set()),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None, set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
        {"FOO", "NEEDLE"},
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
        {"FOO", "NEEDLE"},
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
        {"FOO", "NEEDLE", "REPLACEMENT"},
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
        {"FOO", "NEEDLE", "REPLACEMENT"},
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}),
]


@pytest.mark.parametrize(
    ("word", "env", "expected", "matched"), WITH_MATCHES, ids=[w[0] for w in WITH_MATCHES]
)
def test_process_with_matches(
    word: str, env: dict[str, str], expected: str | None, matched: set[str]
) -> None:
    lex = ShellLex()
    if expected is None:
        with pytest.raises(BuildError):
            lex.process_word(word, env)
        return
    res = lex.expand(word, env)
    assert res.result == expected
    assert res.matched == matched


def test_mandatory_vars_messages() -> None:
    lex = ShellLex()
    no_empty = "${VAR:?message here$ARG}"
    no_unset = "${VAR?message here$ARG}"
    assert lex.process_word(no_empty, {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(BuildError, match="message herex"):
            lex.process_word(no_empty, env)
    assert lex.process_word(no_unset, {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(BuildError, match="VAR: message herex"):
        lex.process_word(no_unset, {"ARG": "x"})
    with pytest.raises(BuildError, match="FOO: is not allowed to be unset"):
        lex.process_word("${FOO?}", {})
    with pytest.raises(BuildError, match="FOO: custom error"):
        lex.process_word('${FOO:?"custom error"}', {})


def test_error_is_one_line_with_hint() -> None:
    with pytest.raises(BuildError) as ei:
        ShellLex().process_word("he${PWD", {"PWD": "/"})
    assert ei.value.message == "failed to process \"he${PWD\": syntax error: missing '}'"
    assert ei.value.hint


def test_release_filename_pattern() -> None:
    release = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz"
    lex = ShellLex()
    env = {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"}
    assert lex.process_word(release, env) == "something-v1.2.3.linux-arm-v7.tar.gz"
    env["TARGETARCH"] = "arm64"
    env["TARGETVARIANT"] = ""
    assert lex.process_word(release, env) == "something-v1.2.3.linux-arm64.tar.gz"
    del env["TARGETVARIANT"]
    assert lex.process_word(release, env) == "something-v1.2.3.linux-arm64.tar.gz"


def test_backtick_escape() -> None:
    lex = ShellLex("`")
    assert lex.process_word("C:\\path\\to `$HOME", {"HOME": "x"}) == "C:\\path\\to $HOME"
    assert lex.process_words('a` b "c`"d"', {}) == ["a b", 'c"d']


def test_used_vars_include_unset_names() -> None:
    lex = ShellLex()
    assert lex.used_vars("$A ${B:-x} ${C+y} '$D' \\$E", {"A": "1"}) == {"A", "B", "C"}


def test_words_keep_quoted_empty_out() -> None:
    lex = ShellLex()
    assert lex.process_words('a "" b', {}) == ["a", "b"]
    assert lex.process_words("x${EMPTY}y z", {"EMPTY": ""}) == ["xy", "z"]
    assert lex.process_words("${V:-a b}c", {}) == ["a", "bc"]


def test_raw_modes_used_for_heredoc_detection() -> None:
    lex = ShellLex()
    lex.raw_quotes = True
    lex.skip_unset_env = True
    assert lex.process_words("a '$X' \"$Y\" $Z ${W:-d}", {}) == ["a", "'$X'", '"$Y"', "$Z", "${W:-d}"]


@pytest.mark.parametrize("bad", ["${a/\\x/b}", "${a#\\x}", "${a:#x}", "${a:%x}", "${a:/x/y}"])
def test_bad_substitution_patterns(bad: str) -> None:
    with pytest.raises(BuildError):
        ShellLex().process_word(bad, {"a": "[x"})


def test_invalid_escape_token() -> None:
    with pytest.raises(ValueError):
        ShellLex("x")
