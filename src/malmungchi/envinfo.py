"""What this installation runs on: CPU (model and the instruction-set flags that change code paths), cores,
memory, accelerators, the bitsandbytes 4-bit path, Python and library versions. `malmungchi env` prints it (for
bug reports); the benches print it before their figures."""

from __future__ import annotations

import os
import platform
from importlib import metadata

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
LIBRARIES = ("malmungchi", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "tokenizers",
             "tiktoken", "datasets", "polars", "pyarrow")


def cpu() -> dict:
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "flags": [f for f in FLAGS if f in flags], "cores": cores}


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def devices() -> dict:
    try:
        import torch
    except ImportError:
        return {"cuda": [], "mps": False}
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {"cuda": cuda, "mps": mps}


def bitsandbytes_path() -> str:
    """Whether 4-bit works here, and which CPU path bitsandbytes takes (the AVX512-BF16 one repacks weights)."""
    from malmungchi.train.modeling import bitsandbytes_problem, device_type

    problem = bitsandbytes_problem()
    if problem:
        return problem
    if device_type() == "cuda":
        return "4-bit on CUDA"
    try:
        from bitsandbytes.functional import has_avx512bf16

        fused = has_avx512bf16()
    except ImportError:
        fused = False
    return "4-bit on the CPU, " + ("AVX512-BF16 path (weights repacked in eval mode)" if fused else "generic path")


def versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def collect(*, bnb: bool = True) -> dict:
    info = {"cpu": cpu(), "memory_gib": memory_gib(), "devices": devices(),
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "versions": versions()}
    if bnb:
        info["bitsandbytes"] = bitsandbytes_path()
    return info


def lines(info: dict) -> list[str]:
    c, d = info["cpu"], info["devices"]
    gpu = ", ".join(d["cuda"]) or ("Apple MPS" if d["mps"] else "none")
    out = [f"machine: {c['model']}; flags {' '.join(c['flags']) or '(none of ' + ', '.join(FLAGS) + ')'}; "
           f"{c['cores']} cores; {info['memory_gib'] or '?'} GiB; GPU {gpu}"]
    if "bitsandbytes" in info:
        out.append(f"bitsandbytes: {info['bitsandbytes']}")
    out.append(f"software: Python {info['python']} on {info['system']}; "
               + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return out
