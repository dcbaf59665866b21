"""Per-case build options and overrides for the BuildKit cases (read from each case's EXPECT.md).

A case missing from CASES is one default build (no -f, context = ./context) that must succeed and
match buildah. Entries say which builds to run, which must fail, and — where buildah is known to differ
from BuildKit — ``oracle=False`` plus an ``Expect`` encoding the EXPECT.md assertion, with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from idpbuilder.conformance.flatten import FlatImage
from idpbuilder.conformance.model import BuildSpec, CaseSpec, Expect

__all__ = ["CASES", "RUNTIME_ARTIFACTS", "category_of"]

# paths a RUN sandbox may leave behind as empty mount points/files; ignored when only one builder has them
RUNTIME_ARTIFACTS = frozenset(
    {
        "dev",
        "proc",
        "sys",
        "run",
        "run/secrets",
        "run/.containerenv",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    }
)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def category_of(case_dir: Path) -> str:
    """The category line of a case's EXPECT.md."""
    try:
        m = re.search(r"^- Category: (.+)$", (case_dir / "EXPECT.md").read_text(), re.M)
    except OSError:
        return "?"
    return m.group(1).strip() if m else "?"


def _fail(label: str, dockerfile: str | None, *msgs: str, **kw: Any) -> BuildSpec:
    return BuildSpec(label=label, dockerfile=dockerfile, fail=msgs, **kw)


def _history(*want: tuple[str, bool]) -> Any:
    """A custom check: the history entries after the base image's two, in order (substring, empty_layer)."""

    def check(raw: dict[str, Any], image: FlatImage) -> list[str]:
        hist = raw.get("history") or []
        got = hist[2:]
        if len(got) != len(want):
            return [f"history has {len(got)} entries after the base, want {len(want)}"]
        problems = []
        for i, ((sub, empty), h) in enumerate(zip(want, got, strict=True)):
            if sub not in h.get("created_by", ""):
                problems.append(f"history[{i + 2}] created_by {h.get('created_by')!r} lacks {sub!r}")
            if bool(h.get("empty_layer")) != empty:
                problems.append(f"history[{i + 2}] empty_layer {h.get('empty_layer')!r}, want {empty}")
            if not h.get("created"):
                problems.append(f"history[{i + 2}] has no created time")
        return problems

    return check


def _scratch_config(raw: dict[str, Any], image: FlatImage) -> list[str]:
    problems = []
    if not raw.get("os") or not raw.get("architecture"):
        problems.append("os/architecture empty")
    cfg = raw.get("config") or {}
    if not cfg.get("WorkingDir"):
        problems.append("WorkingDir empty")
    rootfs = raw.get("rootfs") or {}
    if rootfs.get("type") != "layers" or rootfs.get("diff_ids"):
        problems.append(f"rootfs {rootfs!r}, want layers with no diff_ids")
    hist = raw.get("history") or []
    if len(hist) != 1 or "ENV foo=bar" not in hist[0].get("created_by", "") or not hist[0].get("empty_layer"):
        problems.append(f"history {hist!r}, want one empty_layer ENV foo=bar entry")
    env = cfg.get("Env") or []
    if "foo=bar" not in env or not any(e.startswith("PATH=") for e in env):
        problems.append(f"Env {env!r} lacks foo=bar or PATH")
    return problems


def _last_layer(present: tuple[str, ...], missing: tuple[str, ...]) -> Any:
    def check(raw: dict[str, Any], image: FlatImage) -> list[str]:
        last = set(image.layer_members[-1]) if image.layer_members else set()
        out = [f"last layer lacks {p}" for p in present if p not in last]
        out += [f"last layer has {p}" for p in missing if p in last]
        return out

    return check


