"""report.html: one self-contained file, checked as text and opened in headless Chromium.

The browser tests need Debian's `chromium` (`.ci/run` installs it when missing); where it is absent they
are skipped with that reason. They read the DOM Chromium dumps after the page's script has run: a view is
chosen through the page's own link format (`#dataset=...&pair=...`), which drives the same code as the
controls.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from _synth import synth_record

from evalkit.records.estimator import score_value
from evalkit.records.results import Item, ModelInfo, ResultsRecord, Score, save_record
from evalkit.reporting.build import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def _with_predictions(record: ResultsRecord, run_dir: Path, dataset: str = "arc_c") -> Path:
    """Save `record` as a run's results.json, with OpenCompass-style prediction files for one dataset."""
    path = save_record(record, run_dir / "results.json")
    for score in record.scores:
        if score.dataset != dataset or not score.items:
            continue
        preds = {
            item.id: {
                "origin_prompt": [{"role": "HUMAN", "prompt": f"Question {item.id}: which option? </script> <b>"}],
                "prediction": f"ANSWER: {'B' if item.score else 'C'} from {score.model}",
                "gold": "B",
            }
            for item in score.items
        }
        out = run_dir / "predictions" / score.model / "ARC-c.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(preds), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    record = replace(synth_record(n_items=40), run_id="html")
    report([_with_predictions(record, tmp / "run")], out=tmp / "report")
    return tmp / "report" / "report.html"


def test_the_page_is_self_contained(built):
    text = built.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "@import" not in text and "url(http" not in text
    assert text.count("<svg") >= 2  # plots inline, not linked
    assert '<img src="plots/' not in text
    assert "<table>" in text  # the report's tables
    data = json.loads(re.search(r'<script type="application/json" id="item-data">(.*?)</script>', text, re.S)[1])
    arc = next(d for d in data["datasets"] if d["key"] == "arc_c")
    first = arc["items"][0]
    assert first["prompt"].startswith("HUMAN: Question")
    assert "</script>" in first["prompt"]  # kept as text; the page escapes every "<" inside its script element
    assert first["answers"]["ruyi-7b-e3b"]["prediction"].endswith("from ruyi-7b-e3b")
    assert data["families"] == [[f"ruyi-7b-e{n}b" for n in range(3, 8)]]


def test_a_record_field_beyond_the_outcome_is_shown_only_when_present(built):
    text = built.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="item-data">(.*?)</script>', text, re.S)[1])
    extra = data["extra_fields"]
    for ds in data["datasets"]:
        for item in ds["items"]:
            for answer in item["answers"].values():
                assert set(answer) <= {"score", "prediction", *extra}


def _dom(page: Path, view: str = "") -> tuple[str, str]:
    """The DOM after the page's script ran, and Chromium's log (console messages included)."""
    url = page.resolve().as_uri() + (f"#{view}" if view else "")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _status(dom: str) -> str:
    return re.search(r'id="status">([^<]*)<', dom)[1]


def _console_errors(log: str, dom: str) -> list[str]:
    lines = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    box = re.search(r'<div id="js-errors"[^>]*>([^<]*)</div>', dom)
    return lines + ([box[1]] if box and box[1].strip() else [])


@needs_chromium
def test_in_chromium_tables_render_items_list_and_a_filter_changes_the_list(built):
    dom, log = _dom(built, "dataset=arc_c")
    assert _console_errors(log, dom) == []
    assert 'data-browser-ready="1"' in dom
    assert dom.count("<table>") >= 5 and "<td>" in dom  # the report's tables, rendered
    rows = dom.count('<tr class="item">')
    assert rows == 40 and _status(dom).startswith("ARC-c: 40 of 40 items match")
    assert "from ruyi-7b-e7b" in dom  # predictions are listed beside each item

    narrowed, log = _dom(built, "dataset=arc_c&pair=smaller-right")
    assert _console_errors(log, narrowed) == []
    kept = narrowed.count('<tr class="item">')
    assert 0 < kept < rows
    assert _status(narrowed).startswith(f"ARC-c: {kept} of 40 items match")

    one, _ = _dom(built, "dataset=arc_c&model=ruyi-7b-e3b&outcome=right")
    right = sum(item.score for item in _items(built, "ruyi-7b-e3b", "arc_c"))
    assert one.count('<tr class="item">') == right
    searched, _ = _dom(built, "dataset=arc_c&search=C%2F3%3A")  # "C/3:" (any case) is in item arc_c/3 only
    assert searched.count('<tr class="item">') == 1


