"""The machine a benchmark ran on (cores, CPU, SIMD flags, memory, load), kept with its figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    info = {"cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags)
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["ram_gib"] = round(int(mem.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    info["loadavg_1m_at_start"] = os.getloadavg()[0]
    return info
