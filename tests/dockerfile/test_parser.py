"""Parser behaviour beyond the fixtures: heredocs (parser_heredoc_test.go), directives, flags, errors, warnings."""

from __future__ import annotations

import pytest

from idpbuilder.dockerfile import Heredoc, dump, parse, parse_heredoc
from idpbuilder.errors import DockerfileParseError

HEREDOC_FILE = """
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<X <<Y /dest
Y
X
X
Y
\t"""

# expected heredocs per node after FROM; the parser strips tabs itself for <<- (chomp)
HEREDOC_EXPECT: list[tuple[Heredoc, ...]] = [
    (),  # ENV
    (),  # RUN ls
    (),  # USER <<INVALID
    (),  # INVALID (an unknown instruction on its own line)
    (Heredoc("EMPTY", "", True, False),),
    (Heredoc("EMPTY2", "", True, False, fd=3),),
    (),  # RUN "<<NOHEREDOC"
    (Heredoc("INDENT", "\tfoo\n\tbar\n", True, False),),
    (Heredoc("UNINDENT", "baz\nquux\n", True, True),),
    (Heredoc("UNINDENT2", "baz\nquux\n", True, True),),
    (Heredoc("EXPAND", "expand $NAME\n", True, True),),
    (Heredoc("NOEXPAND", "don't expand $NAME\n", False, True),),
    (Heredoc("COPY", "echo hello world\necho foo bar\n", True, False),),
    (
        Heredoc(
            "COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n", True, False
        ),
    ),
    (Heredoc("MOUNT", "echo hello\n", True, False),),
    (Heredoc("FILE1", "content 1\n", True, False), Heredoc("FILE2", "content 2\n", True, False)),
    (Heredoc("X", "Y\n", True, False), Heredoc("Y", "X\n", True, False)),
]


def test_heredocs_extracted() -> None:
    result = parse(HEREDOC_FILE)
    nodes = result.nodes[1:]
    assert len(nodes) == len(HEREDOC_EXPECT)
    for node, expected in zip(nodes, HEREDOC_EXPECT, strict=True):
        assert node.heredocs == expected, node.original


def test_heredoc_line_numbers_and_args() -> None:
    result = parse("FROM a\nRUN <<EOF\necho 1\necho 2\nEOF\nRUN true\n")
    run, after = result.nodes[1], result.nodes[2]
    assert (run.start_line, run.end_line) == (2, 5)
    assert run.args == ("<<EOF",) and not run.json
    assert (after.start_line, after.end_line) == (6, 6)


def test_json_forms_have_no_heredocs() -> None:
    result = parse('FROM alpine:3.6\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n')
    assert all(n.heredocs == () for n in result.nodes)
    assert result.nodes[2].args == ("<<EOF",) and result.nodes[2].json


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileParseError, match="unterminated heredoc") as ei:
        parse("FROM a\n\nRUN <<EOF\necho hi\n", filename="df")
    assert ei.value.line == 3 and ei.value.file == "df"


