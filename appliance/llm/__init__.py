"""The language model runtime: one interface (:mod:`appliance.llm.base`), two backends.

``llama_cpp`` runs a GGUF model in this process with per-session KV reuse and continuous
batching; ``remote`` talks to an OpenAI-compatible server. See ``base.py`` for the contract.
"""