CASES: dict[str, CaseSpec] = {
    "testCopyChown": CaseSpec(builds=(BuildSpec(build_args=("group=nobody",)),)),
    "testCopyChownCreateDest": CaseSpec(builds=(BuildSpec(build_args=("group=user",)),)),
    "testDockerfileAddChownExpand": CaseSpec(builds=(BuildSpec(build_args=("group=nobody",)),)),
    "testCopyChmod": CaseSpec(builds=(BuildSpec(build_args=("mode=755",)),)),
    "testAddURLChmod": CaseSpec(
        builds=(BuildSpec(build_args=("mode=400",), expect=Expect(files={"dest": "0644\n0755\n0413\n0400\n"})),)
    ),
    "testCopyChownExistingDir": CaseSpec(
        builds=(BuildSpec(label="default"), BuildSpec(label="--target copy_from", target="copy_from"))
    ),
    "testCopyInvalidChmod": CaseSpec(
        builds=(
            _fail("Dockerfile", "Dockerfile", "invalid chmod parameter: '64a'"),
            _fail("Dockerfile.10000", "Dockerfile.10000", "invalid chmod parameter: '10000'"),
        )
    ),
    "testAddInvalidChmod": CaseSpec(
        builds=(
            _fail("Dockerfile", "Dockerfile", "invalid chmod parameter: '64a'"),
            _fail("Dockerfile.10000", "Dockerfile.10000", "invalid chmod parameter: '10000'"),
        )
    ),
    "testMultiStageImplicitFrom": CaseSpec(
        builds=(
            BuildSpec(label="Dockerfile", dockerfile="Dockerfile", expect=Expect(contains={"test": "root"})),
            BuildSpec(
                label="Dockerfile.masked", dockerfile="Dockerfile.masked", expect=Expect(contains={"go": "foo"})
            ),
        )
    ),
    "testMultiStageCaseInsensitive": CaseSpec(
        builds=(BuildSpec(target="Stage1", expect=Expect(contains={"baz": "foo-contents"}, absent=("bax",))),)
    ),
    "testOutOfOrderStage": CaseSpec(
        builds=(
            _fail("Dockerfile", "Dockerfile", "cannot copy from stage", "needs to be defined before current stage"),
            _fail("Dockerfile.d2", "Dockerfile.d2", "cannot copy from stage", "needs to be defined before current stage"),
        )
    ),
    "testEmptyStages": CaseSpec(builds=(_fail("default", None, "dockerfile contains no stages to build"),)),
    "testDockerfileCopyFromArgs": CaseSpec(
        builds=(_fail("default", None, "variable expansion is not supported for --from"),)
    ),
    "testTargetMistype": CaseSpec(
        builds=(_fail("--target bulid", None, 'target stage "bulid" could not be found', target="bulid"),)
    ),
    "testDockerignoreInvalid": CaseSpec(builds=(_fail("default", None),)),
    "testDockerignoreOverride": CaseSpec(
        builds=(
            BuildSpec(label="Dockerfile", dockerfile="Dockerfile"),
            BuildSpec(label="Dockerfile2", dockerfile="Dockerfile2"),
        )
    ),
    "testInvalidJSONCommands": CaseSpec(
        builds=(
            _fail("Dockerfile", "Dockerfile", "this is invalid"),
            BuildSpec(
                label="Dockerfile.entrypoint",
                dockerfile="Dockerfile.entrypoint",
                expect=Expect(config={"Entrypoint": ["/bin/sh", "-c", "[]random string"]}),
            ),
        )
    ),
    "testDockerfileInvalidInstruction": CaseSpec(
        builds=(_fail("default", None, "unknown instruction: FNTRYPOINT", "did you mean ENTRYPOINT?"),)
    ),
    "testDockerfileInvalidCommand": CaseSpec(
        builds=(_fail("default", None, "/bin/sh -c invalidcmd", "did not complete successfully"),)
    ),
    "testGlobalArg": CaseSpec(builds=(BuildSpec(build_args=("tag=latest",)),)),
    "testGlobalArgErrors": CaseSpec(
        builds=(
            _fail("no args", None, "FOO: custom error"),
            BuildSpec(label="FOO=bar", build_args=("FOO=bar",)),
        )
    ),
    "testArgDefaultExpansion": CaseSpec(
        builds=(
            _fail("no args", None, "FOO: foo missing"),
            BuildSpec(label="FOO=123", build_args=("FOO=123",)),
            BuildSpec(label="BAR=123", build_args=("BAR=123",)),
        )
    ),
    "testDefaultEnvWithArgs": CaseSpec(
        builds=(
            BuildSpec(label="no args", expect=Expect(files={"out": "my_arg=def_val my_arg=def_val my_arg=d"})),
            BuildSpec(
                label="my_arg=",
                build_args=("my_arg=",),
                expect=Expect(files={"out": "my_arg=def_val my_arg=def_val my_arg=d"}),
            ),
            BuildSpec(
                label="my_arg=override",
                build_args=("my_arg=override",),
                expect=Expect(files={"out": "my_arg=override my_arg=override my_arg=ov"}),
            ),
        )
    ),
    "testTargetStageNameArg": CaseSpec(
        builds=(
            BuildSpec(label="--target foo", target="foo"),
            BuildSpec(label="default"),
            BuildSpec(label="Dockerfile.final", dockerfile="Dockerfile.final"),
        )
    ),
    "testBuiltinArgs": CaseSpec(
        builds=(
            BuildSpec(
                build_args=("FOO=foocontents", "http_proxy=hpvalue", "NO_PROXY=npvalue"),
                expect=Expect(files={"out": "hpvalue::npvalue::foocontents::::bazcontent"}),
            ),
        )
    ),
    "testPlatformArgsExplicit": CaseSpec(
        builds=(
            BuildSpec(
                platform="darwin/ppc64le",
                build_args=("TARGETOS=freebsd",),
                expect=Expect(files={"platform": "darwin/ppc64le", "os": "freebsd"}),
            ),
        )
    ),
    "testDefaultShellAndPath": CaseSpec(
        builds=(
            BuildSpec(
                platform="linux/amd64",
                expect=Expect(
                    config={"Entrypoint": ["/bin/sh", "-c", "foo bar"], "Env": [DEFAULT_PATH]},
                ),
            ),
        )
    ),
    "testLabels": CaseSpec(
        builds=(BuildSpec(labels=("bar=baz",), expect=Expect(config={"Labels": {"foo": "bar", "bar": "baz"}})),)
    ),
    "testExposeExpansion": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(config={"ExposedPorts": {"3000/tcp": {}, "4000/udp": {}, "5000/tcp": {}}}),
            ),
        )
    ),
    "testCmdShell": CaseSpec(
        builds=(BuildSpec(expect=Expect(config={"Cmd": None, "Entrypoint": ["ls", "my entrypoint"]})),)
    ),
    "testDockerfileScratchConfig": CaseSpec(builds=(BuildSpec(expect=Expect(custom=_scratch_config)),)),
    "testExportedHistory": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    custom=_history(
                        ("lbl=val", True),
                        ("COPY foo2 foo3", False),
                        ("WORKDIR /", True),
                        ("echo bar > foo4", False),
                        ("RUN ls", False),
                        ("EXPOSE [1234/udp 2375/tcp 5000/tcp]", True),
                    )
                )
            ),
        )
    ),
    "testExportedHistoryFlattenArgs": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    custom=_history(
                        ("ARG foo=bar", True),
                        ("ARG bar=123", True),
                        ("ARG foo=bar2", True),
                        ("RUN |2 foo=bar2 bar=123 ", False),
                    )
                )
            ),
        )
    ),
    "testMountFromError": CaseSpec(
        builds=(_fail("default", None, "'from' doesn't support variable expansion, define alias stage instead"),)
    ),
    "testMountInvalid": CaseSpec(
        builds=(
            _fail("Dockerfile", "Dockerfile", "unknown flag: --mont", "did you mean mount?"),
            _fail("Dockerfile.typ", "Dockerfile.typ", "unexpected key 'typ'", "did you mean type?"),
            _fail("Dockerfile.tmp", "Dockerfile.tmp", 'unsupported mount type "tmp"', "did you mean tmpfs?"),
        )
    ),
    "testMountDuplicate": CaseSpec(
        builds=(
            BuildSpec(label="first", expect=Expect(files={"combined.txt": "foo\nbar\n"})),
            BuildSpec(
                label="after a.txt edit",
                edits=(("a.txt", "updated\n"),),
                expect=Expect(files={"combined.txt": "updated\nbar\n"}),
            ),
        )
    ),
    "testSecretFileParams": CaseSpec(builds=(BuildSpec(secrets=(("mysecret", "pw"),)),)),
    "testSecretAsEnviron": CaseSpec(builds=(BuildSpec(secrets=(("mysecret", "pw"),)),)),
    "testSecretRequiredWithoutValue": CaseSpec(builds=(_fail("default", None, "secret mysecret: not found"),)),
    "testCopyRelativeParents": CaseSpec(
        builds=tuple(
            BuildSpec(label=f"--target {t}", target=t)
            for t in ("middle", "end", "start", "double", "wildcard", "doublewildcard", "doubleinputs")
        )
    ),
    "testCopyParentsMissingDirectory": CaseSpec(
        builds=tuple(
            _fail(f"--target {t}", None, '"/test/nonexistent-file": not found', target=t)
            if t == "nonexistentfile"
            else BuildSpec(label=f"--target {t}", target=t)
            for t in ("normal", "withpivot", "nonexistentfile", "wildcard-nonexistent", "wildcard-afterpivot")
        )
    ),
    "testDockerfileAddArchive": CaseSpec(
        builds=(
            BuildSpec(label="Dockerfile", dockerfile="Dockerfile", expect=Expect(files={"foo": "content0"})),
            BuildSpec(label="Dockerfile.gz", dockerfile="Dockerfile.gz", expect=Expect(files={"foo": "content0"})),
            BuildSpec(
                label="Dockerfile.unpack-false",
                dockerfile="Dockerfile.unpack-false",
                expect=Expect(absent=("foo",), types={"t.tar.gz": "file"}),
            ),
            BuildSpec(label="Dockerfile.copy", dockerfile="Dockerfile.copy", expect=Expect(types={"t.tar.gz": "file"})),
            BuildSpec(label="Dockerfile.url", dockerfile="Dockerfile.url", expect=Expect(types={"t.tar.gz": "file"})),
            BuildSpec(
                label="Dockerfile.url-unpack",
                dockerfile="Dockerfile.url-unpack",
                expect=Expect(files={"dest/foo": "content0"}),
            ),
            BuildSpec(
                label="Dockerfile.url-rename",
                dockerfile="Dockerfile.url-rename",
                expect=Expect(types={"newname.tar.gz": "file"}),
            ),
        )
    ),
    "testDockerfileADDFromURL": CaseSpec(
        builds=(
            BuildSpec(label="Dockerfile", dockerfile="Dockerfile", expect=Expect(files={"dest/foo": "content1"})),
            BuildSpec(
                label="Dockerfile.noname",
                dockerfile="Dockerfile.noname",
                expect=Expect(files={"dest/__unnamed__": "content2"}),
            ),
        ),
        note="HEAD/conditional-request and User-Agent checks are BuildKit-specific (not checked)",
    ),
    "testAddChecksum": CaseSpec(
        builds=(
            BuildSpec(label="valid", dockerfile="Dockerfile.valid", expect=Expect(files={"tmp/foo": "content1"})),
            BuildSpec(
                label="digest-from-env",
                dockerfile="Dockerfile.digest-from-env",
                expect=Expect(files={"tmp/foo": "content1"}),
            ),
            _fail("mismatch", "Dockerfile.mismatch", "digest mismatch"),
            _fail("md5", "Dockerfile.md5", "unsupported digest algorithm"),
            _fail("unknown-algo", "Dockerfile.unknown-algo"),
            _fail("no-algo", "Dockerfile.no-algo", "invalid checksum digest format"),
            _fail("local-source", "Dockerfile.local-source", "checksum requires HTTP(S) or Git sources"),
        )
    ),
    "whiteout-duplicate-ADAPTED": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(custom=_last_layer(("wd/.wh.d0", "wd/.wh.d1"), ("wd/d1/.wh.bar",))),
            ),
        )
    ),
    "whiteout-parent-dir-ADAPTED": CaseSpec(
        builds=(BuildSpec(expect=Expect(custom=_last_layer(("wd/foo/.wh.bar", "wd/foo/"), ()))),)
    ),
    "testCopySocket": CaseSpec(builds=(BuildSpec(expect=Expect(types={"socket.sock": "file"})),)),
    "testSymlinkDestination": CaseSpec(
        builds=(BuildSpec(expect=Expect(files={"tmp/symlink-target/foo": "content0"})),)
    ),
}
