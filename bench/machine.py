"""What a benchmark ran on, printed first by every bench so a figure can be traced to its machine (see
`malmungchi.envinfo`: CPU model and flags, cores, memory, GPU, bitsandbytes path, library versions)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The shared data: `../shared/data` beside the checkout, else `shared/data` inside it (what travels to a lent
    device machine, which gets the checkout alone: `bench/device/prepare.sh` copies the slices there)."""
    beside = ROOT.parent / "shared" / "data"
    return beside if beside.is_dir() else ROOT / "shared" / "data"


def print_machine(file=sys.stdout) -> None:
    from malmungchi.envinfo import collect, lines
    from malmungchi.quiet import quiet_third_party_logs

    quiet_third_party_logs()  # bitsandbytes is imported to tell its 4-bit path
    for line in lines(collect()):
        print(line, file=file)


if __name__ == "__main__":
    print_machine()
