"""Typed instructions: fields, flag validation, mounts, stages and the errors BuildKit raises."""

from __future__ import annotations

import pytest

from idpbuilder.dockerfile import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    ShellLex,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_chmod,
    parse_dockerfile,
    parse_duration,
    parse_mount,
    suggest,
)
from idpbuilder.dockerfile.instructions import Instruction
from idpbuilder.errors import BuildError, DockerfileParseError


def one(line: str) -> Instruction:
    df = parse_dockerfile(f"FROM scratch\n{line}\n")
    assert len(df.stages[0].commands) == 1
    return df.stages[0].commands[0]


def test_stages_and_meta_args() -> None:
    df = parse_dockerfile(
        "ARG BASE=alpine\nARG TAG\nFROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS Builder\nRUN make\n"
        "FROM scratch\nCOPY --from=builder /out /\n",
        filename="x/Dockerfile",
    )
    assert [a.items for a in df.meta_args] == [(("BASE", "alpine"),), (("TAG", None),)]
    b, final = df.stages
    assert (b.name, b.base, b.platform, b.index) == ("builder", "${BASE}:${TAG}", "$BUILDPLATFORM", 0)
    assert (final.name, final.base, final.index) == (None, "scratch", 1)
    assert isinstance(b.commands[0], Run) and b.commands[0].line == 4
    assert df.find_stage("BUILDER") is b and df.find_stage("1") is final and df.find_stage("nope") is None
    assert df.filename == "x/Dockerfile"
    assert b.from_.expand(ShellLex(), {"BASE": "alpine", "TAG": "3", "BUILDPLATFORM": "linux/amd64"}) == From(
        node=b.node, image="alpine:3", name="builder", platform="linux/amd64"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('ENV a=1 b="x y" c', None),
        ('ENV a=1 b="x y"', ("env", (("a", "1"), ("b", '"x y"')))),
        ("ENV PATH /usr/bin:$PATH", ("env", (("PATH", "/usr/bin:$PATH"),))),
        ("LABEL a=b 'c d'=e", ("label", (("a", "b"), ("'c d'", "e")))),
    ],
)
def test_env_label(line: str, expected: tuple[str, tuple[tuple[str, str], ...]] | None) -> None:
    if expected is None:
        with pytest.raises(DockerfileParseError, match="can't find ="):
            one(line)
        return
    ins = one(line)
    assert isinstance(ins, Env | Label)
    assert ins.keyword == expected[0] and ins.pairs == expected[1]


def test_simple_instructions() -> None:
    assert one("WORKDIR /a b") == Workdir(node=one("WORKDIR /a b").node, path="/a b")
    assert isinstance(u := one("USER app:app"), User) and u.user == "app:app"
    assert isinstance(e := one("EXPOSE 80/tcp 443 8080"), Expose) and e.ports == ("443", "80/tcp", "8080")
    assert isinstance(v := one('VOLUME ["/a", "/b"]'), Volume) and v.paths == ("/a", "/b")
    assert isinstance(v := one("VOLUME /a /b"), Volume) and v.paths == ("/a", "/b")
    assert isinstance(s := one('SHELL ["/bin/bash", "-c"]'), Shell) and s.argv == ("/bin/bash", "-c")
    assert isinstance(sig := one("STOPSIGNAL SIGKILL"), StopSignal) and sig.signal == "SIGKILL"
    assert isinstance(m := one("MAINTAINER me <me@x>"), Maintainer) and m.name == "me <me@x>"
    assert isinstance(c := one('CMD ["a", "b"]'), Cmd) and c.args == ("a", "b") and c.json
    assert isinstance(c := one("CMD echo $HOME"), Cmd) and c.args == ("echo $HOME",) and not c.json
    assert isinstance(ep := one("ENTRYPOINT []"), Entrypoint) and ep.args == () and ep.json
    assert isinstance(a := one('ARG --required A B="x y" C='), Arg)
    assert a.items == (("A", None), ("B", '"x y"'), ("C", "")) and a.required


