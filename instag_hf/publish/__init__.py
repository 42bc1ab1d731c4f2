"""Publishing: dataset cards, ``push_to_hub`` and the Gradio Space.

``instag_hf.push_to_hub("me/tagged", tagged, tagger=tagger, subsets={...}, mapping=mapping)``
uploads the tagged dataset and its companion configs (``tag_vocabulary``,
``tag_mapping``, selected subsets) with a generated card and its plots in one
commit; ``dry_run="folder"`` writes the same files locally instead.
:func:`write_dataset_card` writes only the card and plots (no data files).
"""

from __future__ import annotations

from .bundle import (
                   MAPPING_CONFIG,
                   VOCABULARY_CONFIG,
                   Publication,
                   write_dataset_card,
                   write_publication,
)
from .card import InstagDatasetCard
from .card_data import (
                   ConfigInfo,
                   MetricsRow,
                   NormalizationInfo,
                   PlotInfo,
                   SelectionInfo,
                   size_category,
)
from .hub import (
                   MissingTokenError,
                   PublishError,
                   PushResult,
                   UploadError,
                   push_space,
                   push_to_hub,
                   redact,
                   upload_publication,
)

__all__ = [
    "push_to_hub", "push_space", "upload_publication", "write_publication", "write_dataset_card", "Publication",
    "PushResult", "InstagDatasetCard", "ConfigInfo", "MetricsRow", "NormalizationInfo", "SelectionInfo", "PlotInfo",
    "size_category", "PublishError", "MissingTokenError", "UploadError", "redact", "VOCABULARY_CONFIG",
    "MAPPING_CONFIG",
]
