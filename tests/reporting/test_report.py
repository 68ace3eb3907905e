"""The report: golden tables, its sections, the bench performance tables and the files it writes."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from _synth import BRANCHES, synth_record
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.bench import BenchRecord, BenchRow, Environment, Ratio, Stats, load_bench, save_bench
from evalkit.records.results import ModelInfo, ResultsRecord, Score, load_record, save_record
from evalkit.reporting.bench_tables import (
    CONSOLE_SPEED,
    CONSOLE_VRAM,
    REPORT_SPEED,
    REPORT_VRAM,
    speed_table,
    vram_table,
)
from evalkit.reporting.build import provenance_section, report, tables_section
from evalkit.reporting.perf import performance
from evalkit.reporting.plots import PlotQueue, pareto_front, pareto_plot
from evalkit.reporting.tables import named_table, row_average

HERE = Path(__file__).resolve().parents[1] / "data"
SMALL = HERE / "records" / "small.json"
GOLDEN = HERE / "golden"


@pytest.fixture
def small() -> ResultsRecord:
    return load_record(SMALL)


def test_tables_match_golden(small):
    assert tables_section(small) == (GOLDEN / "small_tables.md").read_text(encoding="utf-8")
    assert tables_section(small, stderr=True) == (GOLDEN / "small_tables_stderr.md").read_text(encoding="utf-8")


def test_suite_table_has_baselines_first_and_ours_in_bold(small):
    lines = named_table(small, "general").splitlines()
    assert lines[0].split("|")[1].strip() == "Model"
    assert [c.strip() for c in lines[0].split("|")[2:-1]] == ["MMLU", "ARC-c", "Avg"]
    assert lines[1].startswith("|:---") and ":-----:" in lines[1]  # pipe table, numbers centred
    assert lines[2].startswith("| Qwen2.5-7B-Instruct ")
    assert lines[3].startswith("| **AI-Flow-Ruyi-7B-E7B** ")  # only the largest branch in suite tables
    assert len(lines) == 4


def test_averages_are_the_mean_of_the_row_rounded_half_up(small):
    e5b = small.model("ruyi-7b-e5b")
    assert row_average(small, e5b, ["mmlu", "arc_c"]) == pytest.approx((62.5 + 82.03) / 2)
    row = next(line for line in named_table(small, "branches").splitlines() if "E5B" in line)
    assert row.rstrip().endswith("| 72.27 |")  # 72.265 -> 72.27


def test_missing_score_gives_dash_and_no_average(small):
    scores = [s for s in small.scores if not (s.model == "ruyi-7b-e3b" and s.dataset == "arc_c")]
    table = named_table(replace(small, scores=tuple(scores)), "branches")
    row = next(line for line in table.splitlines() if "E3B" in line)
    assert [c.strip() for c in row.split("|")[2:-1]] == ["25.00", "–", "–"]


def test_unknown_table_name_lists_valid_ones(small):
    with pytest.raises(Exception, match="valid tables are: general, code, stem, branches"):
        named_table(small, "maths")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The small record's report, built once for the tests that only read it."""
    return report([SMALL], tmp_path_factory.mktemp("built") / "r", stderr=True).parent


