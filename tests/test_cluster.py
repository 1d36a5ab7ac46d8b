"""Cluster work (issue 15): `train --print-command`, `export-job --slurm` (its script run
for real under a fake srun/scontrol), multi-node torchrun settings, and FSDP settings on a
real 2-process run."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sys
import time
from pathlib import Path

import pytest

from clmtune.backend.launch import command_text
from clmtune.backend.rundir.layout import read_run_json, write_json_atomic
from clmtune.backend.rundir.summary import read_run
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.toml_io import load_config, save_config
from clmtune.backend.tools import export_job
from tests.fixtures import make_tiny_config
from tests.run_helpers import cli_env, clmtune, events_of


def _config(tmp_path: Path, assets, launch=None, **training) -> Path:
    cfg = make_tiny_config(assets, **training)
    cfg.launch = dict(launch or {})
    path = tmp_path / "tiny.toml"
    save_config(cfg, path)
    return path


def _command(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1, text
    return shlex.split(lines[0])


# ------------------------------------------------------------------ --print-command


def test_print_command_single_process_writes_nothing(tmp_path, tiny_assets, monkeypatch):
    config = _config(tmp_path, tiny_assets)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own value: kept, not shown
    argv = _command(command_text(config, run_dir=Path("out")))
    assert argv[0] == "env" and "PYTHONUNBUFFERED=1" in argv
    assert not any(a.startswith("OMP_WAIT_POLICY=") for a in argv)
    start = argv.index(sys.executable)
    assert argv[start:] == [sys.executable, "-m", "clmtune.backend.worker", str(work / "out")]
    assert list(work.iterdir()) == []  # nothing created


def test_print_command_multi_node_rendezvous(tmp_path, tiny_assets):
    launch = {"nproc_per_node": 2, "nnodes": 3, "node_rank": 1,
              "rdzv_endpoint": "node0.cluster:29400"}  # fmt: skip
    config = _config(tmp_path, tiny_assets, launch)
    argv = _command(command_text(config, run_dir=tmp_path / "run"))
    tail = argv[argv.index("torch.distributed.run") + 1:]
    assert tail == ["--nproc_per_node=2", "--nnodes=3", "--node_rank=1", "--rdzv_backend=c10d",
                    "--rdzv_endpoint=node0.cluster:29400", "-m", "clmtune.backend.worker",
                    str(tmp_path / "run")]  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_print_command_cli_exits_0_and_trains_nothing(tmp_path, tiny_assets):
    config = _config(tmp_path, tiny_assets, {"nnodes": 2, "master_addr": "10.0.0.7",
                                             "master_port": 29511})
    done = clmtune("train", str(config), "--run-dir", "r", "--resume", "auto",
                   "--print-command", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = _command(done.stdout)
    assert {"--nnodes=2", "--node_rank=0", "--master_addr=10.0.0.7", "--master_port=29511"} \
        <= set(argv)
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ export-job --slurm


def _directives(script: str) -> dict[str, str]:
    found = re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?$", script, re.M)
    return {k: v for k, v in found}


def test_export_job_slurm_script(tmp_path, tiny_assets):
    config = _config(tmp_path, tiny_assets)
    done = clmtune("export-job", str(config), "--slurm", "--nodes", "4", "--gpus-per-node",
                   "8", "--time", "12:00:00", "--partition", "h100", "--run-dir", "shared/run",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    script = done.stdout
    assert script.startswith("#!/bin/bash\n")
    sbatch = _directives(script)
    assert sbatch["nodes"] == "4" and sbatch["gpus-per-node"] == "8"
    assert sbatch["time"] == "12:00:00" and sbatch["partition"] == "h100"
    assert "requeue" in sbatch and sbatch["signal"] == "B:USR1@120"
    # The signal is trapped and becomes the run's safe stop (stop.request), then a requeue.
    assert re.search(r"^trap stop_training USR1", script, re.M)
    assert 'touch "$RUN_DIR/stop.request"' in script and "scontrol requeue" in script
    run_dir = tmp_path / "shared" / "run"
    assert f"RUN_DIR={run_dir}" in script
    # Each node: torchrun with the node rank and a c10d rendezvous, continuing from RESUME,
    # which the prepare step sets like `--resume auto`.
    srun = next(ln for ln in script.splitlines() if ln.startswith("srun "))
    inner = shlex.split(srun)[-2]  # bash -c '…' &
    assert "--nproc_per_node=8" in inner and '--node_rank="$SLURM_NODEID"' in inner
    assert "--rdzv_backend=c10d" in inner and '--nnodes="$SLURM_NNODES"' in inner
    tail = '-m clmtune.backend.worker "$RUN_DIR" ${RESUME:+--resume "$RESUME"}'
    assert inner.rstrip().endswith(tail)
    prepare = re.search(r'RESUME="\$\((.*)\)"', script).group(1)
    assert shlex.split(prepare)[1:4] == ["-m", "clmtune.backend.tools.export_job", "prepare"]
    assert done.stdout.count("\n") > 20


def test_export_job_bad_time_is_one_line(tmp_path, tiny_assets):
    config = _config(tmp_path, tiny_assets)
    for bad in ("4h", "99:99:99", "1:60", "2-12:60", "1-2:30:75", "12:00:00\n"):
        done = clmtune("export-job", str(config), "--slurm", "--time", bad, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (bad, done.stderr)
        assert "--time" in done.stderr and "HH:MM:SS" in done.stderr


def test_slurm_time_forms():
    from clmtune.backend.errors import UsageError
    from clmtune.backend.tools.export_job import check_time

    for good in ("90", "30:00", "12:00:00", "100:00:00", "2-12", "2-12:30", "2-12:30:15",
                 "4:05:09", "59:59"):
        assert check_time(good) == good
    for bad in ("99:99:99", "00:60:00", "00:00:60", "1:60", "2-1:60", "2-1:00:60", "1:2:3:4",
                "1-", "-1", "", "1h"):
        with pytest.raises(UsageError, match="--time"):
            check_time(bad)


def test_export_job_name_and_partition_are_safe_for_sbatch(tmp_path, tiny_assets):
    from clmtune.backend.tools.export_job import slurm_script

    config = _config(tmp_path, tiny_assets)
    odd = config.with_name("my run ü$(x).toml")
    config.rename(odd)
    script = slurm_script(odd, tmp_path / "run", partition="gpu,h100")
    names = re.findall(r"^#SBATCH --job-name=(.*)$", script, re.M)
    assert names == ["clmtune-my-run----x-"]
    assert _directives(script)["partition"] == "gpu,h100"
    done = clmtune("export-job", str(odd), "--slurm", "--partition", "my part", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--partition 'my part'" in done.stderr


def _completed_run(run_dir: Path, config: Path, step: int) -> None:
    """A run folder as a finished `clmtune train` leaves it (what plan_run reads)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(config.read_text())
    write_json_atomic(run_dir / "run.json", {"status": "completed", "global_step": step})
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_export_job_refuses_a_run_folder_holding_a_completed_run(tmp_path, tiny_assets,
                                                                   capsys):
    # No --run-dir: ./runs/STEM, where an earlier run of the same file already completed.
    # The job's prepare step would refuse it (after the queue): refused now, exit 2, no script.
    from tests.test_cli import run_cli

    config = _config(tmp_path, tiny_assets, max_steps=8)
    run_dir = tmp_path / "runs" / "tiny"
    _completed_run(run_dir, config, step=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        code, out, err = run_cli(capsys, "export-job", str(config), "--slurm")
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert f"{run_dir}: holds a completed run (step 8)" in err
        assert "pass --run-dir NEW for a new run, or raise [training] max_steps in tiny.toml" \
            in err
        with pytest.raises(Exception, match="complete"):  # what the job itself would do
            export_job.prepare(config, run_dir, nodes=1, procs_per_node=1)
        code, out, err = run_cli(capsys, "export-job", str(config), "--slurm", "--run-dir",
                                 "runs/new")
        assert code == 0 and out.startswith("#!/bin/bash") and err == ""
        # A run running there now (this job's own, say) only warns: the script still comes.
        write_json_atomic(run_dir / "run.json", {"status": "running", "pid": os.getpid(),
                                                 "host": socket.gethostname(),
                                                 "start_time": time.time()})
        code, out, err = run_cli(capsys, "export-job", str(config), "--slurm")
        assert code == 0 and out.startswith("#!/bin/bash"), err
        assert err.startswith("clmtune: warning: ") and err.count("\n") == 1
        assert "a run is running there now" in err


def test_prepare_fresh_then_after_a_killed_attempt(tmp_path, tiny_assets, monkeypatch):
    config = _config(tmp_path, tiny_assets)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert export_job.prepare(config, run_dir, nodes=2, procs_per_node=4) is None
    frozen = load_config(run_dir / "config.toml")
    assert frozen.launch == {"nproc_per_node": 4, "nnodes": 2}
    info = read_run_json(run_dir)
    assert info["status"] == "running" and info["world_size"] == 8
    assert info["slurm_job_id"] == "4242"
    # The node died (no final record); Slurm requeues the same job: that attempt is over.
    assert export_job.prepare(config, run_dir, nodes=2, procs_per_node=4) is None
    info = read_run_json(run_dir)
    assert info["status"] == "running" and info["attempts"][-1]["status"] == "failed"
    # Another job's live-looking record is left alone: refused, not overwritten.
    write_json_atomic(run_dir / "run.json", {**info, "slurm_job_id": "1", "host": "elsewhere"})
    with pytest.raises(Exception, match="running"):
        export_job.prepare(config, run_dir, nodes=2, procs_per_node=4)


# ------------------------------------------------------------------ FSDP, 2 processes


def test_fsdp_settings_reach_training_arguments(tiny_assets, tmp_path):
    from clmtune.backend.train import build_training_arguments

    cfg = make_tiny_config(tiny_assets, fsdp=True,
                           fsdp_config={"transformer_layer_cls_to_wrap": ["GPT2Block"]})
    args = build_training_arguments(cfg, tmp_path, has_validation=True)
    assert args.fsdp and args.fsdp_plugin_args is not None
    assert args.fsdp_plugin_args["transformer_cls_names_to_wrap"] == "GPT2Block"


def test_rdzv_endpoint_is_a_launch_setting():
    cfg = RunConfig(launch={"nnodes": 2, "rdzv_endpoint": "h:1"})
    assert cfg.settings.launch.rdzv_endpoint == "h:1" and cfg.settings.launch.distributed


# ------------------------------------------------------------------ the sbatch script, for real

FAKE_SRUN = """#!/bin/sh
# srun on a one-node allocation: drop the options, run the task as node 0
while [ $# -gt 0 ]; do case "$1" in --*) shift;; *) break;; esac; done
SLURM_NODEID=0 exec "$@"
"""
FAKE_SCONTROL = """#!/bin/sh
case "$1" in
  show) echo 127.0.0.1 ;;
  requeue) echo "requeue $2" >> "$FAKE_SLURM_LOG" ;;
esac
"""


MAX_STEPS = 60


@pytest.mark.timeout(300)
def test_sbatch_script_fsdp_two_processes_usr1_saves_and_requeues(tmp_path, tiny_assets,
                                                                    monkeypatch):
    """The generated script under a fake srun/scontrol (one node, two CPU processes under
    torchrun with a real c10d rendezvous, [training] fsdp = true): USR1 before the "time
    limit" → both ranks save one checkpoint, the run is stopped, the job requeued; the next
    attempt's prepare picks that checkpoint. (One run for both: they are the slow part.)"""
    import os
    import signal
    import socket
    import subprocess

    import torch

    from tests.run_helpers import DRILL_HOOKS, wait_for

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    with socket.socket() as sock:  # a job id whose rendezvous port (29500 + id % 1000) is free
        job = next(j for j in range(4000 + os.getpid() % 997, 6000)
                   if sock.connect_ex(("127.0.0.1", 29500 + j % 1000)) != 0)  # fmt: skip
    # Room after the pause: rank 0 looks at stop.request at most every 0.2 s, and on an idle
    # machine eight tiny steps take less than that (the stop then lands on the last step).
    config = _config(tmp_path, tiny_assets, max_steps=MAX_STEPS, save_steps=MAX_STEPS,
                     eval_strategy="no", logging_steps=1, fsdp=True)  # fmt: skip
    run_dir = tmp_path / "shared" / "run"
    script = tmp_path / "job.sh"
    # "2 GPUs per node" is 2 processes; here they are CPU processes (gloo).
    script.write_text(export_job.slurm_script(config, run_dir, nodes=1, gpus_per_node=2))
    env = cli_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SLURM_JOB_ID=str(job),
                  SLURM_NNODES="1", SLURM_JOB_NODELIST="localhost", OMP_NUM_THREADS="1",
                  FAKE_SLURM_LOG=str(tmp_path / "slurm.log"), CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS,
                  DRILL_PAUSE_AT="2", CLMTUNE_STOP_SYNC_STEPS="2")  # fmt: skip
    with open(tmp_path / "job.out", "w") as out:
        proc = subprocess.Popen(["bash", str(script)], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait_for(lambda: (run_dir / "drill.paused").exists() or proc.poll() is not None,
                     240, "the worker to reach step 2")  # fmt: skip
            assert proc.poll() is None, (tmp_path / "job.out").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGUSR1)  # what Slurm sends 120 s before the limit
            assert proc.wait(timeout=200) == 0, (tmp_path / "job.out").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    summary = read_run(run_dir)
    assert summary.status == "stopped" and 2 <= summary.global_step < MAX_STEPS  # early
    checkpoint = run_dir / f"checkpoint-{summary.global_step}"
    assert (checkpoint / ".clmtune-complete").is_file()
    assert read_run_json(run_dir)["world_size"] == 2
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    warnings = [e for e in events_of(run_dir) if e["type"] == "warning"]
    if not torch.cuda.is_available():  # accelerate shards only on GPUs: the run says so
        assert any(w.get("code") == "fsdp_ignored" for w in warnings), json.dumps(warnings)
    assert (tmp_path / "slurm.log").read_text().split() == ["requeue", str(job)]
    assert read_run_json(run_dir)["slurm_job_id"] == str(job)
    monkeypatch.setenv("SLURM_JOB_ID", str(job))  # the requeued job's first step
    assert export_job.prepare(config, run_dir, nodes=1, procs_per_node=2) == checkpoint.resolve()


def test_worker_treats_sigusr1_as_a_safe_stop():
    import os
    import signal

    from clmtune.backend.callback import StopControl
    from clmtune.backend.worker import SignalState

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                                             signal.SIGHUP)}  # fmt: skip
    stop = StopControl()
    try:
        SignalState(stop).install()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.reason == "SIGUSR1"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
