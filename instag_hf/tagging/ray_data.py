"""Tagging on Ray Data, for more than one machine.

The same ``Tagger`` runs as a callable class on a pool of Ray actors (one backend,
one engine, per actor; ``num_gpus`` per actor for vLLM), over Arrow batches, and
adds exactly the columns and statuses of the ``datasets`` path. Every actor shares
the request cache only if ``cache_dir`` is on storage all nodes see; otherwise each
node caches its own answers.

    import ray, instag_hf
    from instag_hf.tagging.ray_data import tag_ray
    tagged = tag_ray(ray.data.read_parquet("s3://.../sft/"), instag_hf.Tagger(backend="vllm"),
                     actors=8, num_gpus_per_actor=1)
"""

from __future__ import annotations

import pyarrow as pa

from .. import schema
from .tagger import Tagger


class RayTagger:
    """``map_batches`` callable class: builds its ``Tagger`` once per actor from the config."""

    def __init__(self, tagger_state: dict):
        self.tagger = Tagger.__new__(Tagger)
        self.tagger.__setstate__(tagger_state)

    def __call__(self, batch: pa.Table) -> pa.Table:
        kept = batch.drop_columns([c for c in batch.column_names if c in schema.TAG_FEATURES])
        out = self.tagger(kept.to_pydict())
        for name, typ in schema.TAG_ARROW_TYPES.items():
            kept = kept.append_column(pa.field(name, typ), pa.array(out[name], type=typ))
        return kept


def tag_ray(ray_dataset, tagger: Tagger, actors: int = 1, num_gpus_per_actor: float = 0,
            num_cpus_per_actor: float | None = None, batch_size: int = 256):
    """A lazy Ray ``Dataset`` with the tag columns added.

    Rows keep their order where ``ray_dataset``'s own ``DataContext`` preserves order
    (``execution_options.preserve_order``, as :func:`tag_dataset_with_ray` sets it);
    no global Ray setting is changed.
    """
    if actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    kwargs = {}
    if num_gpus_per_actor:
        kwargs["num_gpus"] = num_gpus_per_actor
    if num_cpus_per_actor is not None:
        kwargs["num_cpus"] = num_cpus_per_actor
    return ray_dataset.map_batches(
        RayTagger, fn_constructor_kwargs={"tagger_state": tagger.__getstate__()}, batch_format="pyarrow",
        batch_size=batch_size, concurrency=actors, **kwargs,
    )


def tag_dataset_with_ray(dataset, tagger: Tagger, **kwargs):
    """Tag a ``datasets.Dataset`` on Ray and bring the result back as a ``datasets.Dataset``."""
    import ray
    import ray.data
    from datasets import Dataset, Features
    from datasets.table import InMemoryTable

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    # rows must come back in order; a Ray dataset keeps a copy of the context it was made under
    ordered = ray.data.DataContext.get_current().copy()
    ordered.execution_options.preserve_order = True
    # from Arrow batches, not ray.data.from_huggingface: that looks the dataset up on the Hub
    # by name, and for a local dataset walks the working folder looking for its files
    batches = list(dataset.with_format("arrow").iter(batch_size=max(1, kwargs.get("batch_size", 256))))
    with ray.data.DataContext.current(ordered):
        source = ray.data.from_arrow(batches or [dataset.data.table.slice(0, 0)])
    tagged = tag_ray(source, tagger, **kwargs)
    table = pa.concat_tables(ray.get(tagged.to_arrow_refs()))
    kept = {k: v for k, v in dataset.features.items() if k not in schema.TAG_FEATURES}
    features = Features({**kept, **schema.TAG_FEATURES})
    return Dataset(InMemoryTable(table.select(list(features)))).cast(features)