def test_report_writes_markdown_json_and_plots(built):
    tmp_path = built.parent
    text = (built / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# Evaluation report: small\n")
    assert "| small | measured | 1a2b3c4        | cpu      | float32" in text
    assert "Packages: evalkit 0.1.0, opencompass 0.5.4." in text
    assert (GOLDEN / "small_tables_stderr.md").read_text(encoding="utf-8") in text
    for section in ("## Monotonicity", "## Branches against baselines", "## Routing headroom"):
        assert section in text
    mono = json.loads((tmp_path / "r" / "monotonicity.json").read_text())
    assert mono["inversions"][0] | {"p_value": None, "p_raw": None} == {
        "family": "ruyi-7b",
        "dataset": "gsm8k",
        "from": "E5B",
        "to": "E7B",
        "from_value": 75.0,
        "to_value": 62.5,
        "delta": -12.5,
        "p_value": None,
        "p_raw": None,
        "significant": False,
        "method": "paired: exact McNemar, Holm",
    }
    plots = tmp_path / "r" / "plots"
    for key in ("avg", "mmlu", "arc_c", "humaneval", "gsm8k"):
        assert (plots / f"monotonicity_ruyi-7b_{key}.png").stat().st_size > 1000
        assert (plots / f"monotonicity_ruyi-7b_{key}.svg").read_text().startswith("<?xml")
    assert (plots / "agreement_ruyi-7b.png").is_file()
    assert "![Average](plots/monotonicity_ruyi-7b_avg.png)" in text


def test_report_is_deterministic(built, tmp_path):
    again = report([SMALL], tmp_path / "again", stderr=True)
    assert again.read_text() == (built / "report.md").read_text()
    svg = "plots/monotonicity_ruyi-7b_gsm8k.svg"
    assert (tmp_path / "again" / svg).read_bytes() == (built / svg).read_bytes()


def test_realistic_report_builds(tmp_path):
    """5 branches + 3 baselines, 13 datasets, 300 items each. The budget is 5 s; printed, not asserted."""
    rec = synth_record(n_items=300)
    save_record(rec, tmp_path / "big.json")
    start = time.perf_counter()
    path = report([tmp_path / "big.json"], tmp_path / "out", stderr=True)
    print(f"\nrealistic report built in {time.perf_counter() - start:.2f} s")
    text = path.read_text()
    assert text.count("| **AI-Flow-Ruyi-7B-E") == 5 * 3 + 3  # branch tables x3 suites, E7B in 3 suite tables
    assert len(list((tmp_path / "out" / "plots").glob("monotonicity_*.png"))) == 14


def test_provenance_lists_every_record(small):
    text = provenance_section([small, replace(small, run_id="other", kind="published")])
    assert "| small | measured  | 1a2b3c4" in text and "| other | published | 1a2b3c4" in text
    assert "Shared trunk" not in text  # neither record holds model configs


def test_provenance_says_which_models_ran_on_the_shared_trunk(small):
    from evalkit.records.provenance import RunProvenance

    branches = ["E3B", "E5B", "E7B"]
    models = [{"abbr": "qwen2.5-7b-instruct", "shared_trunk": False, "run_branches": []}] + [
        {"abbr": f"ruyi-7b-{b.lower()}", "shared_trunk": True, "run_branches": branches} for b in branches
    ]
    measured = replace(small, provenance=replace(small.provenance, configs=RunProvenance(models=tuple(models))))
    text = provenance_section([measured])
    assert (
        "Shared trunk: on for ruyi-7b-e3b, ruyi-7b-e5b, ruyi-7b-e7b; off for qwen2.5-7b-instruct. "
        "The branches on it were scored and decoded together; in fp32 its scores equal per-branch evaluation"
    ) in text  # small.json ran in float32
    half = replace(measured, provenance=replace(measured.provenance, dtype="bfloat16"))
    assert "in bf16 about 1 generation in 6 differs" in provenance_section([half])
    off = [dict(m, shared_trunk=False) for m in models]
    other = replace(measured, run_id="other", provenance=replace(small.provenance, configs=RunProvenance(models=off)))
    text = provenance_section([measured, other])
    assert "Shared trunk in small: on for ruyi-7b-e3b" in text
    assert "Shared trunk in other: off for every model." in text


def test_cli_report_default_out_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", str(SMALL)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "small" / "report.md").is_file()
    bad = CliRunner().invoke(main, ["report", str(HERE / "records" / "corrupt.json")])
    assert bad.exit_code == 2
    assert "error:" in bad.output and "not valid JSON" in bad.output and "Traceback" not in bad.output
    wrong = CliRunner().invoke(main, ["report", str(HERE / "records" / "not_results.json")])
    assert wrong.exit_code == 2 and "is not an evalkit results record" in wrong.output
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_bench_records_are_checked(tmp_path):
    with pytest.raises(EvalkitError, match="is not an evalkit bench record"):
        report([SMALL], tmp_path / "r", bench=[SMALL])
    with pytest.raises(EvalkitError, match="is not an evalkit bench record"):  # the right schema, no fields
        report([SMALL], tmp_path / "r", bench=[HERE / "records" / "not_results.json"])
    assert performance([], load_record(SMALL), tmp_path, PlotQueue()) == ""
    with pytest.raises(EvalkitError, match="does not exist"):  # before any work is done
        report([SMALL], tmp_path / "r", bench=[tmp_path / "nope.json"])
    assert not (tmp_path / "r").exists()


def _tables_have_device(text: str, label: str) -> int:
    """Every table in the performance section has the device label in the caption just above it."""
    lines = text[text.index("## Performance") :].splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and not lines[i - 1].startswith("|")]
    for i in starts:
        assert label in lines[i - 2], (lines[i - 2], lines[i])
    return len(starts)


