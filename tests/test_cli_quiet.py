"""Library notices that mean nothing to a user (bitsandbytes' optional-kernel line on AVX512-BF16 CPUs, transformers'
checkpoint-mtime fallback) are hidden
unless `malmungchi -v` (or MALMUNGCHI_VERBOSE=1) asks for them."""

from __future__ import annotations

import os
import subprocess
import sys

NOTICE = ("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make sure "
          "you already `pip install kernels` and the kernels >= 0.11.1")

# A command that logs exactly what bitsandbytes logs when it is imported on an AVX512-BF16 CPU (its module logger,
# at warning level, no handler configured), run through the real `malmungchi` entry point.
SCRIPT = f"""
import logging, sys
from malmungchi.cli import main

@main.command("emit")
def emit():
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning({NOTICE!r})
    logging.getLogger("someone.else").warning("other libraries' warnings are left alone")
    from transformers.utils import logging as hf_logging
    trainer_utils = hf_logging.get_logger("transformers.trainer_utils")
    trainer_utils.warning("mtime may not be reliable on this filesystem, falling back to numerical ordering")
    trainer_utils.warning("the same logger's other warnings are left alone")

main(sys.argv[1:])
"""


def _stderr(*args: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_bitsandbytes_kernel_notice_is_hidden_by_default():
    err = _stderr("emit", env={"MALMUNGCHI_VERBOSE": ""})
    assert "gemm_4bit_forward" not in err and "mtime" not in err
    assert "other libraries' warnings are left alone" in err and "the same logger's other warnings" in err


def test_verbose_shows_it():
    assert NOTICE in _stderr("-v", "emit") and "mtime may not be reliable" in _stderr("-v", "emit")
    assert NOTICE in _stderr("emit", env={"MALMUNGCHI_VERBOSE": "1"})
