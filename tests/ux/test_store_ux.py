"""``history``, ``inspect --format`` templates, ``images --filter``, ``--version``/``-V`` and ``completion``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cli import CliRunner, hermetic_env
from fixtures.images import make_busybox_store
from idpbuilder import __version__
from idpbuilder.image import commit_image
from idpbuilder.store.layout import Store
from store.imagekit import make_layer

LONG_RUN = "/bin/sh -c apk add --no-cache curl ca-certificates tzdata && rm -rf /var/cache/apk/*"


def _make(store: Store, ref: str | None, created: str, labels: dict[str, str] | None = None) -> str:
    layer = make_layer(store, {"app/x.txt": ref or "dangling"})
    config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
        "history": [
            {"created": created, "created_by": LONG_RUN},
            {
                "created": created,
                "created_by": "/bin/sh -c #(nop)  LABEL team=core",
                "empty_layer": True,
                "comment": "buildkit.dockerfile.v0",
            },
        ],
    }
    desc = commit_image(store, config, [layer])
    if ref is not None:
        store.set_ref(ref, desc)
    else:
        store.add_untagged(desc)
    return str(desc.digest)


@pytest.fixture
def home(idp_home: Path) -> Path:
    make_busybox_store(idp_home)  # created 2020
    store = Store.open(idp_home)
    try:
        _make(store, "example.com/team/old:v1", "2021-01-01T00:00:00Z", {"team": "core"})
        _make(store, "example.com/team/app:v1", "2023-06-01T00:00:00Z", {"team": "core", "tier": "web"})
        _make(store, "example.com/other/svc:v2", "2024-01-01T00:00:00Z", {"team": "edge"})
        _make(store, None, "2024-02-01T00:00:00Z")  # untagged
    finally:
        store.close()
    return idp_home


def _names(out: str) -> list[str]:
    return [":".join(re.split(r" {3,}", ln)[:2]) for ln in out.splitlines()[1:]]


# ---- history -------------------------------------------------------------------------------------------------
def test_history_table_like_docker(cli: CliRunner, home: Path) -> None:
    code, out, err = cli.main("history", "example.com/team/app:v1")
    assert code == 0, err
    lines = out.splitlines()
    assert re.split(r" {3,}", lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    top = re.split(r" {3,}", lines[1].rstrip())
    assert re.fullmatch(r"[0-9a-f]{12}", top[0]) and top[1].endswith("ago")
    assert (
        top[2] == "/bin/sh -c #(nop) LABEL team=core"
        and top[3] == "0B"
        and top[4] == "buildkit.dockerfile.v0"
    )
    second = re.split(r" {3,}", lines[2].rstrip())
    assert second[0] == "<missing>"
    assert second[2] == LONG_RUN[:44] + "…" and len(second[2]) == 45
    assert second[3].endswith("B") and second[3] != "0B"
    code, out, _ = cli.main("history", "--no-trunc", "example.com/team/app:v1")
    assert LONG_RUN in out and re.search(r"sha256:[0-9a-f]{64}", out)
    code, out, _ = cli.main("history", "-q", "example.com/team/app:v1")
    assert out.splitlines()[1:] == ["<missing>"] and re.fullmatch(r"[0-9a-f]{12}", out.splitlines()[0])


def test_history_json_and_not_found(cli: CliRunner, home: Path) -> None:
    code, out, _ = cli.main("history", "--format", "json", "example.com/team/app:v1")
    doc = json.loads(out)
    assert [d["CreatedBy"] for d in doc] == ["/bin/sh -c #(nop)  LABEL team=core", LONG_RUN]
    assert doc[0]["EmptyLayer"] is True and doc[0]["Size"] == 0 and doc[1]["Size"] > 0
    assert doc[0]["Tags"] == ["example.com/team/app:v1"] and doc[1]["ID"] == "<missing>"
    assert doc[1]["Layer"].startswith("sha256:")
    code, out, err = cli.main("history", "nope:v1")
    assert code == 2 and out == "" and err.splitlines()[-1].startswith("Hint: ")


# ---- inspect --format ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Os}}/{{.Architecture}}", "linux/amd64"),
        ("{{.Config.Env}}", "[PATH=/bin A=1]"),
        ("{{.RepoTags}}", "[example.com/team/app:v1]"),
        ("{{.Created}}", "2023-06-01T00:00:00Z"),
        ('{{index .Config.Labels "tier"}}', "web"),
        ('{{index .Config.Labels "missing"}}', ""),
        ("{{.Config.Labels}}", "map[team:core tier:web]"),
        ("{{json .Config.Cmd}}", '["sh"]'),
        ("{{.Config.Cmd | json}}", '["sh"]'),
        ('{{join .Config.Env ","}}', "PATH=/bin,A=1"),
        ("{{.Config.Entrypoint}}", "[]"),  # docker's zero value for a field the image does not set
        ("{{.Config.WorkingDir}}", ""),
        ("{{.RootFS.Type}} {{len}}", None),
        ("id={{.Id}}", "id=sha256:"),
        ("{{ .Os -}}  !", "linux!"),
    ],
)
def test_inspect_templates(cli: CliRunner, home: Path, template: str, expected: str | None) -> None:
    code, out, err = cli.main("inspect", "--format", template, "example.com/team/app:v1")
    if expected is None:
        assert code == 2 and "unsupported template action {{len}}" in err
        return
    assert code == 0, err
    assert out.startswith(expected) and out.endswith("\n")


def test_inspect_template_fields_match_json(cli: CliRunner, home: Path) -> None:
    doc = json.loads(cli.main("inspect", "example.com/team/app:v1").stdout)[0]
    code, out, _ = cli.main(
        "inspect", "-f", "{{json .Config}}|{{.RootFS.Layers}}|{{.Id}}", "example.com/team/app:v1"
    )
    cfg, layers, ident = out.rstrip("\n").split("|")
    assert json.loads(cfg) == doc["Config"]
    assert layers == "[" + " ".join(doc["RootFS"]["Layers"]) + "]"
    assert ident == doc["Id"]
    # one line per image
    code, out, _ = cli.main(
        "inspect", "-f", "{{.RepoTags}}", "example.com/team/app:v1", "example.com/team/old:v1"
    )
    assert out.splitlines() == ["[example.com/team/app:v1]", "[example.com/team/old:v1]"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Config.Nope}}", "--format: no field .Config.Nope (.Config has Cmd, Env, Labels)"),
        ("{{.Nope}}", "--format: no field .Nope"),
        ("{{.Config.Env", "--format: unclosed {{"),
        ("{{range .Config.Env}}{{.}}{{end}}", "unsupported template action {{range .Config.Env}}"),
        ("table", "--format 'table' is neither json nor a template"),
    ],
)
def test_inspect_bad_templates_are_one_line_and_a_hint(
    cli: CliRunner, home: Path, template: str, message: str
) -> None:
    code, out, err = cli.main("inspect", "--format", template, "example.com/team/app:v1")
    assert code == 2 and out == ""
    lines = err.rstrip("\n").splitlines()
    assert lines[-2].startswith("Error: ") and message in lines[-2] and lines[-1].startswith("Hint: "), err


# ---- images --filter -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["dangling=true"], ["<none>:<none>"]),
        (
            ["dangling=false"],
            [
                "example.com/other/svc:v2",
                "example.com/team/app:v1",
                "example.com/team/old:v1",
                "busybox:latest",
            ],
        ),
        (["reference=example.com/team/*"], ["example.com/team/app:v1", "example.com/team/old:v1"]),
        (["reference=busybox"], ["busybox:latest"]),
        (["reference=*:v2", "reference=busy*"], ["example.com/other/svc:v2", "busybox:latest"]),
        (["label=team"], ["example.com/other/svc:v2", "example.com/team/app:v1", "example.com/team/old:v1"]),
        (["label=team=core"], ["example.com/team/app:v1", "example.com/team/old:v1"]),
        (["label=team=core", "label=tier"], ["example.com/team/app:v1"]),
        (["before=example.com/team/app:v1"], ["example.com/team/old:v1", "busybox:latest"]),
        (["since=example.com/team/app:v1"], ["<none>:<none>", "example.com/other/svc:v2"]),
        (
            ["since=busybox", "before=example.com/other/svc:v2", "label=team"],
            ["example.com/team/app:v1", "example.com/team/old:v1"],
        ),
        (["dangling=false", "reference=example.com/*/svc"], ["example.com/other/svc:v2"]),
    ],
)
def test_images_filter(cli: CliRunner, home: Path, filters: list[str], expected: list[str]) -> None:
    args = [a for f in filters for a in ("--filter", f)]
    code, out, err = cli.main("images", *args)
    assert code == 0, err
    assert _names(out) == expected


def test_images_filter_errors(cli: CliRunner, home: Path) -> None:
    for bad, msg in [
        ("colour=red", "invalid filter 'colour'"),
        ("dangling", "bad format of filter 'dangling'"),
        ("dangling=maybe", "invalid filter 'dangling=maybe'"),
    ]:
        code, out, err = cli.main("images", "-f", bad)
        assert code == 2 and msg in err and err.splitlines()[-1].startswith("Hint: "), err
    code, out, err = cli.main("images", "-f", "before=nope:v1")
    assert code == 2 and "not in the local store" in err
    code, out, _ = cli.main("images", "-q", "-f", "label=tier")
    assert len(out.split()) == 1
    code, out, _ = cli.main("images", "--format", "json", "-f", "label=tier=web")
    assert [r["Labels"] for r in json.loads(out)] == [{"team": "core", "tier": "web"}]


# ---- --version, completion -----------------------------------------------------------------------------------
def test_version_flags(cli: CliRunner) -> None:
    for flag in ("--version", "-V"):
        code, out, _ = cli.main(flag)
        assert code == 0 and out == f"idpbuilder, version {__version__}\n"


def _complete(idp_home: Path, words: str, cword: int) -> list[str]:
    env = hermetic_env(
        idp_home,
        extra={"_IDPBUILDER_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)},
    )
    p = subprocess.run(
        [sys.executable, "-m", "idpbuilder"], capture_output=True, text=True, env=env, timeout=60
    )
    assert p.returncode == 0, p.stderr
    return [ln.split(",", 1)[1] for ln in p.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(cli: CliRunner, shell: str) -> None:
    code, out, err = cli.main("completion", shell)
    assert code == 0, err
    assert "_IDPBUILDER_COMPLETE" in out and f"{shell}_" in out


def test_completion_completes_commands_and_flags(idp_home: Path) -> None:
    assert _complete(idp_home, "idpbuilder hi", 1) == ["history"]
    assert set(_complete(idp_home, "idpbuilder lo", 1)) == {"load", "login", "logout"}
    assert "--no-trunc" in _complete(idp_home, "idpbuilder history --no", 2)
    assert _complete(idp_home, "idpbuilder completion f", 2) == ["fish"]


def test_bash_sources_the_script(cli: CliRunner, idp_home: Path) -> None:
    script = cli.main("completion", "bash").stdout
    p = subprocess.run(
        ["bash", "-c", script + "\ncomplete -p idpbuilder"],
        capture_output=True,
        text=True,
        timeout=30,
        env=hermetic_env(idp_home, extra={"PATH": os.environ["PATH"]}),
    )
    assert p.returncode == 0 and "_idpbuilder_completion" in p.stdout, p.stderr


def test_completion_completes_local_image_names(home: Path) -> None:
    assert _complete(home, "idpbuilder history example.com/team/", 2) == [
        "example.com/team/app:v1",
        "example.com/team/old:v1",
    ]
    assert _complete(home, "idpbuilder inspect busy", 2) == ["busybox:latest"]