def test_expand_methods() -> None:
    lex = ShellLex()
    env = {"A": "1", "D": "/data", "U": "app"}
    e = one('ENV x=$A y="${A}2" $A=z')
    assert isinstance(e, Env) and e.expand(lex, env).pairs == (("x", "1"), ("y", "12"), ("1", "z"))
    w = one("WORKDIR $D/sub")
    assert isinstance(w, Workdir) and w.expand(lex, env).path == "/data/sub"
    u = one("USER ${U}:${G:-app}")
    assert isinstance(u, User) and u.expand(lex, env).user == "app:app"
    ex = one('EXPOSE $P "9000/udp"')
    assert isinstance(ex, Expose) and ex.expand(lex, {"P": "80 81"}).ports == ("9000/udp", "80", "81")
    c = one("COPY --chown=$U --chmod=${M:-644} --exclude=*.$A ${D}/a b $D/")
    assert isinstance(c, Copy)
    cx = c.expand(lex, env)
    assert (cx.sources, cx.dest, cx.chown, cx.chmod, cx.exclude) == (
        ("/data/a", "b"),
        "/data/",
        "app",
        "644",
        ("*.1",),
    )
    ad = one("ADD --checksum=sha256:$A http://x/y /z")
    assert isinstance(ad, Add) and ad.expand(lex, env).checksum == "sha256:1"
    assert one("RUN echo $A").expand(lex, env) == one("RUN echo $A")  # RUN is expanded by the shell
    v = one("VOLUME $EMPTY")
    assert isinstance(v, Volume)
    with pytest.raises(BuildError, match="can not be an empty string"):
        v.expand(lex, {})


def test_copy_add_flags() -> None:
    c = one(
        "COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md --exclude=x a b /dst/"
    )
    assert isinstance(c, Copy) and not isinstance(c, Add)
    assert (c.from_, c.chown, c.chmod, c.link, c.parents, c.exclude) == (
        "build",
        "1:2",
        "0755",
        True,
        True,
        ("*.md", "x"),
    )
    assert (c.sources, c.dest, c.heredocs) == (("a", "b"), "/dst/", ())
    a = one("ADD --keep-git-dir --checksum=sha256:00 --unpack=true https://x/y.tar /z")
    assert isinstance(a, Add) and a.keep_git_dir and a.checksum == "sha256:00" and a.unpack is True
    a = one("ADD x /z")
    assert isinstance(a, Add) and a.unpack is None and a.from_ is None
    c = one('COPY ["a b", "/c d"]')
    assert isinstance(c, Copy) and c.sources == ("a b",) and c.dest == "/c d"


def test_copy_heredoc_sources() -> None:
    df = parse_dockerfile("FROM scratch\nCOPY <<-one <<'two' real /dst/\n\tline1\none\n$X\ntwo\n")
    c = df.stages[0].commands[0]
    assert isinstance(c, Copy)
    assert c.sources == ("real",) and c.dest == "/dst/"
    assert c.heredocs == (Heredoc("one", "line1\n", True, True), Heredoc("two", "$X\n", False, False))
    with pytest.raises(DockerfileParseError, match="cannot accept a heredoc as a destination"):
        parse_dockerfile("FROM scratch\nCOPY a <<EOF\nx\nEOF\n")


def test_run_fields_and_heredoc() -> None:
    r = one("RUN --network=none --security=insecure --mount=type=secret,id=tok,env=TOKEN,required echo")
    assert isinstance(r, Run)
    assert (r.network, r.security, r.args, r.json) == ("none", "insecure", ("echo",), False)
    (m,) = r.mounts
    assert (m.type, m.id, m.env, m.required, m.readonly) == ("secret", "tok", "TOKEN", True, True)
    df = parse_dockerfile("FROM scratch\nRUN <<EOF\nset -e\necho $HOME\nEOF\n")
    r = df.stages[0].commands[0]
    assert isinstance(r, Run) and r.heredocs == (Heredoc("EOF", "set -e\necho $HOME\n", True, False),)
    assert r.node.end_line == 5


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("type=cache,target=/root/.cache", {"type": "cache", "target": "/root/.cache", "readonly": False}),
        ("target=/src", {"type": "bind", "target": "/src", "readonly": True}),
        ("type=bind,source=.,target=/s,rw", {"source": ".", "readonly": False}),
        ("type=bind,src=a,dst=/b,readonly=false", {"source": "a", "target": "/b", "readonly": False}),
        ("type=bind,from=builder,source=/out,target=/in", {"from_": "builder"}),
        (
            "type=cache,id=go,sharing=locked,mode=0700,uid=1000,gid=1000,target=/go",
            {"sharing": "locked", "mode": 0o700},
        ),
        ("type=tmpfs,target=/t,size=64m", {"type": "tmpfs", "size": 64 << 20, "readonly": False}),
        ("type=secret,id=npm,target=/run/secrets/npm", {"type": "secret", "id": "npm", "required": False}),
        ("type=ssh", {"type": "ssh", "readonly": True}),
        ("type=ssh,required=true", {"required": True}),
        ('type=bind,"source=a,b",target=/b', {"source": "a,b", "target": "/b"}),
        ("type=cache,target=$HOME/.cache", {"target": "$HOME/.cache", "needs_expansion": True}),
    ],
)
def test_parse_mount_valid(spec: str, fields: dict[str, object]) -> None:
    m = parse_mount(spec)
    for k, v in fields.items():
        assert getattr(m, k) == v, k


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("typ=tmpfs", "unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)"),
        ("type=tmp", 'unsupported mount type "tmp" (did you mean tmpfs?)'),
        ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
        ("type=bind,size=1m", "unexpected key 'size' for mount type 'bind'"),
        ("type=bind,sharing=shared", "invalid cache sharing set for bind mount"),
        ("type=cache,sharing=maybe", 'unsupported sharing value "maybe"'),
        ("type=cache,mode=999", "invalid value 999 for mode"),
        ("type=cache,uid=-1", "invalid value -1 for uid"),
        ("type=cache,ro=maybe", "invalid value for ro: maybe"),
        ("type=secret", "one of source, target required"),
        ("type=secret,from=x,id=a", "secret mount should not have a from"),
        ("type=secret,source=a,id=b", "both source and id can't be set"),
        ("from=$stage,target=/x", "'from' doesn't support variable expansion"),
        ("target", "invalid field 'target' must be a key=value pair"),
    ],
)
def test_parse_mount_invalid(spec: str, message: str) -> None:
    with pytest.raises(BuildError) as ei:
        parse_mount(spec)
    assert message in ei.value.message


