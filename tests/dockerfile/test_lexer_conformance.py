"""BuildKit shell-lexer tables: envVarTest (A and U rows) through process_word, wordsTest through process_words."""

from __future__ import annotations

import pytest

from idpbuilder.dockerfile import ShellLex
from idpbuilder.errors import BuildError

from .conformance import ENV_VAR_ENV, EnvVarRow, WordsRow, env_var_rows, params, words_rows

_ENV_ROWS = env_var_rows()
_WORDS_ROWS = words_rows()


@pytest.mark.parametrize("row", params(_ENV_ROWS, [f"L{r.lineno}" for r in _ENV_ROWS]))
def test_env_var_row(row: EnvVarRow) -> None:
    lex = ShellLex("\\")
    if row.expected == "error":
        with pytest.raises(BuildError):
            lex.process_word(row.source, ENV_VAR_ENV)
    else:
        assert lex.process_word(row.source, ENV_VAR_ENV) == row.expected


@pytest.mark.parametrize("row", params(_WORDS_ROWS, [f"L{r.lineno}" for r in _WORDS_ROWS]))
def test_words_row(row: WordsRow) -> None:
    # lex_test.go's second pass (RawQuotes+SkipUnsetEnv) reuses an exhausted scanner and never runs a row, so
    # only the normal mode carries these expectations.
    lex = ShellLex("\\")
    try:
        got = lex.process_words(row.source, dict(row.env))
    except BuildError:
        got = ["error"]
    assert tuple(got) == row.expected


def test_row_counts() -> None:
    if not _ENV_ROWS:
        pytest.skip("conformance data not found")
    assert len(_ENV_ROWS) == 228
    assert len(_WORDS_ROWS) == 24
