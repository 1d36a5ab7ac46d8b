"""The event file reader: live files, torn lines, several readers, the reducer on resume."""

from __future__ import annotations

import json
import math
import threading

import pytest

from clmtune.backend.events import (
    EventTailer,
    EventWriter,
    make_event,
    read_events,
)
from clmtune.backend.rundir.state import RunState as RunView
from clmtune.backend.rundir.state import fold as reduce_events


def test_file_that_appears_later_is_read_from_its_start(tmp_path):
    path = tmp_path / "events.jsonl"
    tailer = EventTailer(path)
    assert tailer.read_new() == []
    with EventWriter(path) as writer:
        writer.emit(make_event("phase", phase="loading_model", progress=None, detail=""))
    events = tailer.read_new()
    assert [e["type"] for e in events] == ["phase"]
    assert tailer.read_new() == []


def test_torn_last_line_is_held_back_then_completed(tmp_path):
    path = tmp_path / "events.jsonl"
    first = json.dumps(make_event("train_log", step=1, loss=2.0))
    second = json.dumps(make_event("train_log", step=2, loss=1.5))
    path.write_text(first + "\n" + second[:17])
    tailer = EventTailer(path)
    assert [e["step"] for e in tailer.read_new()] == [1]
    with open(path, "a") as fh:
        fh.write(second[17:] + "\n")
    assert [e["step"] for e in tailer.read_new()] == [2]
    assert tailer.bad_lines == 0


def test_torn_last_line_of_a_killed_writer_is_skipped_by_the_final_read(tmp_path):
    path = tmp_path / "events.jsonl"
    good = json.dumps(make_event("train_log", step=1, loss=2.0))
    path.write_text(good + "\n" + '{"v":1,"type":"train_log","st')
    events = read_events(path)
    assert [e["step"] for e in events] == [1]
    view = reduce_events(events)
    assert view.train_loss == [2.0]


def test_garbage_line_in_the_middle_is_counted_not_fatal(tmp_path):
    path = tmp_path / "events.jsonl"
    a = json.dumps(make_event("train_log", step=1, loss=2.0))
    b = json.dumps(make_event("train_log", step=2, loss=1.0))
    path.write_text(f"{a}\nnot json\n[1, 2]\n{b}\n")
    tailer = EventTailer(path)
    assert [e["step"] for e in tailer.read_new()] == [1, 2]
    assert tailer.bad_lines == 2


