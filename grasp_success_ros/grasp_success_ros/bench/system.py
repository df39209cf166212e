"""What the machine and its processes say of themselves (``lscpu``, ``/proc``): the CPU, the
peak memory of a process and its children, the CPU taken by everything else."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

from grasp_success_ros.bench.results import Machine, ProcessRun


def machine_info() -> Machine:
    model = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        flags = ""
    return Machine(cpu=model, cores=os.cpu_count() or 1, avx512f=" avx512f" in flags,
                   load_avg=list(os.getloadavg()), python=platform.python_version())


def fp32_flop_per_cycle(avx512: bool) -> int:
    """Per core: two FMA pipes x 16 (AVX-512) or 8 (AVX2) float32 lanes x 2 FLOP."""
    return 2 * (16 if avx512 else 8) * 2


def vm_mb(pid: int, field: str) -> float | None:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of process ``pid`` in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def vm_hwm_mb(pid: int) -> float | None:
    return vm_mb(pid, "VmHWM")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc; those that exit meanwhile are left out)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in children:
                out += process_tree(int(child))
    except OSError:
        pass
    return out


def run_measured(cmd: list[str], log_path: Path, poll_s: float = 0.05) -> ProcessRun:
    """Run ``cmd`` as its own process: wall time and its peak RSS, that of the process and
    its children together (``export --format tflite`` converts in child processes): the
    sum of their ``VmRSS`` polled, or the process' own ``VmHWM`` when higher (not
    ``ru_maxrss``, which after a vfork/exec also holds the parent's peak)."""
    from grasp_success_ros.core.errors import GraspSuccessError

    t = time.perf_counter()
    peak = None
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            tree = sum(vm_mb(p, "VmRSS") or 0.0 for p in process_tree(proc.pid))
            peak = max(v for v in (peak, tree, vm_mb(proc.pid, "VmHWM")) if v is not None)
            time.sleep(poll_s)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise GraspSuccessError(f"{' '.join(cmd[1:4])} ... failed (exit {proc.returncode}):\n"
                                f"{tail}")
    return ProcessRun(wall_s=time.perf_counter() - t, peak_rss_mb=peak, log=str(log_path))


def _machine_busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, steal included: /proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """The share of the machine's CPU taken by processes other than the node and the bench
    while a measurement ran: on a shared machine this moves event-to-verdict between runs."""

    def __init__(self, node_pid: int) -> None:
        self.node_pid = node_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        own = os.times()
        return (time.monotonic(), _machine_busy_cpu_s(), _process_cpu_s(self.node_pid),
                own.user + own.system)

    def share(self) -> float:
        end = self._sample()
        wall, busy, node, own = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, busy - node - own) / (wall * (os.cpu_count() or 1))
