"""What a benchmark ran on, printed first by every bench so a figure can be traced to its machine: CPU model and
the instruction-set flags that change code paths (bitsandbytes takes another 4-bit path with AVX512-BF16), cores,
memory, GPU, Python and the versions of the libraries measured."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
LIBRARIES = ("malmungchi", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "tokenizers",
             "tiktoken", "datasets", "polars", "pyarrow")


def _cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in FLAGS if f in flags]


def _memory_gib() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        return "?"


def _gpu() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:
        pass
    return "none"


def describe() -> list[str]:
    model, flags = _cpu()
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [f"machine: {model}; flags {' '.join(flags) or '(none of ' + ', '.join(FLAGS) + ')'}; "
            f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores; "
            f"{_memory_gib()}; GPU {_gpu()}",
            f"software: Python {platform.python_version()} on {platform.system()} {platform.release()}; "
            + ", ".join(versions)]


def print_machine(file=sys.stdout) -> None:
    for line in describe():
        print(line, file=file)


if __name__ == "__main__":
    print_machine()