def test_performance_from_a_real_cpu_bench(tiny_path, tmp_path):
    from evalkit import BenchConfig, bench

    _, bench_path = bench(
        BenchConfig(
            batch_sizes=(1,),
            prompt_len=8,
            gen_len=4,
            iterations=1,
            warmup=1,
            dtype="fp32",
            branches="E111K,E297K",
            out=str(tmp_path / "b"),
        )
    )
    fam = [
        ModelInfo(
            abbr=f"tiny-ruyi-{b.lower()}",
            name=f"tiny-ruyi-{b}",
            role="ours",
            family="tiny-ruyi",
            branch=b,
            exit_layer=e,
            num_params=p,
        )
        for b, e, p in (("E111K", 2, 242496), ("E297K", 7, 428096))
    ]
    scores = tuple(
        Score(model=m.abbr, dataset=d, metric="accuracy", value=v, n=100)
        for m, v in zip(fam, (20.0, 30.0), strict=True)
        for d in ("gsm8k", "mmlu")
    )
    results = ResultsRecord(run_id="tiny", kind="measured", models=tuple(fam), scores=scores)
    save_record(results, tmp_path / "results.json")
    path = report([tmp_path / "results.json"], tmp_path / "rep", bench=[bench_path])
    text = path.read_text()
    perf = text[text.index("## Performance") :]
    assert "**CPU (" in perf and "These are CPU timings" in perf and "GPU:" not in perf
    assert _tables_have_device(text, "**CPU (") == 2  # one speed table per branch
    assert "tiny-ruyi E111K, 242.50K parameters" in perf and "tiny-ruyi E297K" in perf
    assert "Not measured: the bench ran on a CPU" in perf and "no datasheet MBU" in perf
    assert "Attained memory bandwidth: " in perf and "host copy of 256 MiB" in perf
    assert "average over the 2 datasets" in perf and "left out" not in perf
    run_id = load_bench(bench_path).run_id
    for name in (f"pareto_{run_id}.png", f"pareto_{run_id}.svg", f"speed_size_{run_id}.png"):
        assert (tmp_path / "rep" / "plots" / name).stat().st_size > 1000
    assert f"![accuracy against speed](plots/pareto_{run_id}.png)" in perf


def _gpu_bench() -> BenchRecord:
    env = Environment(
        device="NVIDIA H100 80GB HBM3",
        device_type="cuda",
        driver="550.54",
        cuda="12.4",
        torch="2.6.0",
        transformers="5.23.0",
        python="3.11.7",
        git_revision="abc",
    )
    rows = []
    models = [("ruyi-7b", "AI-Flow-Ruyi-7B", "ours", b, p) for b, _, p in BRANCHES] + [
        ("qwen2.5-7b", "Qwen2.5-7B-Instruct", "baseline", "qwen2.5-7b", 7_615_616_512),
        ("yi-6b", "Yi-6B", "baseline", "yi-6b", 6_061_035_520),
    ]
    for model, title, role, branch, params in models:
        for backend in ("hf", "fast"):
            for batch in (1, 32):
                tok_s = 1e12 / params * batch * (2.0 if backend == "fast" else 1.0)
                stats = Stats(
                    median=1 / tok_s,
                    p90=1.1 / tok_s,
                    p99=1.3 / tok_s,
                    mean=1 / tok_s,
                    min=0.9 / tok_s,
                    max=1.4 / tok_s,
                    n=10,
                )
                speed = Stats(median=tok_s, p90=tok_s, p99=tok_s, mean=tok_s, min=tok_s, max=tok_s, n=10)
                oom = model == "yi-6b" and batch == 32
                rows.append(
                    BenchRow(
                        model=model,
                        title=title,
                        role=role,
                        branch=branch,
                        exit_layer=27,
                        num_params=params,
                        backend=backend,
                        batch_size=batch,
                        prompt_len=256,
                        gen_len=128,
                        weight_bytes=2 * params,
                        kv_bytes_per_row=10**6,
                        bytes_per_token=2 * params / batch + 10**6,
                        ttft_s=None if oom else stats,
                        tpot_s=None if oom else stats,
                        e2e_s=None if oom else stats,
                        decode_tok_s=None if oom else speed,
                        mbu=None if oom else 0.5,
                        peak_allocated_bytes=None if oom else 2 * params + batch * 10**8,
                        peak_reserved_bytes=None if oom else 2 * params + batch * 2 * 10**8,
                        min_vram_bytes=None if oom else 2 * params + batch * 10**8 + (10**9 if backend == "hf" else 0),
                        error="out of memory" if oom else None,
                    )
                )
    ratios = tuple(Ratio(m, b, n, 2.0, 1.8) for m, _, _, b, _ in models for n in (1, 32) if m != "yi-6b" or n == 1)
    return BenchRecord(
        run_id="gpu1",
        created_at="2026-01-01T00:00:00+00:00",
        command="evalkit bench --shape all",
        environment=env,
        dtype="bf16",
        config={"shapes": ["ruyi-7b"], "prompt_len": 256, "gen_len": 128},
        protocol={"warmup": 2, "iterations": 10, "timer": "cuda-events"},
        peak_bandwidth_gbps=3350.0,
        peak_bandwidth_source="table: H100 SXM",
        rows=tuple(rows),
        ratios=ratios,
    )


