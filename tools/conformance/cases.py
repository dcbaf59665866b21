"""Per-case build options and expectations for the BuildKit cases (read from each case's EXPECT.md).

A case missing from CASES is one default build (no -f, context = ./context) that must succeed and
match the oracle. Entries say which builds to run, which must fail, and what EXPECT.md asserts (an
``Expect``, checked on our image). The table is oracle-independent: where an oracle is known to differ
from BuildKit, its own table (e.g. ``oracles.buildah.DIFFERENCES``) is laid over this one with
``with_oracle_differences``, and those builds are judged by their ``Expect`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from tools.conformance import checks
from tools.conformance.model import BuildSpec, CaseSpec, Expect

__all__ = ["CASES", "Differences", "category_of", "with_oracle_differences"]

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


CASES: dict[str, CaseSpec] = {
    "testCopyChown": CaseSpec(builds=(BuildSpec(build_args=("group=nobody",)),)),
    "testCopyChownCreateDest": CaseSpec(builds=(BuildSpec(build_args=("group=user",)),)),
    "testDockerfileAddChownExpand": CaseSpec(builds=(BuildSpec(build_args=("group=nobody",)),)),
    "testAddURLChmod": CaseSpec(
        builds=(
            BuildSpec(build_args=("mode=400",), expect=Expect(files={"dest": "0644\n0755\n0413\n0400\n"})),
        )
    ),
    "testCopyChownExistingDir": CaseSpec(
        builds=(BuildSpec(label="default"), BuildSpec(label="--target copy_from", target="copy_from")),
        symlinks=(("Dockerfile", "Dockerfile.web"),),
    ),
    "testSymlinkedDockerfile": CaseSpec(symlinks=(("Dockerfile", "Dockerfile.web"),)),
    "testCopyFollowAllSymlinks": CaseSpec(symlinks=(("foo/sub", "../bar"),)),
    "testCopySymlinks": CaseSpec(
        symlinks=(("foo", "bar"), ("sub/l0", "subfile"), ("sub/l1", "second"), ("sub/second", "baz")),
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "foo": "bar-contents",
                        "alllinks/l0": "subfile-contents",
                        "alllinks/lfile": "lfile-contents",
                        "alllinks/l1": "baz-contents",
                    }
                )
            ),
        ),
    ),
    "testCopySocket": CaseSpec(
        sockets=("socket.sock",), builds=(BuildSpec(expect=Expect(types={"socket.sock": "file"})),)
    ),
    "testCopyChmod": CaseSpec(
        builds=(
            BuildSpec(
                build_args=("mode=755",),
                expect=Expect(
                    files={
                        "fooperm": "0644\n",
                        "barperm": "0777\n",
                        "foobisperm": "0000\n",
                        "parentperm": "0777\n",
                        "subparentperm": "0770\n",
                        "footerperm": "0755\n",
                    }
                ),
            ),
        )
    ),
    "testTargetStageNameArg": CaseSpec(
        builds=(
            BuildSpec(
                label="--target foo",
                target="foo",
                expect=Expect(files={"first": "value:", "second": "value:foo"}),
            ),
            BuildSpec(label="default", expect=Expect(files={"first": "value:", "second": "value:default"})),
            BuildSpec(
                label="Dockerfile.final",
                dockerfile="Dockerfile.final",
                expect=Expect(files={"first": "value:", "second": "value:final"}),
            ),
        )
    ),
    "testDockerfileAddChownArchive": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(files={"out/foo": "content0"}, owners={"out/foo": "100:200", "out": "100:200"})
            ),
        )
    ),
    "testWorkdirCreatesDir": CaseSpec(builds=(BuildSpec(expect=Expect(types={"foo": "dir"})),)),
    "testMountRWCache": CaseSpec(
        builds=(BuildSpec(expect=Expect(types={"unique": "file"})),),
        ignore_paths=("unique",),
        note="/unique is random by design (compared for existence only)",
    ),
    "testEmptyStringArgInEnv": CaseSpec(
        builds=(BuildSpec(expect=Expect(custom=checks.env_txt)),),
        ignore_paths=("env.txt",),
        note="env.txt holds the sandbox environment (HOSTNAME etc. differ): checked for BAR= / no FOO=",
    ),
    "testDockerfileLowercase": CaseSpec(
        builds=(BuildSpec(oracle_dockerfile="dockerfile"),),
        note="buildah is given -f dockerfile: it only discovers Containerfile/Dockerfile",
    ),
    "testOnBuildInheritedStageRun": CaseSpec(
        builds=(BuildSpec(oracle_args=("--format", "docker"), expect=Expect(files={"bar": "11"})),),
        note="buildah runs with --format docker (it drops ONBUILD in OCI format)",
    ),
    "testOnBuildInheritedStageWithFrom": CaseSpec(
        builds=(BuildSpec(oracle_args=("--format", "docker"), expect=Expect(files={"bar": "12"})),),
        note="buildah runs with --format docker (it drops ONBUILD in OCI format)",
    ),
    "testRunBasicHeredoc": CaseSpec(builds=(BuildSpec(expect=Expect(files={"dest": "i am\nroot\n"})),)),
    "testRunFakeHeredoc": CaseSpec(builds=(BuildSpec(expect=Expect(files={"dest": "foo\n"})),)),
    "testRunShebangHeredoc": CaseSpec(
        builds=(BuildSpec(expect=Expect(files={"out1": "hello\nworld\n", "out2": "hello\nworld\n"})),)
    ),
    "testRunComplexHeredoc": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "out1": "hello world\n",
                        "out2": "HELLO WORLD\n",
                        "fd3": "hello world\n",
                        "fd4": "HELLO WORLD\n",
                    }
                )
            ),
        )
    ),
    "testHeredocIndent": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "foo-copy": "\tfoo\n",
                        "foo-run": "\n\tfoo\n",
                        "foo2-run": "\n\tfoo\n",
                        "foo3-run": "\n\tfoo\n",
                        "bar-copy": "bar\n",
                        "bar-run": "\nbar\n",
                        "bar2-run": "\nbar\n",
                        "bar3-run": "\nbar\n",
                    }
                )
            ),
        )
    ),
    "testHeredocVarSubstitution": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "c1": "Hello world!\n",
                        "c2": "Hello ${name}!\n",
                        "c3": "Hello ${name}!\n",
                        "q1": "Hello 'world'!\n",
                        "q2": 'Hello "world"!\n',
                        "qsingle1": "Hello '${name}'!\n",
                        "qsingle2": 'Hello "${name}"!\n',
                        "qdouble1": "Hello '${name}'!\n",
                        "qdouble2": 'Hello "${name}"!\n',
                        "r1": "Hello world!\n",
                        "r2": "Hello new world!\n",
                    }
                )
            ),
        )
    ),
    "testCopyHeredoc": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "single": "single file\n",
                        "double/EOF": "first file\n",
                        "double/EOF2": "second file\n",
                        "perms": "0777\n0644\nuser:user\n",
                    }
                )
            ),
        )
    ),
    "testCopyHeredocSpecialSymbols": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "quotefile": '"quotes in file"\n',
                        "slashfile1": "\n",
                        "slashfile2": "\\\n",
                        "slashfile3": "$\n",
                        "rawslashfile1": "\\\n",
                        "rawslashfile2": "\\\\\n",
                        "rawslashfile3": "\\$\n",
                    }
                )
            ),
        )
    ),
    "testCopyParents": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    files={
                        "foo1/foo2/bar": "testing",
                        "test/foo1/foo2/bar": "testing",
                        "test/foo1/foo2/baz": "testing2",
                    }
                )
            ),
        )
    ),
    "testExcludedFilesOnCopy": CaseSpec(
        builds=(BuildSpec(expect=Expect(custom=checks.excluded_files)),),
        symlinks=(("dir4/file-402.txt", "file-401.txt"), ("dir4/file-403.txt", "file-404.txt")),
    ),
    "testCopyThroughSymlinkContext": CaseSpec(
        builds=(BuildSpec(expect=Expect(files={"foo": "contents"})),), symlinks=(("link", "sub"),)
    ),
    "testPlatformArgsImplicit": CaseSpec(
        builds=(BuildSpec(expect=Expect(files={"bar": "d0", "bar2": "d1"})),)
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
                label="Dockerfile.masked",
                dockerfile="Dockerfile.masked",
                expect=Expect(contains={"go": "foo"}),
            ),
        )
    ),
    "testMultiStageCaseInsensitive": CaseSpec(
        builds=(BuildSpec(target="Stage1", expect=Expect(contains={"baz": "foo-contents"}, absent=("bax",))),)
    ),
    "testOutOfOrderStage": CaseSpec(
        builds=(
            _fail(
                "Dockerfile",
                "Dockerfile",
                "cannot copy from stage",
                "needs to be defined before current stage",
            ),
            _fail(
                "Dockerfile.d2",
                "Dockerfile.d2",
                "cannot copy from stage",
                "needs to be defined before current stage",
            ),
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
            BuildSpec(
                label="no args", expect=Expect(files={"out": "my_arg=def_val my_arg=def_val my_arg=d"})
            ),
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
        builds=(
            BuildSpec(labels=("bar=baz",), expect=Expect(config={"Labels": {"foo": "bar", "bar": "baz"}})),
        )
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
    "testDockerfileScratchConfig": CaseSpec(builds=(BuildSpec(expect=Expect(custom=checks.scratch_config)),)),
    "testExportedHistory": CaseSpec(
        builds=(
            BuildSpec(
                expect=Expect(
                    custom=checks.history(
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
                    custom=checks.history(
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
        builds=(
            _fail("default", None, "'from' doesn't support variable expansion, define alias stage instead"),
        )
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
    "testSecretRequiredWithoutValue": CaseSpec(
        builds=(_fail("default", None, "secret mysecret: not found"),)
    ),
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
            BuildSpec(
                label="Dockerfile.gz", dockerfile="Dockerfile.gz", expect=Expect(files={"foo": "content0"})
            ),
            BuildSpec(
                label="Dockerfile.unpack-false",
                dockerfile="Dockerfile.unpack-false",
                expect=Expect(absent=("foo",), types={"t.tar.gz": "file"}),
            ),
            BuildSpec(
                label="Dockerfile.copy",
                dockerfile="Dockerfile.copy",
                expect=Expect(types={"t.tar.gz": "file"}),
            ),
            BuildSpec(
                label="Dockerfile.url", dockerfile="Dockerfile.url", expect=Expect(types={"t.tar.gz": "file"})
            ),
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
            BuildSpec(
                label="Dockerfile", dockerfile="Dockerfile", expect=Expect(files={"dest/foo": "content1"})
            ),
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
            BuildSpec(
                label="valid", dockerfile="Dockerfile.valid", expect=Expect(files={"tmp/foo": "content1"})
            ),
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
                expect=Expect(custom=checks.last_layer(("wd/.wh.d0", "wd/.wh.d1"), ("wd/d1/.wh.bar",))),
            ),
        )
    ),
    "whiteout-parent-dir-ADAPTED": CaseSpec(
        builds=(BuildSpec(expect=Expect(custom=checks.last_layer(("wd/foo/.wh.bar", "wd/foo/"), ()))),)
    ),
    "testSymlinkDestination": CaseSpec(
        builds=(BuildSpec(expect=Expect(files={"tmp/symlink-target/foo": "content0"})),)
    ),
}


# An oracle's known differences from BuildKit: case -> (how it differs, labels of the affected builds;
# empty = all builds; ("-",) = none: the builds stay compared with the oracle and only the self-check
# marks the EXPECT difference as known). Each oracle module holds its own table.
Differences = Mapping[str, tuple[str, tuple[str, ...]]]


def with_oracle_differences(cases: Mapping[str, CaseSpec], differs: Differences) -> dict[str, CaseSpec]:
    """``cases`` where the oracle differs from BuildKit: those builds are judged by their ``Expect`` only."""
    out = dict(cases)
    for name, (why, labels) in differs.items():
        spec = out.get(name, CaseSpec())
        builds = tuple(
            replace(b, oracle=False) if not labels or b.label in labels else b for b in spec.builds
        )
        out[name] = replace(spec, builds=builds, oracle_differs=why)
    return out
