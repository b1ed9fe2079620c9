"""Shared bootstrap for the vector generators: make sure the pinned pycti and stix2 are
importable, otherwise build `.venv/` at the repository root (git-ignored), install them there
and re-run the calling script with that interpreter."""

import os
import subprocess
import sys

PYCTI_VERSION = "7.261026.0"
STIX2_VERSION = "3.0.2"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")


def ensure_environment(script):
    try:
        import pycti
        import stix2

        if stix2.__version__ == STIX2_VERSION and pycti.__version__ == PYCTI_VERSION:
            return
    except ImportError:
        pass
    if os.environ.get("PYCTI_ENV_REEXEC"):
        sys.exit("pycti/stix2 still missing or at the wrong version inside " + VENV)
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "pycti==" + PYCTI_VERSION,
            "stix2==" + STIX2_VERSION,
        ]
    )
    env = dict(os.environ, PYCTI_ENV_REEXEC="1")
    os.execve(python, [python, os.path.abspath(script)] + sys.argv[1:], env)