def test_performance_from_a_gpu_bench_matches_branches_and_baselines(tmp_path):
    path = save_bench(_gpu_bench(), tmp_path / "bench.json")
    queue = PlotQueue()
    text = performance([(path, load_bench(path))], synth_record(n_items=40), tmp_path / "plots", queue)
    queue.run()
    assert _tables_have_device(text, "**GPU: NVIDIA H100 80GB HBM3 (CUDA 12.4)**") == 5 + 2 + 1  # + VRAM
    assert "CPU" not in text and "no datasheet MBU" not in text
    vram = text[text.index("#### Minimum VRAM") : text.index("#### Speed against size")]
    assert "| AI-Flow-Ruyi-7B E3B |" in vram and "|   batch=32 |" in vram
    assert "6.76 GB" not in vram and "6.8 GB" in vram  # E3B at batch 1: the smaller backend (fast), 1 decimal
    assert vram.count("> device |") == 1  # Yi-6B at batch 32: both backends ran out of memory
    assert "2.00x (1.80x)" in text and "50.0%" in text
    assert (  # E3B, fast at batch 1: every column of the report's speed table
        "| fast      |       1 |       1.7 |        1.67 / 1.83 / 2.16 |          600.6 |   0.002 "
        "|                6.76 / 6.86 |       6.66 GB |           50.0% |              – |          2.00x (1.80x) |"
    ) in text
    assert "| Yi-6B               |   12.2 GB |   > device |" in vram
    pareto = text[text.index("#### Accuracy against speed") :]
    assert "the fast (evalkit's static-cache decoder) backend for every point" in pareto
    assert "Yi-6B (bench) has no results with a corresponding name; left out." in pareto
    assert pareto.count("left out") == 1  # Qwen2.5-7B-Instruct is matched by its title
    assert (
        "frontier (nothing else both faster and more accurate): E3B, E4B, E5B, E6B, E7B, Qwen2.5-7B-Instruct." in pareto
    )
    assert (tmp_path / "plots" / "pareto_gpu1.png").is_file() and (tmp_path / "plots" / "speed_size_gpu1.png").is_file()


def test_one_renderer_per_bench_table_in_the_console_and_the_report_layouts():
    rows = _gpu_bench().rows
    console = vram_table(rows, CONSOLE_VRAM).splitlines()  # one row per backend
    assert "| ruyi-7b    | E3B        | hf        | 7.8 GB    | 10.9 GB    |" in console
    assert "| ruyi-7b    | E3B        | fast      | 6.8 GB    | 9.9 GB     |" in console
    pooled = vram_table(rows, REPORT_VRAM).splitlines()  # the smaller backend's figure
    assert "| AI-Flow-Ruyi-7B E3B |    6.8 GB |     9.9 GB |" in pooled
    yi = rows[-4:]  # Yi-6B: batch 32 ran out of memory on both backends
    assert [line.split("|")[6].strip() for line in speed_table(yi, CONSOLE_SPEED).splitlines()[2:]] == [
        "6.1",
        "out of memory",
        "3.0",
        "out of memory",
    ]
    report_rows = speed_table(yi, REPORT_SPEED).splitlines()[2:]
    assert [line.split("|")[3].strip() for line in report_rows] == [
        "6.1",
        "did not run: out of memory",
        "3.0",
        "did not run: out of memory",
    ]
    assert report_rows[1].rstrip("| ").endswith("–")


def test_pareto_front_and_plot(tmp_path):
    speed = {"E3B": 500.0, "E5B": 330.0, "E6B": 320.0, "E7B": 237.0}
    acc = {"E3B": 36.5, "E5B": 67.2, "E6B": 66.0, "E7B": 71.6}
    assert pareto_front({b: (speed[b], acc[b]) for b in speed}) == ["E3B", "E5B", "E7B"]
    paths = pareto_plot(acc, speed, title="accuracy vs speed", stem=tmp_path / "pareto")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    "command",
    [
        ["report", str(SMALL), "--out", "{blocker}/rep"],
        ["regress", "--reference", str(SMALL), "--candidate", "{rerun}", "--junit", "{blocker}/x.xml"],
        ["import-table", str(HERE / "records" / "ruyi_tables.md"), "--out", "{blocker}/x.json"],
    ],
)
def test_unwritable_outputs_are_one_line_errors(tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    rerun = save_record(replace(load_record(SMALL), run_id="rerun"), tmp_path / "rerun.json")
    args = [a.format(blocker=blocker, rerun=rerun) for a in command]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output  # not regress's 1: nothing was judged
    assert not isinstance(res.exception, OSError)
    [error] = [line for line in res.stderr.splitlines() if not line.startswith("warning: ")]
    flag = "--junit" if "--junit" in args else "--out"
    assert error.startswith(f"error: cannot write {blocker}/")
    assert error.endswith(f"({blocker} is not a directory); pass a writable {flag}")