def test_onbuild_heredoc() -> None:
    node = parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n").nodes[1]
    assert node.keyword == "onbuild" and node.sub is not None
    assert node.heredocs == (Heredoc("EOF", "echo hi\n", True, False),)
    assert dump(parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")) == '(from "a")\n(onbuild (run "<<EOF"))'


@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"'])
def test_parse_heredoc_valid(word: str) -> None:
    h = parse_heredoc(word)
    assert h is not None and h.name == "EOF"
    assert h.chomp is ("-" in word)
    assert h.expand is ("'" not in word and '"' not in word)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"])
def test_parse_heredoc_not_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_parse_heredoc_invalid(word: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - internal syntax error, surfaced by parse() with a line
        parse_heredoc(word)
    # inside a whole line the unbalanced quote makes BuildKit see no heredoc at all (shell form, no body)
    result = parse(f"FROM a\nRUN {word}\nEOF\n")
    assert result.nodes[1].heredocs == () and result.nodes[1].args == (word,)


def test_partially_quoted_delimiter_disables_expansion() -> None:
    node = parse('FROM a\nCOPY <<E"O"F /x\n$HOME\nEOF\n').nodes[1]
    assert node.heredocs == (Heredoc("EOF", "$HOME\n", False, False),)


def test_escape_directive_variants() -> None:
    assert parse("# escape=`\nFROM a\n").escape == "`"
    assert parse("#ESCAPE = \\\nFROM a\n").escape == "\\"
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n").directives == (
        ("syntax", "docker/dockerfile:1"),
        ("escape", "`"),
    )
    # a directive after an instruction or a plain comment is a comment
    assert parse("FROM a\n# escape=`\nRUN x \\\n y\n").escape == "\\"
    assert parse("# hello\n# escape=`\nFROM a\n").escape == "\\"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# escape=x\nFROM a\n", "invalid escape token"),
        ("# escape=`\n# escape=`\nFROM a\n", "only one escape parser directive"),
        ("# syntax=a\n# syntax=b\nFROM a\n", "only one syntax parser directive"),
        ("FROM a\nLABEL x\n", "LABEL must have two arguments"),
        ("FROM a\nENV a=b c\n", 'can\'t find = in "c"'),
        ('FROM a\nCMD ["a", 1]\n', "arrays must be comprised of strings only"),
        ("FROM a\nRUN [null]\n", "arrays must be comprised of strings only"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileParseError, match=message.replace("[", "\\[")):
        parse(text)


def test_error_names_file_and_line() -> None:
    with pytest.raises(DockerfileParseError) as ei:
        parse("FROM a\n\nENV \\\n  NOVALUE\n", filename="sub/Dockerfile")
    assert ei.value.file == "sub/Dockerfile"
    assert ei.value.line == 3
    assert str(ei.value).startswith("sub/Dockerfile:3: ")


def test_bom_crlf_and_missing_final_newline() -> None:
    result = parse("\ufeffFROM a\r\nRUN echo \\\r\n  hi\r\nCMD x")
    assert dump(result) == '(from "a")\n(run "echo   hi")\n(cmd "x")'
    assert [(n.start_line, n.end_line) for n in result.nodes] == [(1, 1), (2, 3), (4, 4)]


def test_empty_continuation_warning() -> None:
    text = (
        "FROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n"
    )
    text += "RUN non-indented \\\n# this is a comment\n   after-comment\n"
    result = parse(text)
    assert len(result.warnings) == 2
    assert "RUN something     following     more" in result.warnings[0]
    assert "RUN another     thing" in result.warnings[1]
    assert dump(result).splitlines()[-1] == '(run "non-indented    after-comment")'


def test_flags_and_quoting() -> None:
    node = parse("FROM a\nCOPY --chown=\"a b\" --from='x' --link -- --notaflag /d\n").nodes[1]
    assert node.flags == ("--chown=a b", "--from=x", "--link")
    assert node.args == ("--notaflag", "/d")


def test_keyword_case_and_unknown_instruction_node() -> None:
    result = parse("from a\nRun echo\nFOO bar baz\n")
    assert [n.keyword for n in result.nodes] == ["from", "run", "foo"]
    assert dump(result) == '(from "a")\n(run "echo")\n(foo "")'


def test_json_with_trailing_text_is_shell_form() -> None:
    # BuildKit testInvalidJSONCommands: `ENTRYPOINT []random string` is shell form
    node = parse('FROM a\nCMD ["a", "b"] trailing\n').nodes[1]
    assert not node.json and node.args == ('["a", "b"] trailing',)
    node = parse("FROM a\nENTRYPOINT []random string\n").nodes[1]
    assert not node.json and node.args == ("[]random string",)
    node = parse('FROM a\nCMD ["a", "b"]  \n').nodes[1]
    assert node.json and node.args == ("a", "b")
    node = parse("FROM a\nCMD [NaN]\n").nodes[1]
    assert not node.json and node.args == ("[NaN]",)


def test_healthcheck_and_env_forms() -> None:
    result = parse('FROM a\nHEALTHCHECK --retries=3 CMD ["x", "y"]\nENV a b c\nENV a=1 b="2 3"\n')
    hc, env1, env2 = result.nodes[1:]
    assert hc.args == ("CMD", "x", "y") and hc.json and hc.flags == ("--retries=3",)
    assert env1.args == ("a", "b c") and env1.separators == ("",)
    assert env2.args == ("a", "1", "b", '"2 3"') and env2.separators == ("=", "=")


def test_comments_attached_to_nodes() -> None:
    result = parse("# top\n\n# about FROM\nFROM a\n# about ARG\nARG X=1\n")
    # as in BuildKit, blank lines do not reset the comment block; an instruction does
    assert result.nodes[0].comments == ("top", "about FROM")
    assert result.nodes[1].comments == ("about ARG",)
