"""The bundled sample: about 200 SFT samples written for this project (demos, tests)."""

from __future__ import annotations

from importlib import resources

from datasets import Dataset, load_dataset

SAMPLES = {"alpaca": "sample_alpaca.jsonl", "chat": "sample_chat.jsonl"}


def sample_path(name: str = "alpaca") -> str:
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose from {sorted(SAMPLES)}")
    return str(resources.files("instag_hf") / "data" / SAMPLES[name])


def load_sample(name: str = "alpaca") -> Dataset:
    """``"alpaca"`` (instruction/input/output/category) or ``"chat"`` (messages/category, many multi-turn)."""
    return load_dataset("json", data_files=sample_path(name), split="train")
