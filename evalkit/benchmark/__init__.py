"""Benchmark stage: `evalkit bench`, throughput, latency, memory and MBU per branch.

Owns what a run measures and how (`config`: `BenchConfig`, the `Protocol` and the device-sized
defaults), clocks and MBU (`measure`), conditions compared in interleaved rounds with bootstrap
intervals (`interleave`, the one way anything here is compared), plausibility flags (`plausible`), the
machine's state (`machine`), progress on stderr (`progress`), the two decode paths it times
(`runners`), the shared-trunk comparisons (`trunk`), the end-to-end comparison with stock OpenCompass
(`e2e`) and the command itself (`main`). It uses load and
engine directly, and the run and reporting stages only through their public names (`evalkit.evaluation`,
`evalkit.reporting`). Nothing it imports at the top needs OpenCompass, so it runs from a source checkout
on a GPU machine without it.
"""
