"""The MLflow dataset source of a model's training bars: MLflow's own for a path or URL, else by name.

Imported only where a run logs its training data (it imports MLflow), so importing the definitions
stays free of MLflow; the class is defined once here, not on every logged run.
"""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.exceptions import MlflowException


class PairsDatasetSource(DatasetSource):
    """A source MLflow has no resolver for (``embedded:skfolio-sp500``, a bar-source name), recorded by
    name (``{"uri": source}``)."""

    def __init__(self, uri: str) -> None:
        self._uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "pairs_assets"

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError(f"load {self._uri} with the pairs_assets bar sources")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> DatasetSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self._uri}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> DatasetSource:
        return cls(source_dict["uri"])


def dataset_source(source: str) -> DatasetSource:
    """MLflow's own source for a path or URL; otherwise a :class:`PairsDatasetSource` naming ``source``."""
    try:
        return resolve_dataset_source(source)
    except MlflowException:
        return PairsDatasetSource(source)
