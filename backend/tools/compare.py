"""Compare runs: the per-run table, any metric's curve, EMA smoothing and the settings diff.

Pure functions over run folders, shared by ``clmtune compare`` and the dashboard's
Compare screen. Every figure comes from the one reducer
(:mod:`clmtune.backend.rundir.state`) through :func:`~clmtune.backend.rundir.summary.read_run`
with full histories; nothing here reads events on its own. A plain Hugging Face
folder (only ``trainer_state.json``) folds through the same reducer; it has no frozen
``config.toml``, so every setting the other runs have shows as missing for it in the diff (as
for a run whose ``config.toml`` cannot be read: :func:`unreadable_settings` says which).

Light on purpose (the dashboard imports it): plain lists, no pandas, no
torch / transformers / textual; numpy (a dependency the dashboard's thinning uses too) is
imported only when a curve is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.events import perplexity as perplexity_of
from clmtune.backend.events import to_float

if TYPE_CHECKING:
    from clmtune.backend.rundir.state import RunState
    from clmtune.backend.rundir.summary import RunSummary

#: The x axes a curve can be drawn against.
X_AXES = ("step", "epoch", "time")
#: Metrics every run may have, in the picker's order; eval_* keys the runs logged follow.
CORE_METRICS = ("train_loss", "eval_loss", "perplexity", "learning_rate", "grad_norm",
                "tokens_per_second", "samples_per_second")  # fmt: skip
#: Names people type for the same curve.
ALIASES = {"loss": "train_loss", "lr": "learning_rate", "ppl": "perplexity",
           "throughput": "tokens_per_second"}  # fmt: skip
MAX_SMOOTHING = 0.99
#: Settings that say where a run is, not how it trained: never part of the diff.
NOT_SETTINGS = frozenset({"training.output_dir"})
#: The table's columns (``clmtune compare --csv`` header; other final metrics follow).
TABLE_COLUMNS = ("name", "path", "status", "steps", "runtime_s", "samples_per_second",
                 "final_train_loss", "best_eval_loss", "best_eval_step", "final_perplexity")


@dataclass
class ComparedRun:
    """One run as a comparison sees it: its summary and its fully folded state."""

    name: str
    path: Path
    summary: RunSummary
    state: RunState
    #: Curves already built, as arrays: (metric, x axis) → (events folded then, curve).
    curve_cache: dict[tuple[str, str], tuple[int, Curve]] = field(default_factory=dict,
                                                                 repr=False)

    @property
    def settings(self) -> dict[str, Any]:
        """The frozen ``config.toml`` (empty for a plain Hugging Face folder)."""
        return self.summary.settings


@dataclass
class Row:
    """One line of the comparison table."""

    name: str
    path: str
    status: str
    steps: int
    runtime_s: float | None
    samples_per_second: float | None
    final_train_loss: float | None
    best_eval_loss: float | None
    best_eval_step: int | None
    final_perplexity: float | None
    final: dict[str, float] = field(default_factory=dict)

    def cell(self, column: str) -> Any:
        """The value of a table column (a final metric by name when not a fixed column)."""
        if column in TABLE_COLUMNS:
            return getattr(self, column)
        return self.final.get(column)


@dataclass
class Curve:
    """One run's points of a metric: ``x[i]`` ↔ ``y[i]`` (x ascending as logged; arrays)."""

    name: str
    x: Sequence[float]
    y: Sequence[float]


# ------------------------------------------------------------------ reading


def load_run(path: Path, name: str | None = None) -> ComparedRun:
    """Read one run folder with full histories (one read of its files)."""
    from clmtune.backend.rundir.state import RunState
    from clmtune.backend.rundir.summary import read_run

    summary = read_run(Path(path), compact=False)
    state = summary.state if summary.state is not None else RunState()
    return ComparedRun(name=name or Path(path).name, path=Path(path), summary=summary,
                       state=state)


def load_runs(paths: Sequence[Path]) -> list[ComparedRun]:
    """Read each run; a name given twice gets its parent folder in front (names are keys)."""
    names = [Path(p).name for p in paths]
    runs = []
    for path, name in zip(paths, names, strict=True):
        if names.count(name) > 1:
            name = f"{Path(path).parent.name}/{name}"
        runs.append(load_run(path, name))
    return runs


# ------------------------------------------------------------------ the table


