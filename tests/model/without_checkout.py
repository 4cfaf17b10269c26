"""Runs a script the way Serve's controller runs a pickled policy: in a fresh Python that
cannot import this checkout, beside the pickled bytes in `policy.bin`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PRELUDE = (
    "import types\nfrom ray import cloudpickle\n"
    "try:\n    import deployments\nexcept ImportError:\n    pass\n"
    "else:\n    raise SystemExit('deployments is importable')\n"
    "cls = cloudpickle.loads(open('policy.bin', 'rb').read())\n")


def run_pickled_policy(folder: Path, pickled: bytes, script: str) -> str:
    """`script` after PRELUDE (which binds the unpickled policy to `cls`); its stdout."""
    (folder / "policy.bin").write_bytes(pickled)
    result = subprocess.run([sys.executable, "-c", PRELUDE + script], cwd=folder,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