def _items(page: Path, model: str, dataset: str) -> list[Item]:
    data = json.loads(re.search(r'id="item-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S)[1])
    ds = next(d for d in data["datasets"] if d["key"] == dataset)
    return [Item(id=i["id"], score=i["answers"][model]["score"]) for i in ds["items"]]


@needs_chromium
def test_in_chromium_a_14000_item_run_shows_one_page_at_a_time(tmp_path):
    """The size the page is built for: a full MMLU run (14,042 items) across five models."""
    n = 14_042
    models = tuple(
        ModelInfo(
            abbr=f"m{j}", name=f"M{j}", role="ours", family="f", branch=f"E{j}B", exit_layer=j, num_params=j * 10**9
        )
        for j in range(1, 6)
    )
    scores = []
    for j, m in enumerate(models, 1):
        items = tuple(Item(id=f"s{i % 57}/{i}", score=float((i * j) % 3 == 0), group=f"s{i % 57}") for i in range(n))
        value = score_value("mmlu", [i.score for i in items], [i.group for i in items])
        scores.append(Score(m.abbr, "mmlu", "accuracy", value, n, items))
    record = ResultsRecord("big", "measured", models, tuple(scores))
    path = save_record(record, tmp_path / "run" / "results.json")
    report([path], out=tmp_path / "report")
    dom, log = _dom(tmp_path / "report" / "report.html", "dataset=mmlu")
    assert _console_errors(log, dom) == []
    assert dom.count('<tr class="item">') == 50
    assert _status(dom).startswith(f"MMLU: {n} of {n} items match")
    last, _ = _dom(tmp_path / "report" / "report.html", "dataset=mmlu&page=281")  # the last of 281 pages
    assert last.count('<tr class="item">') == n - 280 * 50 == 42
    assert "page 281 of 281" in _status(last)


def test_names_from_a_record_stay_text(tmp_path):
    """An imported table's model name is data, not markup, in the report and in the browser."""
    record = synth_record(n_items=5)
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    models = tuple(
        replace(m, name=hostile) if m.role == "baseline" and i == 0 else m for i, m in enumerate(record.models)
    )
    path = save_record(replace(record, models=models, run_id="hostile"), tmp_path / "run" / "results.json")
    report([path], out=tmp_path / "report")
    text = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # shown in the tables as the text it is
    assert text.count("<details><summary>Per dataset</summary>") >= 1  # the report's own sections still fold


def test_the_item_browser_reads_no_prediction_file_outside_its_run(tmp_path):
    """A record's model names and groups are data: `../../secret` must not pull another file into the page."""
    from dataclasses import replace as _replace

    from evalkit.records.results import load_record
    from evalkit.reporting.items import _texts

    small = load_record(Path(__file__).resolve().parents[1] / "data" / "records" / "small.json")
    hostile = "../../../secret"
    record = _replace(
        small,
        models=tuple(_replace(m, abbr=hostile) if m.abbr == "qwen2.5-7b-instruct" else m for m in small.models),
        scores=tuple(_replace(s, model=hostile) if s.model == "qwen2.5-7b-instruct" else s for s in small.scores),
    )
    secret = tmp_path / "secret" / "lukaemon_mmlu_algebra.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"0": {"origin_prompt": "API_KEY=hunter2", "prediction": "x", "gold": "y"}}))
    run = tmp_path / "a" / "b"
    (run / "predictions").mkdir(parents=True)
    assert (run / "predictions" / hostile / "lukaemon_mmlu_algebra.json").resolve() == secret.resolve()
    assert not any("hunter2" in str(v) for v in _texts([(run / "results.json", record)]).values())


def test_a_prompts_empty_turns_are_left_out():
    from evalkit.reporting.items import _prompt_text

    turns = [{"role": "HUMAN", "prompt": "2 + 2?"}, {"role": "SYSTEM", "prompt": ""}, {"role": "BOT", "prompt": None}]
    assert _prompt_text(turns) == "HUMAN: 2 + 2?"
