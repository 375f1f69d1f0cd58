"""The conditions of a benchmark run (device, versions, clocks) and the atomic writing of its table."""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import SpecError
from .spec import COLUMNS, KEY_COLUMNS


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


NVSMI_FIELDS = ("index", "name", "driver_version", "pstate", "clocks.sm", "clocks.mem", "clocks.max.sm",
                "clocks.max.mem", "power.draw", "power.limit", "temperature.gpu")


def nvidia_smi() -> list[dict] | str:
    """Per-GPU clocks, power and driver from ``nvidia-smi`` (a string saying why where it cannot be queried)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    try:
        res = subprocess.run([exe, f"--query-gpu={','.join(NVSMI_FIELDS)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as err:
        return f"nvidia-smi failed: {err.__class__.__name__}"
    if res.returncode != 0:
        return f"nvidia-smi failed: {(res.stderr or res.stdout).strip()[:200]}"
    return [dict(zip(NVSMI_FIELDS, (v.strip() for v in line.split(","))))
            for line in res.stdout.strip().splitlines() if line.strip()]


def _environment(torch, device) -> dict:
    env = {"helixsim_version": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "torch_version": torch.__version__, "cuda_version": torch.version.cuda, "device_type": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, compute_capability=f"{props.major}.{props.minor}",
                   device_memory_gib=round(props.total_memory / 2 ** 30, 2),
                   multiprocessors=props.multi_processor_count,
                   cudnn_version=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
        try:
            nccl = torch.cuda.nccl.version()
            env["nccl_version"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
        except Exception:  # not built with NCCL
            env["nccl_version"] = None
    else:
        env.update(device_name=_cpu_name(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads())
    return env



def _write_table(path: Path, rows: list[dict], table: str, append: bool) -> int:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS[table]))
    if append and path.exists():
        old = pd.read_csv(path)
        if list(old.columns) != list(COLUMNS[table]):
            raise SpecError(str(path), "--append", f"existing table has other columns than a '{table}' table")
        frame = pd.concat([old, frame], ignore_index=True)
        frame = frame.drop_duplicates(subset=list(KEY_COLUMNS[table]), keep="last").reset_index(drop=True)
    text = frame.to_csv(index=False, float_format="%.6g").encode("utf-8")
    data = gzip.compress(text, mtime=0) if path.name.endswith(".gz") else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)