def test_mounts_expanded_at_dispatch() -> None:
    r = one("RUN --mount=type=cache,target=$HOME/.cache,uid=$UID,id=${NAME:-x} make")
    assert isinstance(r, Run)
    (m,) = r.expanded_mounts(ShellLex(), {"HOME": "/root", "UID": "1000"})
    assert (m.target, m.uid, m.id, m.needs_expansion) == ("/root/.cache", 1000, "x", False)
    r = one("RUN --mount=type=$T,target=/x true")
    assert isinstance(r, Run)
    with pytest.raises(DockerfileParseError, match="unsupported mount type"):
        r.expanded_mounts(ShellLex(), {"T": "bogus"})


def test_healthcheck() -> None:
    h = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=4 CMD curl -f x"
    )
    assert isinstance(h, Healthcheck)
    assert h.test == ("CMD-SHELL", "curl -f x")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        90 * 10**9,
        500 * 10**6,
        2 * 10**9,
        10**9,
        4,
    )
    h = one('HEALTHCHECK CMD ["curl", "x"]')
    assert isinstance(h, Healthcheck) and h.test == ("CMD", "curl", "x") and h.retries == 0
    h = one("HEALTHCHECK NONE")
    assert isinstance(h, Healthcheck) and h.test is None
    h = one(
        'HEALTHCHECK --start-period=0s --start-interval=0s --interval=5s --timeout=0s --retries=0 CMD ["foo"]'
    )
    assert isinstance(h, Healthcheck) and h.timeout == 0 and h.interval == 5 * 10**9


