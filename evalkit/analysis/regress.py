"""The CI gate: does a candidate record score significantly worse than a reference record?

Models are matched by branch name for family members (E3B..E7B) and by abbr for baselines; scores
are matched by dataset. Each pair is compared with `evalkit.analysis.stats.compare` (paired on common item
ids: exact McNemar; otherwise a two-proportion or binomial test), and the p-values are
Holm-corrected across all pairs, so rerun noise over a dozen datasets does not trip the gate.

The gate fails on:
- a drop: the candidate is lower by more than `tolerance` points, with a Holm-adjusted p < alpha;
- a new inversion: a significant monotonicity inversion in the candidate (a larger branch below a
  smaller one, see `evalkit.analysis.monotonic`) that is not significant in the reference;
- a missing score: a (model, dataset) the reference has and the candidate lacks, as when a task
  crashed (`allow_missing` turns this off, for a candidate run on purpose on fewer datasets);
- nothing tested: no pair could be tested (n unknown on both sides), so the gate would vouch for
  nothing.
With `cascade_budget`, each record's confidence cascade at that cost (a fraction of its last branch's
compute; `evalkit.analysis.cascade_summary.cascade_scores`: out-of-sample per-item outcomes) is one more
model, `cascade@<budget>`, compared per dataset like any other score and Holm-corrected with them. A
budget asked for where neither record has signals is an error; where only the reference has them, the
cascade's scores count as missing from the candidate.
Pairs that cannot be tested never fail on their own; they are reported as untested. A reference and
candidate that are one run (the same file, or the same run_id and content) are refused as bad input
(exit 2): the gate would vouch for a candidate it never saw.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tabulate import tabulate

from evalkit.analysis.cascade import MAX_BUDGET
from evalkit.analysis.cascade_summary import cascade_scores
from evalkit.analysis.monotonic import Inversion, find_inversions
from evalkit.analysis.stats import Comparison, compare, format_p, holm
from evalkit.catalog.datasets import title
from evalkit.errors import EvalkitError
from evalkit.records.results import ResultsRecord, Score, load_record

DEFAULT_TOLERANCE = 1.0
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Row:
    model: str  # branch name or baseline abbr
    dataset: str
    reference: float
    candidate: float
    comparison: Comparison
    p_adjusted: float | None
    verdict: str  # "FAIL" | "better" | "ok" | "untested"

    @property
    def label(self) -> str:
        return f"{self.model} {title(self.dataset)}"


@dataclass(frozen=True)
class RegressResult:
    rows: tuple[Row, ...]
    new_inversions: tuple[Inversion, ...]
    missing: tuple[tuple[str, str], ...]  # (model, dataset) the reference scores and the candidate does not
    added: tuple[str, ...]  # models or scores only the candidate has (never a failure)
    tolerance: float
    alpha: float
    allow_missing: bool = False

    @property
    def drops(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict == "FAIL")

    @property
    def tested(self) -> int:
        return sum(r.verdict != "untested" for r in self.rows)

    @property
    def failures(self) -> list[str]:
        out = []
        if self.drops:
            out.append(f"{len(self.drops)} significant drops beyond {self.tolerance:.2f} points")
        if self.new_inversions:
            out.append(f"{len(self.new_inversions)} new significant inversions")
        if self.missing and not self.allow_missing:
            out.append(f"{len(self.missing)} reference scores missing from the candidate (--allow-missing to accept)")
        if not self.tested:
            out.append(
                "no score could be tested (n unknown on both sides; give the reference n with "
                "`import-table --n DATASET=N` or per-item outcomes)"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        counts = f"{self.tested} of {len(self.rows)} scores tested, α = {self.alpha}, Holm"
        if self.passed:
            return (
                f"PASS: no significant drop beyond {self.tolerance:.2f} points and no new significant "
                f"inversion ({counts})"
            )
        return f"FAIL: {'; '.join(self.failures)} ({counts})"

    def table(self) -> str:
        rows = [
            [
                r.model,
                title(r.dataset),
                f"{r.reference:.2f}",
                f"{r.candidate:.2f}",
                f"{r.comparison.delta:+.2f}",
                _ci(r.comparison),
                format_p(r.p_adjusted),
                r.comparison.method,
                r.verdict,
            ]
            for r in self.rows
        ]
        headers = ["model", "dataset", "reference", "candidate", "Δ", "95% CI", "p (Holm)", "test", "verdict"]
        parts = [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)]
        for inv in self.new_inversions:
            parts.append(
                f"new inversion: {title(inv.dataset)}: {inv.to} ({inv.to_value:.2f}) below {inv.from_} "
                f"({inv.from_value:.2f}), p (Holm) = {format_p(inv.p_value)}"
            )
        if self.missing:
            parts.append("missing from the candidate: " + ", ".join(f"{m} {d}" for m, d in self.missing))
        if self.added:
            parts.append("only in the candidate (not compared): " + ", ".join(self.added))
        parts.append(self.summary())
        return "\n".join(parts)

    def junit_xml(self) -> str:
        missing = [] if self.allow_missing else list(self.missing)
        suite = ET.Element(
            "testsuite",
            name="evalkit.regress",
            tests=str(len(self.rows) + 1 + len(missing)),
            failures=str(len(self.drops) + bool(self.new_inversions) + len(missing)),
            errors="0",
        )
        for model, dataset in missing:
            case = ET.SubElement(suite, "testcase", classname=f"evalkit.regress.{model}", name=dataset)
            text = _missing_message(model, dataset)
            ET.SubElement(case, "failure", message=text, type="missing").text = text
        for r in self.rows:
            case = ET.SubElement(suite, "testcase", classname=f"evalkit.regress.{r.model}", name=r.dataset)
            if r.verdict == "FAIL":
                ET.SubElement(case, "failure", message=_drop_message(r), type="drop").text = _drop_message(r)
            elif r.verdict == "untested":
                ET.SubElement(case, "skipped", message="n unknown; the difference cannot be tested")
        mono = ET.SubElement(suite, "testcase", classname="evalkit.regress", name="monotonicity")
        if self.new_inversions:
            text = "; ".join(_inversion_message(i) for i in self.new_inversions)
            ET.SubElement(mono, "failure", message=text, type="inversion").text = text
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def github_annotations(self) -> list[str]:
        """Workflow commands: ::error for each drop and new inversion, ::warning for untested drops."""
        out = [f"::error title={_prop('evalkit regress: ' + r.label)}::{_msg(_drop_message(r))}" for r in self.drops]
        out += [
            f"::error title={_prop('evalkit regress: new inversion')}::{_msg(_inversion_message(i))}"
            for i in self.new_inversions
        ]
        if not self.allow_missing:
            out += [
                f"::error title={_prop('evalkit regress: missing score')}::{_msg(_missing_message(m, d))}"
                for m, d in self.missing
            ]
        out += [
            f"::warning title={_prop('evalkit regress: ' + r.label)}::"
            f"{_msg(f'down {-r.comparison.delta:.2f} points but n is unknown, so it was not tested')}"
            for r in self.rows
            if r.verdict == "untested" and r.comparison.delta < -self.tolerance
        ]
        return out


def regress(
    reference: str | Path | ResultsRecord,
    candidate: str | Path | ResultsRecord,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    allow_missing: bool = False,
    cascade_budget: float | None = None,
) -> RegressResult:
    """Compare a candidate record with a reference record; see the module docstring for the rule."""
    if not (tolerance >= 0 and math.isfinite(tolerance)) or not 0 < alpha < 1:
        raise EvalkitError(f"--tolerance must be a number >= 0 and --alpha in (0, 1); got {tolerance} and {alpha}")
    if cascade_budget is not None and not (math.isfinite(cascade_budget) and 0 < cascade_budget <= MAX_BUDGET):
        raise EvalkitError(
            f"--cascade-budget must be a fraction of the last branch's compute in (0, {MAX_BUDGET}], e.g. 0.8; "
            f"got {cascade_budget}"
        )
    ref = reference if isinstance(reference, ResultsRecord) else load_record(reference)
    cand = candidate if isinstance(candidate, ResultsRecord) else load_record(candidate)
    _refuse_same_run(reference, candidate, ref, cand)
    ref_keys, cand_keys = _keys(ref), _keys(cand)
    pairs: list[Any] = []
    missing: list[Any] = []
    if cascade_budget is not None:
        pairs, missing = _cascade_pairs(ref, cand, cascade_budget)
    for key, ref_abbr in ref_keys.items():
        for s in ref.scores:
            if s.model != ref_abbr:
                continue
            c = cand.score(cand_keys[key], s.dataset) if key in cand_keys else None
            if c is None:
                missing.append((key, s.dataset))
            else:
                pairs.append((key, s, c, compare(s, c)))
    if not pairs:
        raise EvalkitError(
            "the reference and candidate records share no (model, dataset) score; match branch "
            "names (E3B..) or baseline abbrs between them"
        )
    adjusted = holm([p[3].p_value for p in pairs])
    rows = tuple(
        Row(key, s.dataset, s.value, c.value, comp, adj, _verdict(comp, adj, tolerance, alpha))
        for (key, s, c, comp), adj in zip(pairs, adjusted, strict=True)
    )
    compared = {(key, s.dataset) for key, s, _, _ in pairs}
    added = sorted(set(cand_keys) - set(ref_keys)) + sorted(
        f"{key} {s.dataset}"
        for key, abbr in cand_keys.items()
        if key in ref_keys
        for s in cand.scores
        if s.model == abbr and (key, s.dataset) not in compared
    )
    return RegressResult(
        rows, _new_inversions(ref, cand, alpha), tuple(missing), tuple(added), tolerance, alpha, allow_missing
    )


def _cascade_pairs(
    ref: ResultsRecord, cand: ResultsRecord, budget: float
) -> tuple[list[tuple[str, Score, Score, Comparison]], list[tuple[str, str]]]:
    """The cascade at `budget` in both records, paired by dataset: (pairs, missing from the candidate)."""
    key = f"cascade@{budget:g}"
    ref_scores, cand_scores = cascade_scores(ref, budget), cascade_scores(cand, budget)
    if not ref_scores and not cand_scores:
        raise EvalkitError(
            "--cascade-budget needs confidence signals on per-item outcomes of a family's branches, and neither "
            "record has them; rerun with this evalkit (schema version 2) or leave the flag out"
        )
    pairs = [(key, s, cand_scores[d], compare(s, cand_scores[d])) for d, s in ref_scores.items() if d in cand_scores]
    return pairs, [(key, d) for d in ref_scores if d not in cand_scores]


def _refuse_same_run(
    reference: str | Path | ResultsRecord,
    candidate: str | Path | ResultsRecord,
    ref: ResultsRecord,
    cand: ResultsRecord,
) -> None:
    """A run compared with itself (one file twice, or a copy: the same run_id and content) is refused as
    bad input, not passed and not failed: it tests nothing, so a pass would vouch for a candidate the gate
    never saw, and a failure would report a regression that does not exist. It is almost always CI wiring
    (the candidate path pointing at the reference)."""
    paths = [p for p in (reference, candidate) if not isinstance(p, ResultsRecord)]
    same_file = len(paths) == 2 and os.path.samefile(paths[0], paths[1])
    if not same_file and not (ref.run_id == cand.run_id and ref == cand):
        return
    how = f"the same file, {reference}" if same_file else f"the same content under run_id {ref.run_id!r}"
    raise EvalkitError(
        f"the reference and the candidate are one run ({how}); comparing a run with itself tests nothing, "
        "so the gate neither passes nor fails it: point --candidate at the new run's results.json"
    )


def _keys(record: ResultsRecord) -> dict[str, str]:
    """match key -> abbr: the branch name for family members, the abbr otherwise."""
    out: dict[str, str] = {}
    for m in record.models:
        key = m.branch if m.family is not None and m.branch is not None else m.abbr
        if key in out:
            raise EvalkitError(
                f"record {record.run_id} has two models matched as {key!r} ({out[key]}, {m.abbr}); "
                "regress compares one family per record"
            )
        out[key] = m.abbr
    return out


def _verdict(c: Comparison, p: float | None, tolerance: float, alpha: float) -> str:
    if p is None:
        return "untested"
    if p < alpha and c.delta < -tolerance:
        return "FAIL"
    if p < alpha and c.delta > tolerance:
        return "better"
    return "ok"


def _new_inversions(ref: ResultsRecord, cand: ResultsRecord, alpha: float) -> tuple[Inversion, ...]:
    known = {(i.dataset, i.from_, i.to) for i in find_inversions(ref, alpha=alpha) if i.significant}
    return tuple(
        i for i in find_inversions(cand, alpha=alpha) if i.significant and (i.dataset, i.from_, i.to) not in known
    )


def _ci(c: Comparison) -> str:
    return "n/a" if c.ci is None else f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]"


def _drop_message(r: Row) -> str:
    return (
        f"{r.label} dropped {-r.comparison.delta:.2f} points ({r.reference:.2f} -> {r.candidate:.2f}; "
        f"95% CI {_ci(r.comparison)}; p (Holm) {format_p(r.p_adjusted)}; {r.comparison.method})"
    )


def _missing_message(model: str, dataset: str) -> str:
    return f"{model} {dataset}: in the reference, missing from the candidate"


def _inversion_message(i: Inversion) -> str:
    return (
        f"{title(i.dataset)}: {i.to} scores {i.to_value:.2f}, below {i.from_} at {i.from_value:.2f} "
        f"(p (Holm) {format_p(i.p_value)})"
    )


def _msg(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _msg(text).replace(":", "%3A").replace(",", "%2C")
