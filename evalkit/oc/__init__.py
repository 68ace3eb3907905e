"""OpenCompass stage: the glue between evalkit and OpenCompass 0.5.

Owns the model wrapper OpenCompass instantiates per branch (`model`), the model configs (`model_configs`),
what the stock-CLI config files under opencompass_configs/ build from the environment (`stock`), the
suites as OpenCompass dataset configs (`suites`), the embedded fixture data (`fixtures`), reading
OpenCompass's result files (`outcomes`, `collect`), the sandboxed code evaluators (`evaluators`) and
driving OpenCompass's tasks and runners (`driver`). It imports engine, sandbox, load, catalog and records.
"""