def test_onbuild() -> None:
    o = one("ONBUILD RUN echo hi")
    assert isinstance(o, Onbuild) and o.expression == "RUN echo hi"
    df = parse_dockerfile("FROM scratch\nonbuild  COPY <<EOF /x\nhello\nEOF\n")
    o = df.stages[0].commands[0]
    assert isinstance(o, Onbuild) and o.expression == "COPY <<EOF /x\nhello\nEOF"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM a\nRUN --chmod=644 x", 2, "RUN: unknown flag: --chmod"),
        (
            "FROM a\nRUN --mont=target=/x,type=tmpfs /bin/true",
            2,
            "unknown flag: --mont (did you mean mount?)",
        ),
        ("FROM a\nCOPY --form=x a b", 2, "unknown flag: --form (did you mean from?)"),
        ("FROM a\nADD --from=x a b", 2, "ADD: unknown flag: --from"),
        ("FROM a\nCOPY --link=maybe a b", 2, "expecting boolean value for flag --link, not: maybe"),
        ("FROM a\nCOPY --from a b", 2, "missing a value on flag: --from"),
        ("FROM a\nCOPY --from=a --from=b a b", 2, "duplicate flag specified: --from"),
        ("FROM a\nRUN --network=bridge x", 2, 'unsupported network mode "bridge"'),
        ("FROM a\nRUN --security=yes x", 2, 'unsupported security mode "yes"'),
        ("FROM a\nRUN --mount=type=tmp x", 2, 'unsupported mount type "tmp" (did you mean tmpfs?)'),
        ('FROM a\nFNTRYPOINT ["/bin/sh"]', 2, "unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)"),
        ("FROM a\n\nWORKDIR", 3, "WORKDIR requires exactly one argument"),
        ("FROM a\nUSER", 2, "USER requires exactly one argument"),
        ("FROM a\nEXPOSE", 2, "EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME", 2, "VOLUME requires at least one argument"),
        ('FROM a\nVOLUME [""]', 2, "VOLUME specified can not be an empty string"),
        ("FROM a\nENV", 2, "ENV requires at least one argument"),
        ("FROM a\nARG", 2, "ARG requires at least one argument"),
        ("FROM a\nARG =x", 2, "ARG names can not be blank"),
        ("FROM a\nLABEL =x", 2, "LABEL names can not be blank"),
        ("FROM a\nRUN", 2, "RUN requires at least one argument"),
        ("FROM a\nCOPY onlyone", 2, "COPY requires at least two arguments"),
        ("FROM a\nADD", 2, "ADD requires at least two arguments"),
        ("FROM a\nSHELL /bin/sh -c", 2, "SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []", 2, "SHELL requires at least one argument"),
        ("FROM a\nSTOPSIGNAL", 2, "STOPSIGNAL requires exactly one argument"),
        ("FROM a\nMAINTAINER", 2, "MAINTAINER requires exactly one argument"),
        ("FROM a\nHEALTHCHECK", 2, "HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK CMD", 2, "Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK NONE x", 2, "HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CONNECT TCP 7000", 2, 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
        ("FROM a\nHEALTHCHECK --interval=1us CMD x", 2, 'Interval "interval" cannot be less than 1ms'),
        ("FROM a\nHEALTHCHECK --timeout=soon CMD x", 2, 'invalid duration "soon"'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x", 2, "--retries cannot be negative (-1)"),
        ("FROM a\nHEALTHCHECK --retries=x CMD x", 2, "invalid syntax"),
        ("FROM a\nONBUILD ONBUILD RUN x", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM x", 2, "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD MAINTAINER x", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD", 2, "ONBUILD requires at least one argument"),
        ("FROM", 1, "FROM requires either one or three arguments"),
        ("FROM a b", 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1st", 1, 'invalid name for build stage: "1st"'),
        ("FROM a AS x\nFROM b AS X", 2, 'duplicate stage name "x"'),
        ("FROM --platfrom=x a", 1, "unknown flag: --platfrom (did you mean platform?)"),
        ("ARG A\nENV B=1\nFROM a", 2, "ENV: no build stage in current context"),
        ("ARG A\n", None, "no FROM instruction"),
    ],
)
def test_instruction_errors(text: str, line: int | None, message: str) -> None:
    with pytest.raises(DockerfileParseError) as ei:
        parse_dockerfile(text, filename="ctx/Dockerfile")
    err = ei.value
    assert message in err.message
    assert err.line == line and err.file == "ctx/Dockerfile"
    assert "\n" not in err.message
    expected_prefix = f"ctx/Dockerfile:{line}: " if line is not None else "ctx/Dockerfile: "
    assert err.message.startswith(expected_prefix)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("5s", 5 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 3 * 10**8),
        ("-2us", -2000),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "5", "s", "1x", "1.2.3s", "--1s"])
def test_parse_duration_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("755", 0o755),
        ("0644", 0o644),
        ("7777", 0o7777),
        ("go-w", "go-w"),
        ("u=rw,g=r,o=r", "u=rw,g=r,o=r"),
        ("a+X", "a+X"),
    ],
)
def test_parse_chmod_valid(value: str, result: int | str) -> None:
    assert parse_chmod(value) == result


@pytest.mark.parametrize("value", ["64a", "10000", "8", "", "u=rw,", "+q"])
def test_parse_chmod_invalid(value: str) -> None:
    with pytest.raises(BuildError, match="invalid chmod parameter"):
        parse_chmod(value)


def test_suggest() -> None:
    assert suggest("bulid", ["build", "test"]) == "build"
    assert suggest("xyzzy", ["build", "test"]) is None
    assert suggest("", ["a"]) is None


def test_every_keyword_the_parser_knows_has_a_typed_parser() -> None:
    from idpbuilder.dockerfile.instructions import _PARSERS
    from idpbuilder.dockerfile.parser import KNOWN_INSTRUCTIONS

    assert set(_PARSERS) == set(KNOWN_INSTRUCTIONS)
