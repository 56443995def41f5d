"""A strategy's pipeline as data: an ordered tuple of stage specs, below Dagster.

A :class:`StageSpec` says what one daily stage is — its name, the upstream stages it reads, the
history window it reads (a function of the strategy), how one partition is computed, its checks as
plain data, the resources it needs, its kinds and description. A :class:`Pipeline` is an ordered,
validated tuple of them. Two consumers read the same list: the Dagster layer generates one asset per
stage from it (:func:`pairs_assets.assets.stage_factory.stage_assets`: lookbacks, check specs, the
single-run backfill policy and the one-partition and range paths written once), and the walk-forward
(:func:`pairs_assets.quant.walkforward.replay.build_configs`) iterates its stages.

Nothing here imports Dagster: a stage's compute gets a :class:`StageRun` (the strategy, the
resources it declared, a log, the run's services) and returns a :class:`StageOutput` whose metadata
may hold the plain markers :class:`Md`, :class:`Json` and :class:`PathValue` (the factory turns them
into Dagster metadata values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pairs_assets.errors import PairsError

__all__ = [
    "CheckDef",
    "Json",
    "Md",
    "Partition",
    "PathValue",
    "Pipeline",
    "Replay",
    "PipelineError",
    "StageOutput",
    "StageRun",
    "StageSpec",
    "md_reasons",
    "md_table",
    "table_text",
]

#: The shared upstream of every stage (its own session's partition only; windows come from the store).
RAW_BARS = "raw_bars"


class PipelineError(PairsError, ValueError):
    """A pipeline that cannot be built: one line naming the pipeline, the stage and the field."""


# --- metadata markers (plain data; the Dagster layer converts them) --------------------------------
@dataclass(frozen=True)
class Md:
    """Markdown text."""

    text: str


@dataclass(frozen=True)
class Json:
    """A JSON-serialisable value."""

    value: Any


@dataclass(frozen=True)
class PathValue:
    """A file or folder path."""

    path: str


def table_text(frame: pd.DataFrame | None, columns: Sequence[str] | None = None, n: int = 10) -> str:
    """The first ``n`` rows as a Markdown table (floats to 4 significant digits); ``_(none)_`` if empty."""
    if frame is None or frame.empty:
        return "_(none)_"
    view = frame[list(columns)] if columns else frame
    view = view.head(n)
    header = "| " + " | ".join(map(str, view.columns)) + " |"
    rule = "|" + "|".join(["---"] * len(view.columns)) + "|"

    def fmt(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return "nan" if np.isnan(value) else f"{value:.4g}"
        if isinstance(value, pd.Timestamp):
            return str(value.date())
        return str(value)

    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in view.itertuples(index=False)]
    more = [f"\n_{len(frame) - n} more rows_"] if len(frame) > n else []
    return "\n".join([header, rule, *rows, *more])


def md_table(frame: pd.DataFrame | None, columns: Sequence[str] | None = None, n: int = 10) -> Md:
    """:func:`table_text` as a metadata marker."""
    return Md(table_text(frame, columns, n))


def reasons_text(reasons: Mapping[str, str]) -> str:
    if not reasons:
        return "_(none)_"
    return "| item | reason |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in sorted(reasons.items()))


def md_reasons(reasons: Mapping[str, str]) -> Md:
    """An item → reason table as a metadata marker."""
    return Md(reasons_text(reasons))


class FormationParams(Protocol):
    """What the stage factory and the range path read of a strategy's parameters (a
    :class:`~pairs_assets.quant.strategy.Strategy`, a plugin's params): its formation calendar and how
    far back a window ending at a formation session reaches from an as-of session."""

    @property
    def reselect_every(self) -> int: ...

    @property
    def formation_phase(self) -> int: ...

    def reach(self, window: int) -> int: ...


# --- what a stage is ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckDef:
    """One asset check of a stage: its name, what it asserts, whether a failure blocks downstream."""

    name: str
    description: str
    blocking: bool


@dataclass(frozen=True)
class StageOutput:
    """One partition's result: the stored ``value`` (None for a stage that stores nothing), its
    metadata, and the arguments its check evaluator is called with (``check_args``)."""

    value: Any
    metadata: dict
    check_args: tuple = ()


@dataclass(frozen=True)
class Partition:
    """What a stage computes one partition (or one formation session of a range) from.

    ``windows`` reads the partition's windows (a :class:`pairs_assets.assets.common.WindowReader`);
    ``inputs`` are the upstream stages' outputs by stage name. In a range run ``symbols`` are the
    sector's symbols, ``formation`` the partition's formation session and ``formations`` every
    formation session of the sector's part of the range (a range hook may batch over them).
    """

    windows: Any
    date: str
    sector: str
    inputs: Mapping[str, Any]
    symbols: tuple[str, ...] = ()
    formation: pd.Timestamp | None = None
    formations: tuple[pd.Timestamp, ...] = ()


@dataclass
class StageRun:
    """What a running stage may use besides its inputs: the strategy, the resources it declared
    (by name), a log (``info``/``warning``), the run id, its own previous output of a partition
    (``previous(partition_key)``), a guard to call before an irreversible write (``ensure_open(what)``:
    raises when the run is no longer open) and an atomic file write (``write_bytes(path, payload)``)."""

    strategy: Any
    resources: Mapping[str, Any]
    log: Any
    run_id: str
    previous: Callable[[str], Any] = field(default=lambda _key: None)
    ensure_open: Callable[[str], None] = field(default=lambda _what: None)
    write_bytes: Callable[[str, bytes], None] | None = None
    #: the run's tags a stage records beside its outputs (the strategies file's ``pairs/strategies*``)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Replay:
    """The walk-forward's view of one sector (:func:`pairs_assets.quant.walkforward.replay.build_configs`):
    its closes panel (a :class:`~pairs_assets.quant.pipeline.primitives.SectorPanel`) and symbols, the
    strategy, the cointegration screen of the formation sessions (``screen[row]``), the cumulated
    gap rows (``gaps``: a window ``[a, b]`` is complete when ``gaps[b + 1] == gaps[a]``), the GRU
    stage's stand-in (``models_for``, or None: no GRU stage) and each stage's outputs so far by
    formation session (``outputs[stage][formation]``; a formation a stage skipped is absent)."""

    panel: Any
    symbols: list[str]
    strategy: Any
    screen: Any
    gaps: Any
    models_for: Callable | None = None
    #: the batched GARCH fit (:func:`pairs_assets.quant.stages.garch_stage_many`; a test swaps its estimator)
    garch_many: Callable | None = None
    outputs: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    """One daily stage.

    Attributes
    ----------
    name : str
        The asset name (under the strategy's key prefix, if any).
    inputs : tuple of str
        Upstream stages of the same pipeline whose outputs it reads (same partition). Every stage
        also depends on ``raw_bars`` of its own session.
    window : callable
        ``window(strategy)``: the longest window it reads, in sessions, ending at its formation
        session (or at its as-of session when ``window_ends_at_as_of``).
    window_detail : callable
        ``window_detail(strategy)``: which windows, in words (the asset's definition metadata).
    compute : callable
        ``compute(run, partition) -> StageOutput``: one partition (the one-partition path; the
        range path calls it once per formation session, or per session when ``per_session``).
    description, kinds
        The asset's description and kinds.
    checks : tuple of CheckDef
        Its asset checks.
    evaluate_checks : str, optional
        ``"module:function"`` evaluating the checks (called with ``StageOutput.check_args``); it
        lives in the orchestration layer and returns its check results.
    resources : tuple of str
        Resource keys its compute reads from ``run.resources`` (besides the market data store,
        the bar source, the strategy and the home every stage reads).
    compute_range : callable, optional
        ``compute_range(run, partitions) -> (outputs, counts)``: a range run's formation sessions
        at once (a batched fit, a vectorised screen); ``counts`` go to the range's metadata.
    range_summary : callable, optional
        ``range_summary(run, values_by_key, counts) -> dict``: the range's metadata counts.
    after_partition : callable, optional
        ``after_partition(run, date, sector, value)`` for every as-of session computed (a write
        beside the stored output).
    per_session : bool
        A range run computes each as-of session (not once per formation session).
    window_ends_at_as_of : bool
        Its longest window ends at the as-of session (the range verifies that history).
    stores_output : bool
        False: it writes its own output (the asset yields a materialization, no stored value).
    replay : callable, optional
        ``replay(r: Replay, formations) -> {formation: output}``: the stage in the walk-forward, for
        a block of formation sessions at once (windows sliced from the panel); None: the walk-forward
        builds it itself (the trading config, one per as-of session).
    """

    name: str
    inputs: tuple[str, ...]
    window: Callable[[Any], int]
    window_detail: Callable[[Any], str]
    compute: Callable[[StageRun, Partition], StageOutput]
    description: str
    kinds: frozenset[str]
    checks: tuple[CheckDef, ...] = ()
    evaluate_checks: str | None = None
    resources: tuple[str, ...] = ()
    compute_range: Callable[[StageRun, list[Partition]], tuple[list[StageOutput], dict]] | None = None
    range_summary: Callable[[StageRun, dict, dict], dict] | None = None
    after_partition: Callable[[StageRun, str, str, Any], None] | None = None
    per_session: bool = False
    window_ends_at_as_of: bool = False
    stores_output: bool = True
    replay: Callable[[Replay, list], dict] | None = None

    def history_sessions(self, strategy: FormationParams) -> int:
        """The sessions of history the stage reads up to its as-of session (its declared lookback)."""
        n = self.window(strategy)
        return n if self.window_ends_at_as_of else strategy.reach(n)


class Pipeline:
    """An ordered tuple of stage specs, validated: unique names, inputs that name an earlier stage
    (so no cycle), checks with evaluators. ``name`` names it in errors."""

    def __init__(self, name: str, stages: Sequence[StageSpec]):
        self.name = name
        self.stages: tuple[StageSpec, ...] = tuple(stages)
        if not self.stages:
            raise PipelineError(f"pipeline {name!r}: no stages")
        seen: set[str] = set()
        names = {s.name for s in self.stages}
        for stage in self.stages:
            if stage.name in seen:
                raise PipelineError(f"pipeline {name!r}: stage {stage.name!r} is declared twice")
            if stage.name == RAW_BARS:
                raise PipelineError(f"pipeline {name!r}: stage name {RAW_BARS!r} is the shared bars asset")
            for upstream in stage.inputs:
                if upstream == stage.name:
                    raise PipelineError(f"pipeline {name!r}: stage {stage.name!r} reads itself (a cycle)")
                if upstream not in names:
                    raise PipelineError(f"pipeline {name!r}: stage {stage.name!r} input {upstream!r} is no stage")
                if upstream not in seen:
                    raise PipelineError(
                        f"pipeline {name!r}: stage {stage.name!r} input {upstream!r} is declared after it "
                        "(a cycle, or stages out of order)"
                    )
            if stage.checks and stage.evaluate_checks is None:
                raise PipelineError(f"pipeline {name!r}: stage {stage.name!r} has checks but no evaluate_checks")
            if len({c.name for c in stage.checks}) != len(stage.checks):
                raise PipelineError(f"pipeline {name!r}: stage {stage.name!r} declares a check name twice")
            seen.add(stage.name)

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, name: str) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise PipelineError(f"pipeline {self.name!r}: no stage {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {' → '.join(self.names)})"
