"""datamill synth: synthetic math/code data with verified solutions (plain Python, no Beam).

Modules: ``backends`` (transformers / OpenAI-compatible / vLLM generation), ``math`` (answer
extraction, equivalence, voting), ``code`` + ``sandbox`` (executing candidate programs),
``coverage`` (pass@k and its power-law fit), ``decontam`` (n-gram overlap), ``dedup``,
``prompts`` (templates with ids), ``tasks`` (per-batch logic), ``tiny_model`` (offline test
models). The Beam pipeline is ``pipelines/jobs/synth.py``; see ``docs/synth.md``.
"""
