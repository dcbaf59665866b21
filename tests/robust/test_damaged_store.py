"""Issue #11 items 2 and 3: damaged blobs are found, named and repaired; a malformed index.json fails every
command with one line (and is never rewritten), before any download."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy
from fixtures.registry import RegistryInfo
from idpbuilder.digest import Digest
from idpbuilder.store.layout import Store

SRC = "example.com/robust/app:v1"


def _layers(home: Path, ref: str = SRC) -> list[Path]:
    store = Store.open(home)
    try:
        man = store.read_json(store.resolve(ref).digest)
        return [store.blob_path(Digest.parse(x["digest"])) for x in man["layers"]]
    finally:
        store.close()


def _flip(path: Path, at: int = 100) -> None:
    """Damage a blob without changing its size."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _intact(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def _one_error(err: str) -> tuple[str, str]:
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [ln[7:] for ln in err.splitlines() if ln.startswith("Error: ")]
    hints = [ln[6:] for ln in err.splitlines() if ln.startswith("Hint: ")]
    assert len(errors) == 1 and len(hints) == 1, err
    return errors[0], hints[0]


@pytest.fixture
def pushed(cli: CliRunner, idp_home: Path, registry_plain: RegistryInfo) -> str:
    make_image(idp_home, SRC, [300_000, 200_000])
    dest = registry_plain.ref(f"{unique('damaged')}/app:v1")
    cli("push", SRC, dest).check()
    cli("tag", SRC, dest).check()
    return dest


@pytest.mark.parametrize("damage", ["same-size", "truncated"])
def test_pull_replaces_a_damaged_blob(cli: CliRunner, idp_home: Path, pushed: str, damage: str) -> None:
    layer = _layers(idp_home)[0]
    if damage == "same-size":
        _flip(layer)
    else:
        layer.chmod(0o644)
        layer.write_bytes(layer.read_bytes()[:1000])
    code, out, err = cli("pull", "--progress", "plain", pushed)
    assert code == 0, err
    assert (
        f"stored blob sha256:{layer.name} of {pushed.split('/', 1)[0]}" in err and "fetching it again" in err
    )
    assert _intact(layer)
    # and a second pull finds everything intact
    code, _, err = cli("pull", pushed)
    assert code == 0 and "damaged" not in err, err


def test_a_build_on_a_damaged_layer_names_the_image_and_blob(
    cli: CliRunner, idp_home: Path, tmp_path: Path
) -> None:
    make_image(idp_home, SRC, [300_000])
    layer = _layers(idp_home)[0]
    _flip(layer)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {SRC}\nRUN true\n")
    code, _, err = cli("build", "-t", "on-damaged:1", str(ctx))
    assert code == 1, err
    error, hint = _one_error(err)
    assert f"stored layer sha256:{layer.name} of {SRC} is damaged" in error, error
    assert f"idpbuilder pull {SRC}" in hint and "prune --verify" in hint, hint


def test_push_of_a_damaged_blob_names_the_image(
    cli: CliRunner, idp_home: Path, registry_plain: RegistryInfo
) -> None:
    make_image(idp_home, SRC, [300_000])
    _flip(_layers(idp_home)[0])
    code, _, err = cli("push", SRC, registry_plain.ref(f"{unique('dmgpush')}/app:v1"))
    assert code == 1, err
    error, hint = _one_error(err)
    assert "the local copy is damaged" in error and f"layer 1 of {SRC} (local store)" in error, error
    assert "pull or build the image again" in hint, hint


def test_prune_verify_finds_removes_and_names(cli: CliRunner, idp_home: Path, pushed: str) -> None:
    code, out, err = cli("prune", "--verify")
    assert code == 0 and "Verified blobs: 4" in out, out + err  # config, manifest, 2 layers
    layer = _layers(idp_home)[1]
    _flip(layer, at=10)
    code, out, err = cli("prune", "--verify")
    assert code == 1
    assert f"Damaged blob removed: sha256:{layer.name}" in out, out
    error, hint = _one_error(err)
    assert SRC in error and pushed in error and "pull or build" in hint, err
    assert not layer.exists()
    cli("pull", pushed).check()
    assert _intact(layer)
    code, out, err = cli("prune", "--verify")
    assert code == 0, out + err


BAD_INDEXES = {
    "manifests-number": ('{"schemaVersion": 2, "manifests": 5}', '"manifests" is a number, not a list'),
    "no-digest": (
        '{"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 3}]}',
        "manifests[0] has no digest",
    ),
    "list": ("[1, 2]", "it is a list, not a JSON object"),
    "truncated": ('{"manifests": [', "not valid JSON"),
    "bad-digest": ('{"manifests": [{"digest": "md5:abc", "size": 1}]}', "manifests[0] has an invalid digest"),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_a_malformed_index_fails_every_command_and_is_left_alone(
    cli: CliRunner, idp_home: Path, fault_proxy: FaultProxy, tmp_path: Path, case: str
) -> None:
    make_image(idp_home, SRC, [1000])
    index = idp_home / "store" / "index.json"
    text, problem = BAD_INDEXES[case]
    index.write_text(text)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    remote = fault_proxy.registry.ref("some/image:v1")
    commands = [
        ["images"],
        ["pull", remote],
        ["push", SRC, remote],
        ["build", "-t", "x:1", str(ctx)],
        ["tag", SRC, "y:1"],
        ["rmi", SRC],
        ["inspect", SRC],
        ["prune"],
    ]
    for argv in commands:
        code, _, err = cli.main(*argv)
        assert code == 1, (argv, err)
        error, hint = _one_error(err)
        assert f"the store index {index} is damaged: {problem}" in error, (argv, error)
        assert "restore it" in hint and "move it aside" in hint, hint
        assert index.read_text() == text, argv
    assert fault_proxy.stats.requests == 0  # failed before talking to the registry, let alone downloading


def test_index_entry_details_are_validated() -> None:
    from idpbuilder.store.verify import index_problem

    ok = {"digest": "sha256:" + "0" * 64, "size": 1, "mediaType": "x"}
    assert index_problem({"manifests": [ok]}) is None
    assert index_problem({}) is None
    assert index_problem({"manifests": [{**ok, "size": -1}]}) == "manifests[0] has no valid size"
    assert index_problem({"manifests": [{**ok, "size": True}]}) == "manifests[0] has no valid size"
    assert index_problem({"manifests": [{**ok, "annotations": {"a": 1}}]}) is not None
    assert index_problem({"manifests": [ok, "x"]}) == "manifests[1] is a string, not an object"
    assert json.loads(json.dumps(ok))  # the valid entry round-trips


def test_a_store_that_is_a_file_says_so(cli: CliRunner, idp_home: Path) -> None:
    (idp_home / "store").write_text("not a directory")
    code, _, err = cli.main("images")
    assert code == 1
    error, hint = _one_error(err)
    assert "is not a directory" in error and "--store" in hint and "damaged" not in hint, err
