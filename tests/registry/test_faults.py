"""Retries through the fault proxy, Ctrl-C during a push, and no secret in any output at debug level."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from regkit import make_image, unique

from fixtures.cli import CliRunner, hermetic_env
from fixtures.fault_proxy import FaultProxy
from fixtures.registry import RegistryInfo
from idpbuilder.store.layout import Store

SRC = "example.com/src/faulty:v1"
FAST = {"IDPBUILDER_RETRY_BASE_DELAY": "0.01"}


def inspect_digest(info: RegistryInfo, ref: str) -> str:
    p = subprocess.run(
        ["skopeo", "inspect", *info.skopeo_args(), f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return str(json.loads(p.stdout)["Digest"])


def test_push_survives_resets_and_503s(fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path) -> None:
    digest = str(make_image(idp_home, SRC, [1_500_000, 900_000, 400_000, 50_000]).digest)
    info = fault_proxy.registry
    dest = info.ref(f"{unique('faults')}/app:v1")
    fault_proxy.reset_after(200_000, connections=5, direction="upload")
    fault_proxy.fail_requests(5, status=503)
    code, out, err = cli("push", "--progress", "plain", SRC, dest, env=FAST)
    assert code == 0, err
    assert out.strip() == f"{dest}@{digest}"
    st = fault_proxy.stats
    assert st.resets == 5 and st.injected_errors == 5
    assert inspect_digest(info, dest) == digest
    # one message per retry, saying what was being done and the attempt count
    assert re.search(
        r"(pushing blob sha256:[0-9a-f]{12}… to 127\.0\.0\.1:\d+/\S+|connecting to \S+|checking \S+ "
        r"\S+ in \S+|checking manifest \S+): 503 Service Unavailable \(attempt \d+/10\)",
        err,
    ), err
    assert re.search(
        r"pushing blob sha256:[0-9a-f]{12}… to \S+: .*(reset|closed|failed).* \(attempt \d+/10\)", err
    ), err


def test_retries_give_up_with_a_clear_message(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    make_image(idp_home, SRC, [10_000])
    dest = fault_proxy.registry.ref(f"{unique('giveup')}/app:v1")
    fault_proxy.fail_requests(100, status=503, method="PUT")
    code, out, err = cli("push", "--retries", "3", SRC, dest, env=FAST)
    assert code == 1 and out == ""
    assert re.search(
        r"Error: pushing blob sha256:[0-9a-f]{12}… to \S+: 503 Service Unavailable "
        r"\(gave up after 3 attempts\)",
        err,
    ), err
    assert "Traceback" not in err


def test_pull_resumes_after_download_resets(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path, tmp_path: Path
) -> None:
    digest = str(make_image(idp_home, SRC, [800_000, 300_000]).digest)
    info = fault_proxy.registry
    dest = info.ref(f"{unique('pullfault')}/app:v1")
    cli("push", SRC, dest).check()
    other_home = tmp_path / "pull-home"
    other_home.mkdir()
    fault_proxy.reset_after(100_000, connections=3, direction="download")
    code, out, err = CliRunner(other_home)("pull", dest, env=FAST)
    assert code == 0, err
    assert out.strip() == f"{dest}@{digest}"
    assert fault_proxy.stats.resets == 3
    store = Store.open(other_home)
    assert str(store.resolve(dest).digest) == digest
    for _, d in store.refs():
        for layer in store.read_json(d.digest)["layers"]:
            from idpbuilder.digest import Digest

            store.read_blob(Digest.parse(layer["digest"]))  # verified read
    store.close()


def test_ctrl_c_during_push_exits_130_and_store_stays_valid(fault_proxy: FaultProxy, idp_home: Path) -> None:
    make_image(idp_home, SRC, [200_000, 100_000])
    dest = fault_proxy.registry.ref(f"{unique('sigint')}/app:v1")
    # every blob upload fails and is retried with long sleeps: the push is busy in worker threads
    fault_proxy.fail_requests(1000, status=503, method="PUT")
    env = hermetic_env(idp_home, extra={"IDPBUILDER_RETRY_BASE_DELAY": "5"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "idpbuilder", "push", SRC, dest],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while fault_proxy.stats.injected_errors < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fault_proxy.stats.injected_errors >= 1
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 5  # retry sleeps are cancelled, not waited out
    assert "interrupted" in err and "Traceback" not in err and out == ""
    store = Store.open(idp_home)
    assert store.resolve(SRC)
    store.close()
    p = subprocess.run(
        ["skopeo", "inspect", f"oci:{idp_home / 'store'}:{SRC}"], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr


def test_no_secret_in_any_output_at_debug(
    registry_token_tls: RegistryInfo,
    registry_tls: RegistryInfo,
    registry_factory: Callable[[str], RegistryInfo],
    cli: CliRunner,
    idp_home: Path,
) -> None:
    make_image(idp_home, SRC, [20_000])
    tok = registry_token_tls
    assert tok.password and tok.ca_file and registry_tls.password
    secret_token = "tok-Xq7-distinctive-9f31"
    wrong_pw = "pw-Zk4-distinctive-77ab"
    secrets = [tok.password, secret_token, wrong_pw, registry_tls.password]
    ca = ["--ca-file", str(tok.ca_file)]
    d = f"{unique('secret')}/app:v1"
    runs = [
        # success: username+password at the token realm (the JWT it returns is a secret too)
        (0, ["push", "-u", "giteaAdmin", "-p", tok.password, *ca, SRC, tok.ref(d)], {}),
        # success: username + token (the token acts as the password)
        (0, ["pull", "-u", "giteaAdmin", "-t", tok.password, *ca, tok.ref(d)], {}),
        # wrong password
        (1, ["push", "-u", "giteaAdmin", "-p", wrong_pw, *ca, SRC, tok.ref(d)], {}),
        # a token alone is sent as Bearer and refused
        (1, ["push", "-t", secret_token, *ca, SRC, tok.ref(d)], {}),
        # unknown CA, credentials from the environment
        (
            1,
            ["push", SRC, tok.ref(d)],
            {
                "IDPBUILDER_REGISTRY_USERNAME": "giteaAdmin",
                "IDPBUILDER_REGISTRY_PASSWORD": tok.password,
                "IDPBUILDER_REGISTRY_TOKEN": secret_token,
            },
        ),
        # not found in the registry (pull) and in the store (push)
        (2, ["pull", "-u", "giteaAdmin", "-p", tok.password, *ca, tok.ref("nothere/x:1")], {}),
        (2, ["push", "-u", "giteaAdmin", "-p", tok.password, *ca, "example.com/absent:v1", tok.ref(d)], {}),
        # basic auth registry: success and wrong password
        (0, ["push", *registry_tls.cli_args(), SRC, registry_tls.ref(d)], {}),
        (
            1,
            [
                "push",
                "-u",
                "giteaAdmin",
                "-p",
                wrong_pw,
                "--ca-file",
                str(registry_tls.ca_file),
                SRC,
                registry_tls.ref(d),
            ],
            {},
        ),
    ]
    saw_auth_trace = False
    for want, args, env in runs:
        code, out, err = cli("--log-level", "debug", *args, env={**FAST, **env})
        assert code == want, (args[0], err[-2000:])
        for s in secrets:
            assert s not in out and s not in err, f"secret leaked in {args[0]} (exit {code})"
        assert "eyJ" not in out + err  # no JWT (token response) in the trace
        saw_auth_trace |= "'Authorization': 'Bearer ***'" in err or "'Authorization': 'Basic ***'" in err
        assert "HTTP " in err or args[0] == "push" and code == 2
    assert saw_auth_trace