def test_two_readers_on_one_live_file_each_see_every_event_once(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    readers = [EventTailer(path), EventTailer(path)]
    seen: list[list[int]] = [[], []]
    total = 400
    done = threading.Event()

    def write() -> None:
        for step in range(total):
            writer.emit(make_event("train_log", step=step, loss=float(step)))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        for reader, steps in zip(readers, seen, strict=True):
            steps.extend(e["step"] for e in reader.read_new())
    thread.join()
    for reader, steps in zip(readers, seen, strict=True):
        steps.extend(e["step"] for e in reader.read_final())
        assert steps == list(range(total))
        assert reader.bad_lines == 0
    writer.close()


def test_writer_keeps_lines_whole_with_two_threads(tmp_path):
    # The worker writes from the training thread and the memory thread at once.
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    payload = "x" * 5000

    def write(kind: str) -> None:
        for i in range(200):
            writer.emit(make_event("log", message=f"{kind}{i}{payload}"))

    threads = [threading.Thread(target=write, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    tailer = EventTailer(path)
    events = tailer.read_final()
    assert len(events) == 400
    assert tailer.bad_lines == 0


def test_nan_loss_is_written_as_strict_json_and_flagged(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit(make_event("train_log", step=3, loss=float("nan")))
    raw = path.read_text()
    json.loads(raw, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    view = reduce_events(read_events(path))
    assert view.nan_loss_steps == [3]


def test_resumed_run_drops_the_stale_tail_of_the_curve():
    view = RunView()
    view.apply(make_event("run_started", max_steps=10, resume_step=None))
    for step in range(1, 8):
        view.apply(make_event("train_log", step=step, loss=10.0 - step, epoch=step / 10,
                              tokens_per_second=1000.0 * step))
    view.apply(make_event("run_started", max_steps=10, resume_step=4))
    assert view.train_steps == [1, 2, 3, 4]
    # Nothing of steps 5-7 is shown for now: no speed yet, the epoch of step 4.
    assert view.tokens_per_second is None and view.epoch == 0.4
    view.apply(make_event("train_log", step=5, loss=1.0))
    assert view.train_steps[-1] == 5 and view.train_loss[-1] == 1.0


def test_a_resume_forgets_the_evaluations_of_the_history_it_left():
    view = RunView()
    view.apply(make_event("run_started", max_steps=10, resume_step=None))
    for step, loss in ((2, 3.0), (6, 5.0)):
        view.apply(make_event("eval", step=step, metrics={"eval_loss": loss, "perplexity": 9.0
                                                          if step == 2 else 99.0}))
    view.apply(make_event("run_started", max_steps=10, resume_step=4))
    # The eval at step 6 was left behind: the last evaluation is the one at step 2.
    assert (view.last_eval_loss, view.perplexity, view.last_eval["step"]) == (3.0, 9.0, 2)
    view.apply(make_event("run_started", max_steps=10, resume_step=1))
    assert view.last_eval == {} and view.perplexity is None
    # An eval without a perplexity (a plain Hugging Face folder's log history): exp(loss).
    view.apply(make_event("eval", step=2, metrics={"eval_loss": 2.2}))
    assert view.perplexity == pytest.approx(math.exp(2.2)) == view.best_perplexity


def test_perplexity_is_defined_once_and_overflows_to_inf():
    import math

    from clmtune.backend.events import perplexity

    assert perplexity(None) is None
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(math.e**2)
    assert perplexity(1e6) == math.inf


def test_read_json_is_none_for_missing_torn_or_unreadable_files(tmp_path):
    from clmtune.backend.events import read_json

    good = tmp_path / "good.json"
    good.write_text('{"global_step": 4}', encoding="utf-8")
    torn = tmp_path / "torn.json"
    torn.write_text('{"global_st', encoding="utf-8")
    assert read_json(good) == {"global_step": 4}
    assert read_json(torn) is None
    assert read_json(tmp_path / "missing.json") is None
    assert read_json(tmp_path) is None  # a folder


# ------------------------------------------------------------------ the one reducer


def _at(t: float, type_: str, **fields) -> dict:
    event = make_event(type_, **fields)
    event["time"] = t
    return event


def test_attempts_count_every_worker_and_skip_the_gap_between_them():
    events = [
        _at(100, "phase", phase="loading_model", progress=None, detail=""),
        _at(105, "run_started", max_steps=10, resume_step=None),
        _at(106, "phase", phase="training", progress=None, detail=""),
        _at(110, "train_log", step=4, loss=2.0, eta_seconds=9.0),
        # killed here (no run_finished); resumed an hour later from checkpoint 3
        _at(3700, "phase", phase="loading_model", progress=None, detail=""),
        _at(3705, "run_started", max_steps=10, resume_step=3, resumed_from="ckpt-3"),
        _at(3720, "train_log", step=10, loss=1.0, eta_seconds=0.0),
        _at(3722, "run_finished", status="completed", error=None, hint=None),
    ]
    state = reduce_events(events)
    assert len(state.attempts) == 2
    assert state.start_time == 100 and state.end_time == 3722
    assert state.elapsed(now=9999) == (110 - 100) + (3722 - 3700)
    assert state.resumed_from == "ckpt-3"
    assert state.eta() is None  # finished


def test_a_worker_err_line_before_a_resume_does_not_open_the_attempt_early():
    # The dashboard's tailer forwards worker.err lines as log events without a time; a
    # resumed worker prints to stderr before its first event. That line must not start
    # attempt 2 at attempt 1's end (the live view then counted the gap: 2m01s vs 1m32s).
    first = [
        _at(100, "run_started", max_steps=10, resume_step=None),
        _at(110, "train_log", step=4, loss=2.0, eta_seconds=9.0),
        _at(160, "run_finished", status="stopped", error=None, hint=None),
    ]
    second = [
        _at(1000, "phase", phase="loading_model", progress=None, detail=""),
        _at(1005, "run_started", max_steps=10, resume_step=4, resumed_from="ckpt-4"),
        _at(1030, "run_finished", status="completed", error=None, hint=None),
    ]
    live = reduce_events(first)
    live.apply({"type": "log", "source": "worker.err", "message": "Loading weights: 100%"})
    live.apply_all(second)
    assert live.elapsed(now=5000) == reduce_events(first + second).elapsed(now=5000) == 90
    assert [a.start for a in live.attempts] == [100, 1000]


def test_a_crashed_run_has_no_eta_and_a_fixed_elapsed_time():
    events = [
        _at(100, "run_started", max_steps=10, resume_step=None),
        _at(110, "train_log", step=4, loss=2.0, eta_seconds=9.0),
    ]
    state = reduce_events(events)
    assert state.eta("running") == 9.0
    assert state.elapsed(now=500, status="running") == 400
    assert state.status_with("crashed") == "crashed"
    assert state.eta("crashed") is None
    assert state.elapsed(now=500, status="crashed") == 10
    assert state.elapsed(now=9000, status="crashed") == 10


def test_which_loss_is_shown_is_part_of_the_state():
    state = reduce_events([_at(1, "eval", step=5, metrics={"eval_loss": 3.0})])
    assert (state.loss.value, state.loss.kind) == (3.0, "last eval")
    state.apply(_at(2, "final_metrics", split="train", metrics={"train_loss": 2.5}))
    assert (state.loss.value, state.loss.kind) == (2.5, "mean train loss")
    state.apply(_at(3, "train_log", step=6, loss=2.0))
    assert (state.loss.value, state.loss.kind) == (2.0, "last train log")
    assert state.loss.label == "loss (last train log)"


def test_nan_loss_is_flagged_with_the_workers_hint_and_cleared_by_a_resume_before_it():
    state = reduce_events([
        _at(1, "run_started", max_steps=10, resume_step=None),
        _at(2, "train_log", step=3, loss=2.0),
        _at(3, "train_log", step=4, loss="nan"),
        _at(3, "warning", code="nan_loss", step=4, message="lower the learning rate"),
    ])
    assert state.nan_flag == "loss not finite since step 4: lower the learning rate"
    state.apply(_at(4, "run_started", max_steps=10, resume_step=3))
    assert state.nan_flag is None


def test_a_plain_hugging_face_folder_folds_to_a_completed_state_without_controls():
    from clmtune.backend.rundir.hf_events import fold_trainer_state

    trainer_state = {"global_step": 20, "max_steps": 20, "log_history": [
        {"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0}, {"step": 20, "eval_loss": 2.2}]}
    state = fold_trainer_state(trainer_state, {"train": {"train_loss": 2.6}}, time=50.0)
    assert state.status == "completed" and state.phase == "finished"
    assert not state.controllable and state.step == 20
    assert state.train_steps == [10, 20] and state.best_eval_loss == 2.2
    assert state.eta("completed") is None


def test_the_final_evaluate_at_the_last_periodic_eval_step_is_one_point():
    # eval_steps 20 with max_steps 120: Trainer evaluates at 120, then the final evaluate()
    # again at 120; the history showed [..., 100, 120, 120].
    events = [make_event("eval", step=s, metrics={"eval_loss": 5.0 - s / 100})
              for s in (20, 40, 40)]
    events[-1]["metrics"]["eval_loss"] = 4.55  # the final one wins
    state = reduce_events(events)
    assert list(state.eval_steps) == [20, 40]
    assert list(state.eval_loss) == [4.8, 4.55]
    assert [row["step"] for row in state.eval_rows] == [20, 40]
    assert len(state.eval_accuracy) == len(state.eval_times) == 2
    # The worker marks the final one: with load_best_model_at_end it measured the best
    # checkpoint's weights (5.1), not step 40's (4.6): the curve keeps step 40's point.
    events[-1]["metrics"]["eval_loss"] = 5.1
    events[-1]["final"] = True
    state = reduce_events(events)
    assert list(state.eval_steps) == [20, 40] and list(state.eval_loss) == [4.8, 4.6]
