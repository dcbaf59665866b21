"""BuildKit parser fixtures: every testfiles case dumps exactly, every negative case fails, line numbers match."""

from __future__ import annotations

from pathlib import Path

import pytest

from idpbuilder.dockerfile import dump, parse, parse_dockerfile
from idpbuilder.errors import DockerfileParseError

from .conformance import (
    case_dockerfiles,
    conformance_root,
    extras,
    params,
    parser_cases,
    parser_negative_cases,
    resolve_stub,
)

_CASES = parser_cases()
_NEGATIVE = parser_negative_cases()


@pytest.mark.parametrize("case", params(_CASES, [p.name for p in _CASES]))
def test_parse_case_dump_matches_buildkit(case: Path) -> None:
    text = (case / "Dockerfile").read_bytes().decode("utf-8")
    expected = (case / "result").read_text(encoding="utf-8")
    assert dump(parse(text)) + "\n" == expected


@pytest.mark.parametrize("case", params(_NEGATIVE, [p.name for p in _NEGATIVE]))
def test_parse_negative_case_fails(case: Path) -> None:
    text = (case / "Dockerfile").read_bytes().decode("utf-8")
    with pytest.raises(DockerfileParseError) as ei:
        parse(text, filename=f"{case.name}/Dockerfile")
    assert ei.value.file == f"{case.name}/Dockerfile"
    assert "\n" not in str(ei.value)


def test_parse_line_numbers() -> None:
    path = extras() / "parser" / "testfile-line" / "Dockerfile"
    if not path.is_file():
        pytest.skip(f"conformance file {path} not found (set IDPBUILDER_CONFORMANCE)")
    result = parse(path.read_text(encoding="utf-8"))
    assert [(n.start_line, n.end_line) for n in result.nodes] == [(5, 5), (11, 12), (17, 31)]
    assert [n.keyword for n in result.nodes] == ["from", "env", "run"]


def test_case_count() -> None:
    if not _CASES:
        pytest.skip("conformance data not found")
    assert len(_CASES) == 33
    assert len(_NEGATIVE) == 4


# BuildKit build cases that must fail while parsing, with the substring BuildKit's error carries
_CASE_FAILURES = {
    "testDockerfileInvalidInstruction/context/Dockerfile": "unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)",
    "testEmptyStages/context/Dockerfile": "dockerfile contains no stages to build",
    "testMountFromError/context/Dockerfile": "'from' doesn't support variable expansion, define alias stage instead",
    "testMountInvalid/context/Dockerfile": "unknown flag: --mont (did you mean mount?)",
    "testMountInvalid/context/Dockerfile.tmp": 'unsupported mount type "tmp" (did you mean tmpfs?)',
    "testMountInvalid/context/Dockerfile.typ": "unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)",
}
_CASE_FILES = case_dockerfiles()


@pytest.mark.parametrize(
    "path", params(_CASE_FILES, [str(p.relative_to(conformance_root())) for p in _CASE_FILES])
)
def test_build_case_dockerfiles_parse(path: Path) -> None:
    rel = str(path.relative_to(conformance_root()))
    text = resolve_stub(path).read_bytes().decode("utf-8", "surrogateescape")
    expected_error = _CASE_FAILURES.get(rel)
    if expected_error is None:
        df = parse_dockerfile(text, filename=rel)
        assert df.stages
    else:
        with pytest.raises(DockerfileParseError) as ei:
            parse_dockerfile(text, filename=rel)
        assert expected_error in ei.value.message