def final_metrics(state: RunState) -> dict[str, float]:
    """Every numeric final figure of a run: Trainer's final train/eval metrics, and the last
    train loss, last eval loss and perplexity when the run ended without them."""
    final: dict[str, float] = {}
    for split in ("train", "eval"):
        for key, value in (state.final_metrics.get(split) or {}).items():
            if isinstance(value, bool):
                continue
            # A count stays a whole number (train_samples 11326 in the CSV, not 11326.0).
            number = value if isinstance(value, int) else to_float(value)
            if number is not None:
                final[key] = number
    extra = {"loss": state.last_loss, "eval_loss": state.last_eval_loss,
             "perplexity": state.perplexity}  # fmt: skip
    for key, value in extra.items():
        if value is not None and key not in final:
            final[key] = value
    return final


def run_row(run: ComparedRun) -> Row:
    """The table row of one run."""
    state, summary = run.state, run.summary
    final = final_metrics(state)
    best = state.best_eval
    return Row(
        name=run.name, path=str(run.path), status=summary.status,
        steps=max(summary.global_step, state.step), runtime_s=summary.duration,
        samples_per_second=summary.samples_per_second, final_train_loss=state.last_loss,
        best_eval_loss=best[0] if best else None, best_eval_step=best[1] if best else None,
        final_perplexity=state.perplexity, final=final,
    )  # fmt: skip


def table(runs: Sequence[ComparedRun]) -> list[Row]:
    """One row per run, in the order given."""
    return [run_row(run) for run in runs]


def extra_columns(rows: Sequence[Row]) -> list[str]:
    """Final metrics beyond the fixed columns, in a stable order (the CSV's tail)."""
    shown = {"loss", "perplexity"}
    return sorted({key for row in rows for key in row.final if key not in shown})


def sort_rows(rows: Sequence[Row], column: str, *, reverse: bool = False) -> list[Row]:
    """Rows by a column; missing values last whichever the direction."""
    present = [r for r in rows if r.cell(column) is not None]
    missing = [r for r in rows if r.cell(column) is None]
    return sorted(present, key=lambda r: r.cell(column), reverse=reverse) + missing


# ------------------------------------------------------------------ curves


def metric_names(runs: Sequence[ComparedRun]) -> list[str]:
    """The metrics at least one run has points for: the core ones, then other eval keys."""
    found: list[str] = []
    for name in CORE_METRICS:
        if any(_has_points(run, name) for run in runs):
            found.append(name)
    others = {key for run in runs for row in run.state.eval_rows for key in row
              if key not in ("step", "epoch") and key not in found}  # fmt: skip
    return found + sorted(others)


def _has_points(run: ComparedRun, metric: str) -> bool:
    """Whether ``metric`` has points, without building its curve."""
    state = run.state
    sources = {"train_loss": state.train_loss, "eval_loss": state.eval_loss,
               "learning_rate": state.learning_rate, "grad_norm": state.grad_norm,
               "tokens_per_second": state.speed_tokens,
               "samples_per_second": state.speed_samples}  # fmt: skip
    if metric in sources:
        return any(map(math.isfinite, sources[metric]))
    return any(metric in row or (metric == "perplexity" and "eval_loss" in row)
               for row in state.eval_rows)


def canonical(metric: str) -> str:
    """``loss`` → ``train_loss`` and the like."""
    return ALIASES.get(metric, metric)


def need_metric(runs: Sequence[ComparedRun], metric: str) -> str:
    """``metric`` by its canonical name; a metric no run logged is a one-line UsageError."""
    from clmtune.backend.errors import UsageError

    name = canonical(metric)
    known = metric_names(runs)
    if name not in known and name not in CORE_METRICS:
        raise UsageError(f"--metric {metric}: no run logged it; one of {', '.join(known)}")
    return name


def curve_of(run: ComparedRun, metric: str, x_axis: str = "step") -> Curve:
    """The points of ``metric`` against ``x_axis`` (step, epoch or time in seconds since the
    run first started), as float64 numpy arrays. Points without an x (no epoch logged, a
    plain HF folder's time) are left out.

    Built once per run, metric and axis while the run's state does not change (a live
    run's next event rebuilds it): switching back to a curve costs nothing.
    """

    if x_axis not in X_AXES:
        raise ValueError(f"x axis {x_axis!r}: one of {', '.join(X_AXES)}")
    metric = canonical(metric)
    key, stamp = (metric, x_axis), run.state.events_folded
    cached = run.curve_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    curve = _curve_arrays(run, metric, x_axis)
    run.curve_cache[key] = (stamp, curve)
    return curve


