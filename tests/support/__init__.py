"""What the tests and benchmarks need and users do not: a misbehaving OpenAI-compatible server and
Batch API on loopback (``server``, ``batch_api``), a fake ``HfApi`` (``fake_hub``), and synthetic
tagged corpora (``synthetic``, ``synthetic_queries``). Importable as ``support`` with ``tests/`` on
the path (pytest puts it there; benchmarks add it), e.g. ``PYTHONPATH=tests python -m support.server``.
"""
