"""`malmungchi env`: what a bug report needs, read from this machine (CPU flags from /proc/cpuinfo, the
bitsandbytes 4-bit path, versions from the installed packages)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.envinfo import FLAGS


def test_env_json_reads_this_machine():
    r = CliRunner().invoke(main, ["env", "--json"], catch_exceptions=False)
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["versions"]["torch"] == metadata.version("torch")
    assert info["versions"]["malmungchi"] == metadata.version("malmungchi")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = set(next((x.split(":", 1)[1].split() for x in cpuinfo.read_text().splitlines()
                          if x.startswith("flags")), []))
        assert info["cpu"]["flags"] == [f for f in FLAGS if f in flags]
    assert info["cpu"]["cores"] >= 1
    assert info["bitsandbytes"].startswith(("4-bit on", "bitsandbytes"))


def test_env_text_has_one_line_per_topic():
    r = CliRunner().invoke(main, ["env"], catch_exceptions=False)
    assert r.exit_code == 0
    assert [x.split(":")[0] for x in r.stdout.splitlines()] == ["machine", "bitsandbytes", "software"]