def _curve_arrays(run: ComparedRun, metric: str, x_axis: str) -> Curve:
    state = run.state
    if metric == "train_loss":
        xs = {"step": state.train_steps, "epoch": state.train_epochs,
              "time": state.train_times}[x_axis]  # fmt: skip
        return _curve(run.name, xs, state.train_loss, x_axis, state)
    if metric in ("learning_rate", "grad_norm"):
        ys = state.learning_rate if metric == "learning_rate" else state.grad_norm
        return _curve(run.name, _x_of_steps(state, state.lr_steps, x_axis), ys, x_axis, state)
    if metric in ("tokens_per_second", "samples_per_second"):
        ys = state.speed_tokens if metric == "tokens_per_second" else state.speed_samples
        return _curve(run.name, _x_of_steps(state, state.speed_steps, x_axis), ys, x_axis,
                      state)
    if metric == "eval_loss":
        ys: Sequence[float] = state.eval_loss
    else:
        ys = [_eval_value(row, metric) for row in state.eval_rows]
    xs = {"step": state.eval_steps, "time": state.eval_times,
          "epoch": [to_float(row.get("epoch")) for row in state.eval_rows]}[x_axis]  # fmt: skip
    return _curve(run.name, [math.nan if v is None else v for v in xs], ys, x_axis, state)


def lower_is_better(metric: str) -> bool:
    """Losses and perplexity go down; accuracy and throughput go up."""
    metric = canonical(metric)
    return not ("accuracy" in metric or metric.endswith("per_second"))


def best_of(run: ComparedRun, metric: str) -> tuple[float, int] | None:
    """The best value of ``metric`` and its step (eval loss: the reducer's, final eval
    included; others: the best logged point, earliest step on a tie)."""
    metric = canonical(metric)
    if metric == "eval_loss":
        return run.state.best_eval
    curve = curve_of(run, metric, "step")
    pairs = [(y, int(x)) for x, y in zip(curve.x.tolist(), curve.y.tolist(), strict=False)
             if math.isfinite(y)]
    if not pairs:
        return None
    if lower_is_better(metric):
        return min(pairs, key=lambda p: (p[0], p[1]))
    return min(pairs, key=lambda p: (-p[0], p[1]))


def _eval_value(row: dict[str, Any], metric: str) -> float:
    value = row.get(metric)
    if value is None and metric == "perplexity":
        value = perplexity_of(row.get("eval_loss"))  # run_clm's exp(eval loss)
    return value if value is not None else math.nan


def _x_of_steps(state: RunState, steps: Sequence[float], x_axis: str) -> Sequence[float]:
    """x values for points logged by step: the step itself, or that train log's epoch/time
    (NaN when no train log has that step)."""
    if x_axis == "step":
        return steps
    import numpy as np

    known = np.asarray(state.train_steps, dtype=np.float64)
    values = np.asarray(state.train_epochs if x_axis == "epoch" else state.train_times,
                        dtype=np.float64)
    wanted = np.asarray(steps, dtype=np.float64)
    if known.size == 0:
        return np.full(wanted.size, np.nan)
    # Train logs are in step order (a resume drops the re-logged tail): search, not a dict.
    at = np.minimum(np.searchsorted(known, wanted), known.size - 1)
    return np.where(known[at] == wanted, values[at], np.nan)


def _curve(name: str, xs: Sequence[float], ys: Sequence[float], x_axis: str,
           state: RunState) -> Curve:
    import numpy as np

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x_axis == "time":
        start = state.start_time
        if start is None or state.source != "clmtune":
            return Curve(name, x[:0], y[:0])  # a plain HF folder has one time stamp, no clock
        x = x - start
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    if x_axis != "step":
        keep = np.isfinite(x)
        if not keep.all():
            x, y = x[keep], y[keep]
    return Curve(name, x, y)


