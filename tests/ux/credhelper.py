"""A ``docker-credential-<name>`` stand-in (the docker-credential-helpers protocol), installed on PATH by tests.

It keeps ``{ServerURL: {Username, Secret}}`` in ``$TEST_CREDSTORE`` and appends each action to
``$TEST_CREDSTORE.log`` (never the secret).
"""

from __future__ import annotations

from pathlib import Path

SCRIPT = r"""#!/usr/bin/env python3
import json, os, sys
path = os.environ["TEST_CREDSTORE"]
action = sys.argv[1]
try:
    with open(path) as f:
        data = json.load(f)
except FileNotFoundError:
    data = {}
with open(path + ".log", "a") as f:
    f.write(action + "\n")
inp = sys.stdin.read()
if action == "store":
    req = json.loads(inp)
    data[req["ServerURL"]] = {"Username": req["Username"], "Secret": req["Secret"]}
elif action == "get":
    entry = data.get(inp.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({"ServerURL": inp.strip(), **entry}))
elif action == "erase":
    if data.pop(inp.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
elif action == "list":
    print(json.dumps({k: v["Username"] for k, v in data.items()}))
with open(path, "w") as f:
    json.dump(data, f)
"""


def install_helper(bin_dir: Path, name: str = "teststore") -> Path:
    """Write ``docker-credential-<name>`` into ``bin_dir``; returns its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / f"docker-credential-{name}"
    exe.write_text(SCRIPT)
    exe.chmod(0o755)
    return exe
