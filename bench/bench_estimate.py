"""Benchmark: the memory estimate of ``clmtune preview`` against real ``clmtune train`` runs.

    python bench/bench_estimate.py [--steps 15] [--configs 1x32,16x128,64x128]

For the offline demo config at a few (batch size x block size) settings: ``clmtune preview
--json`` gives the estimated peak per device, then ``clmtune train`` runs the same settings
for ``--steps`` steps (no evaluation, no checkpoints) while this script polls the worker's
``/proc/PID/status`` for its peak resident set (``VmHWM``).

On a GPU the issue's target is the estimate within ±25% of ``torch.cuda.max_memory_allocated``
(``clmtune preview --measure`` reports that peak). On CPU the process RSS also holds
Python, torch and the datasets (hundreds of MB whatever the batch), so the comparison is the
growth over the first (smallest) configuration measured in the same run: estimated growth vs
measured growth, and the error in % of the measured growth. The absolute numbers print too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_TMP = tempfile.mkdtemp(prefix="clmtune-bench-estimate-")
os.environ.setdefault("HF_HOME", os.path.join(_TMP, "hf"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
MIB = 1024**2


def _clmtune(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clmtune.backend.cli", *args], cwd=_TMP,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            **kwargs)


def _write_config(base: Path, batch: int, block: int, steps: int, dest: Path) -> Path:
    from clmtune.backend.settings.run_config import RunConfig
    from clmtune.backend.settings.toml_io import load_config, save_config

    cfg = load_config(base)
    training = cfg.section("training") | {"per_device_train_batch_size": batch,
                                          "max_steps": steps, "eval_strategy": "no",
                                          "save_strategy": "no", "logging_steps": 5}
    training.pop("eval_steps", None)
    training.pop("save_steps", None)
    training.pop("save_total_limit", None)
    training.pop("load_best_model_at_end", None)
    data = cfg.section("data") | {"block_size": block}
    save_config(RunConfig(model=cfg.section("model"), data=data, training=training), dest)
    return dest


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _train_peak_rss(config: Path, run_dir: Path) -> int:
    """Run ``clmtune train`` and return the worker's peak RSS (last VmHWM read)."""
    proc = _clmtune("train", str(config), "--run-dir", str(run_dir))
    peak, worker = 0, None
    while proc.poll() is None:
        if worker is None:
            try:
                worker = json.loads((run_dir / "run.json").read_text()).get("worker_pid")
            except (OSError, ValueError):
                worker = None
        if worker:
            peak = max(peak, _vm_hwm(int(worker)) or 0)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"clmtune train failed for {config} (exit {proc.returncode})")
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--configs", default="1x32,16x128,64x128",
                        help="batch x block pairs; the first is the baseline")
    args = parser.parse_args()
    pairs = [tuple(int(x) for x in item.split("x")) for item in args.configs.split(",")]
    base_toml = Path(_TMP) / "demo.toml"
    subprocess.run([sys.executable, "-m", "clmtune.backend.cli", "init", str(base_toml)],
                   cwd=_TMP, check=True, capture_output=True)
    rows = []
    for batch, block in pairs:
        config = _write_config(base_toml, batch, block, args.steps,
                               Path(_TMP) / f"b{batch}x{block}.toml")
        out, _ = _clmtune("preview", str(config), "--json", "--samples", "0").communicate()
        memory = json.loads(out)["estimate"]["memory"]
        peak = _train_peak_rss(config, Path(_TMP) / f"run-{batch}x{block}")
        rows.append((batch, block, memory["total"], peak))
        print(f"batch {batch:3d} block {block:4d}: estimate {memory['total'] / MIB:8.1f} MiB "
              f"({', '.join(f'{k} {v / MIB:.1f}' for k, v in memory['parts'].items() if v)})"
              f"   measured peak RSS {peak / MIB:8.1f} MiB", flush=True)
    _, _, est0, rss0 = rows[0]
    print(f"baseline: batch {rows[0][0]} block {rows[0][1]} "
          f"(estimate {est0 / MIB:.1f} MiB, peak RSS {rss0 / MIB:.1f} MiB)")
    for batch, block, estimate, peak in rows[1:]:
        grown, measured = estimate - est0, peak - rss0
        error = 100 * (grown - measured) / measured if measured > 0 else float("nan")
        print(f"batch {batch:3d} block {block:4d}: estimated growth {grown / MIB:7.1f} MiB, "
              f"measured growth {measured / MIB:7.1f} MiB, error {error:+.0f}%, "
              f"ratio estimate/measured {grown / measured if measured > 0 else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
