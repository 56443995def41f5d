"""A strategy's pipeline declared once, below Dagster: stage specs (:mod:`.spec`), the primitives
they share with the walk-forward (:mod:`.primitives`) and the default pipeline (:mod:`.garch_gru`)."""

from pairs_assets.quant.pipeline.spec import (
    CheckDef,
    Partition,
    Pipeline,
    PipelineError,
    StageOutput,
    StageRun,
    StageSpec,
)

__all__ = ["CheckDef", "Partition", "Pipeline", "PipelineError", "StageOutput", "StageRun", "StageSpec"]
