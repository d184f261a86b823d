"""Shared by the benchmark scripts: where the data is, machine facts, JSON results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("GPNER_DATA", ROOT.parent / "shared" / "data"))


def machine() -> dict:
    import torch

    try:  # the first processor's fields
        first = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n")[0]
        info = {k.strip(): v.strip() for k, v in
                (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    except OSError:
        info = {}
    cpu = info.get("model name") or platform.processor() or "unknown"
    # the CPU's int8 dot-product instructions (VNNI, AMX): ONNX Runtime's int8 speed-up depends
    # on them far more than fp32 speed does, and two machines of one model name can differ
    flags = info.get("flags", "").split()
    int8_dot = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"cpu": cpu, "cores": os.cpu_count(), "int8_dot": int8_dot,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": dt.date.today().isoformat(), "gpner_commit": _commit()}


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB (VmHWM of /proc/self/status). Not ru_maxrss: Linux
    carries the parent's peak across fork and exec, so a small worker would report its
    parent's."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource  # not Linux: the best there is

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=ROOT).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, cwd=ROOT).stdout.strip()
        return sha + ("+dirty" if dirty else "") if sha else "unknown"
    except OSError:
        return "unknown"


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def gpner_exe() -> str:
    exe = Path(sys.executable).parent / "gpner"
    return str(exe) if exe.exists() else "gpner"


def run(cmd: list[str], log: Path | None = None) -> subprocess.CompletedProcess:
    """Run `cmd`; stdout is captured, stderr goes to `log` as it is written (so a 28-minute
    training run can be watched with `tail -f`), or is captured when there is no log."""
    if log is None:
        res = subprocess.run(cmd, capture_output=True, text=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as fh:
            fh.write(" ".join(cmd) + "\n\n")
            fh.flush()
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True)
    if res.returncode != 0:
        err = res.stderr if log is None else log.read_text(encoding="utf-8")
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return res


def portable(text: str) -> str:
    """`text` without this checkout's absolute path (the MiniLM model lives in .venv/), so a
    recorded result reads the same on any machine."""
    return text.replace(str(ROOT) + "/", "")


def show_command(cmd: list[str], data_root: Path) -> str:
    """The command as a user types it from the repository root: `gpner ...`, data under
    ../shared/data, paths inside this checkout relative to it."""
    return " ".join(["gpner"] + [portable(c.replace(str(data_root), "../shared/data"))
                                 for c in cmd[1:]])


def plot_panels(path: Path, panels: list[dict]) -> None:
    """One row of line plots saved as a PNG: each panel ``{"title", "xlabel", "ylabel",
    "lines": [(label, xs, ys, matplotlib keyword arguments)]}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for label, xs, ys, style in panel["lines"]:
            ax.plot(xs, ys, label=label, **style)
        ax.set_title(panel["title"])
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