def curves(runs: Sequence[ComparedRun], metric: str, x_axis: str = "step",
           smoothing: float = 0.0) -> list[Curve]:
    """One curve per run (smoothed when ``smoothing`` > 0); runs without points are empty."""
    out = []
    for run in runs:
        curve = curve_of(run, metric, x_axis)
        if smoothing > 0 and curve.y.size:
            curve = Curve(curve.name, curve.x, ema_array(curve.y, smoothing))
        out.append(curve)
    return out


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average debiased as TensorBoard does (a list; see :func:`ema_array`)."""
    return ema_array(values, weight).tolist()


def ema_array(values: Sequence[float] | Any, weight: float) -> Any:
    """Exponential moving average debiased as TensorBoard does, as a numpy array.

    ``s_t = w·s_{t-1} + (1-w)·x_t`` from ``s_0 = 0``, divided by ``1 - w^t`` so the first
    points are not pulled towards zero. Non-finite values pass through and neither move
    the average nor count in ``t``; a constant series comes back unchanged (no rounding
    drift). ``weight`` is 0 … 0.99.
    """
    # numpy (already a dependency: the dashboard thins curves with it) because the
    # recurrence in a Python loop costs ~40 ms per 100,000 points; as a doubling scan
    # (log2(n) vector passes) it costs ~3 ms.
    import numpy as np

    if not 0.0 <= weight <= MAX_SMOOTHING:
        raise ValueError(f"smoothing {weight}: between 0 and {MAX_SMOOTHING}")
    x = np.array(values, dtype=np.float64)  # a copy: the caller's (cached) points stay raw
    finite = np.isfinite(x)
    every = bool(finite.all())
    xs = x if every else x[finite]
    if weight == 0.0 or xs.size == 0 or xs.min() == xs.max():
        return x
    s = xs * (1.0 - weight)
    k, a = 1, weight
    while k < s.size and a > 1e-18:  # s_t += w^k · s_{t-k}, for k = 1, 2, 4, …
        s[k:] += a * s[:-k]
        k, a = 2 * k, a * a
    # 1 - w^t is 1.0 in floating point after a few thousand points: debias only those.
    m = min(s.size, int(math.log(1e-17) / math.log(weight)) + 1)
    s[:m] /= 1.0 - weight ** np.arange(1, m + 1, dtype=np.float64)
    if every:
        return s
    x[finite] = s
    return x


# ------------------------------------------------------------------ settings


def flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"learning_rate": 1e-4}}`` → ``{"training.learning_rate": 1e-4}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_diff(runs: Sequence[ComparedRun]) -> dict[str, dict[str, Any]]:
    """``section.key`` → ``{run name: value}`` for the keys whose values differ.

    A key a run does not set (``None``: missing) differs from one that sets it. A run without
    settings (a plain Hugging Face folder, an unreadable ``config.toml``) is missing every
    key, so next to a run with settings every key of those is listed: nothing says its
    values were the same. No run with settings: no keys at all.
    """
    flats = {run.name: flat_settings(run.settings) for run in runs}
    keys = sorted({key for flat in flats.values() for key in flat} - NOT_SETTINGS)
    diff: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = [flat.get(key) for flat in flats.values()]
        if any(v != values[0] or type(v) is not type(values[0]) for v in values[1:]):
            diff[key] = {name: flat.get(key) for name, flat in flats.items()}
    return diff


def setting_text(value: Any) -> str:
    """A setting's value as the settings tables show it: ``-`` when missing, ``20`` for
    a whole float (the frozen config.toml writes ``eval_steps = 20.0`` for a float field)."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def unreadable_settings(runs: Sequence[ComparedRun]) -> list[str]:
    """One line per run whose ``config.toml`` exists but cannot be read (its settings then
    show as missing; ``clmtune compare`` prints these as warnings)."""
    from clmtune.backend.rundir.layout import CONFIG_TOML

    lines = []
    for run in runs:
        path = run.path / CONFIG_TOML
        if run.settings or not path.exists():
            continue
        why = _toml_problem(path)
        if why is not None:
            lines.append(f"{run.name}: {path} could not be read ({why}); its settings show "
                         "as missing")
    return lines


def _toml_problem(path: Path) -> str | None:
    """Why ``path`` does not read as a settings file (the one-line reason ``clmtune check``
    gives), or None when it does."""
    from clmtune.backend.errors import SettingsError
    from clmtune.backend.settings.toml_io import read_toml

    try:
        read_toml(path)
    except SettingsError as exc:
        first = exc.errors[0] if exc.errors else exc
        return str(getattr(first, "message", first))
    return None


# ------------------------------------------------------------------ outputs


def to_json(runs: Sequence[ComparedRun], metric: str = "eval_loss") -> dict[str, Any]:
    """The object ``clmtune compare --json`` prints (see the README): ``best`` holds eval
    loss and ``metric`` when they were logged."""
    rows = table(runs)
    out_runs = []
    for run, row in zip(runs, rows, strict=True):
        best = {}
        for name in dict.fromkeys(("eval_loss", canonical(metric))):
            found = best_of(run, name)
            if found is not None:
                best[name] = {"value": found[0], "step": found[1]}
        out_runs.append({
            "name": row.name, "path": row.path, "status": row.status, "steps": row.steps,
            "final": dict(row.final), "best": best,
        })  # fmt: skip
    return {"runs": out_runs, "config_diff": config_diff(runs)}


def csv_table(rows: Sequence[Row], diff: dict[str, dict[str, Any]] | None = None
              ) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of ``clmtune compare --csv``: the table's columns, other final metrics,
    then one column per differing setting of ``diff`` (:func:`config_diff`; lists and tables
    as JSON). Missing values are empty cells."""
    diff = diff or {}
    metrics = list(TABLE_COLUMNS) + extra_columns(rows)
    body = [["" if row.cell(c) is None else row.cell(c) for c in metrics]
            + [_csv_setting(values.get(row.name)) for values in diff.values()]
            for row in rows]  # fmt: skip
    return metrics + list(diff), body


def _csv_setting(value: Any) -> Any:
    import json

    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else value
