"""Catalog stage: what evalkit knows by name, as pure data (no torch, no OpenCompass).

Owns the datasets and the suites that group them (`datasets`), the baselines a family is compared with
(`baselines`) and the published model shapes the benchmark builds with random weights (`shapes`).
It imports only errors; every other stage may read it.
"""
