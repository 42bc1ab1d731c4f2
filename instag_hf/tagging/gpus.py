"""Data parallel tagging over the GPUs of one machine: one engine per GPU.

``datasets`` runs ``map(num_proc=N, with_rank=True)`` in a pool of daemonic worker
processes; each worker pins its engine to GPU ``rank`` before it starts. Workers
must be spawned (a forked CUDA context is unusable), and a daemonic process may
not start children, so the engine runs in-process (vLLM's
``VLLM_ENABLE_V1_MULTIPROCESSING=0``) and each worker drives exactly one GPU. For
tensor parallel engines or more than one machine use Ray (:mod:`instag_hf.tagging.ray_data`).

    python -c "import instag_hf; from instag_hf.tagging.gpus import tag_on_gpus; \\
               tag_on_gpus(ds, instag_hf.Tagger(backend='vllm'))"
"""

from __future__ import annotations


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def tag_on_gpus(dataset, tagger, num_gpus: int | None = None, **map_kwargs):
    """``tagger.map(dataset)`` with one worker process per GPU (spawned, ranks = GPU ids).

    The spawn start method holds only while the workers start; the program's own is restored."""
    import multiprocess

    num_gpus = gpu_count() if num_gpus is None else num_gpus
    if num_gpus < 1:
        raise RuntimeError("no CUDA GPU is visible; use tagger.map(dataset) on this machine")
    if tagger.configured_backend.gpus_per_engine() > 1:
        raise ValueError("one engine per GPU needs tensor_parallel_size=1; for tensor parallel engines use Ray")
    if num_gpus == 1:
        return tagger.map(dataset, **map_kwargs)
    previous = multiprocess.get_start_method(allow_none=True)
    multiprocess.set_start_method("spawn", force=True)  # datasets' worker pool reads the global method
    try:
        return tagger.map(dataset, num_proc=num_gpus, with_rank=True, **map_kwargs)
    finally:
        multiprocess.set_start_method(previous, force=True)
