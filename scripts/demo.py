"""The master workflow, end to end, against a local TLS + htpasswd registry (no internet, no Docker).

1. start Debian's docker-registry with TLS (our own CA) and basic auth on a free loopback port
2. seed it with a busybox base image made from busybox-static by our own image code
3. idpbuilder build -t <registry>/giteaadmin/demo:v1 example/   (FROM the seeded busybox)
4. idpbuilder images | grep demo
5. idpbuilder push --username … --password … --ca-file … <registry>/giteaadmin/demo:v1
6. verify: curl …/tags/list, skopeo inspect, and run the pushed image with umoci + runc
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.images import make_busybox_store  # noqa: E402
from tests.fixtures.registry import copy_to_registry, start_registry  # noqa: E402

IDP = [str(REPO / ".venv" / "bin" / "idpbuilder")]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, capture: bool = False, redact: str = "") -> str:
    shown = " ".join(shlex.quote(c.replace(redact, "***") if redact else c) for c in cmd)
    print(f"$ {shown}", flush=True)
    res = subprocess.run(cmd, env={**os.environ, **(env or {})}, text=True, capture_output=capture)
    if res.returncode != 0:
        if capture:
            sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"demo failed: command exited {res.returncode}")
    if capture:
        sys.stdout.write(res.stdout)
        return res.stdout
    return ""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="idpbuilder-demo-") as tmp:
        work = Path(tmp)
        home = work / "home"
        step("start a TLS + basic-auth registry on loopback")
        reg = start_registry(work / "registry", tls=True, auth="htpasswd", username="giteaAdmin")
        try:
            print(f"registry https://{reg.host} (CA {reg.ca_file}, user {reg.username})")
            assert reg.password is not None and reg.ca_file is not None and reg.username is not None
            step("seed the registry with a busybox base image (from busybox-static)")
            seed_home = work / "seed"
            make_busybox_store(seed_home, "busybox:latest")
            copy_to_registry(f"oci:{seed_home / 'store'}:busybox:latest", reg, "library/busybox:latest")
            base = reg.ref("library/busybox:latest")
            ref = reg.ref("giteaadmin/demo:v1")
            creds_env = {
                "IDPBUILDER_REGISTRY_USERNAME": reg.username,
                "IDPBUILDER_REGISTRY_PASSWORD": reg.password,
                "IDPBUILDER_CA_FILE": str(reg.ca_file),
            }

            step("build the example (no Docker daemon)")
            run(IDP + ["--store", str(home), "build", "--build-arg", f"BASE={base}", "-t", ref,
                       str(REPO / "example")], env=creds_env)

            step("list it")
            out = run(IDP + ["--store", str(home), "images"], capture=True)
            if "giteaadmin/demo" not in out:
                raise SystemExit("demo failed: the built image is not listed")

            step("push it")
            pushed = run(IDP + ["--store", str(home), "push", "--username", reg.username, "--password",
                                reg.password, "--ca-file", str(reg.ca_file), ref],
                         capture=True, redact=reg.password).strip().splitlines()[-1]
            if "@sha256:" not in pushed:
                raise SystemExit(f"demo failed: push printed {pushed!r}, expected REF@sha256:…")

            step("verify: the registry lists the tag")
            tags = run(["curl", "-sf", "--cacert", str(reg.ca_file), "-u", f"{reg.username}:{reg.password}",
                        f"https://{reg.host}/v2/giteaadmin/demo/tags/list"], capture=True, redact=reg.password)
            if "v1" not in json.loads(tags).get("tags", []):
                raise SystemExit("demo failed: tag v1 not listed")

            step("verify: skopeo reads the pushed manifest, and its digest matches what push printed")
            info = json.loads(run(["skopeo", "inspect", *reg.skopeo_args(), f"docker://{ref}"], capture=True))
            if pushed.rsplit("@", 1)[1] != info["Digest"]:
                raise SystemExit("demo failed: digest mismatch between push output and registry")

            step("verify: the pushed image runs under runc (skopeo copy + umoci unpack + runc run)")
            layout = work / "pulled"
            run(["skopeo", "copy", "-q", *reg.skopeo_args(dest=False), f"docker://{ref}", f"oci:{layout}:demo"])
            bundle = work / "bundle"
            run(["umoci", "unpack", "--image", f"{layout}:demo", str(bundle)], capture=True)
            cfg_path = bundle / "config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["process"]["terminal"] = False
            cfg_path.write_text(json.dumps(cfg))
            out = run(["runc", "run", "-b", str(bundle), f"idpbuilder-demo-{os.getpid()}"], capture=True)
            if "built without docker" not in out:
                raise SystemExit("demo failed: the container did not print the expected message")
            print("\nmaster workflow OK: built, listed, pushed, verified and run")
        finally:
            reg.stop()


if __name__ == "__main__":
    main()
