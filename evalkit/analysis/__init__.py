"""Analysis stage: what saved records say, with statistics.

Owns standard errors and paired comparisons (`stats`), how a record's models group into families and
baselines (`family_view`), monotonicity across a family's branches (`monotonic`), routing headroom
(`routing`) and the CI gate (`regress`). It reads records only: no model, no GPU; it imports records
and catalog.
"""
