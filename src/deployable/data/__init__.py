"""Data sources -> :class:`Dataset` (named splits, label names, slice columns, content fingerprints)."""

from deployable.data.dataset import Dataset, Split
from deployable.data.sources import load_dataset

__all__ = ["Dataset", "Split", "load_dataset"]
