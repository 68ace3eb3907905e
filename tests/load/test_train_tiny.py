"""scripts/train_tiny.py: a few training steps, deterministic from the seed, on items the fixtures do not hold."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import make_fixtures  # noqa: E402
import train_tiny  # noqa: E402

from evalkit import load_family  # noqa: E402
from evalkit.load.tiny import TRAINED_DIR, training_summary  # noqa: E402


def test_training_items_share_no_item_with_the_fixtures():
    fixture = set(train_tiny._rows(make_fixtures.fixture_items()))
    drawn = set(train_tiny._rows(train_tiny._templated_items.items(seed=1, scale=2)))
    kept = set(train_tiny._rows(train_tiny.training_items(seed=1, scale=2)))
    assert fixture & drawn, "the templates are small enough that a fixture item can be drawn again"
    assert kept and not (kept & fixture)
    assert kept == drawn - fixture


def test_heldout_items_share_no_item_with_the_training_items():
    train = train_tiny.training_items(seed=1, scale=2)
    held = set(train_tiny._rows(train_tiny.heldout_items(1, train)))
    drawn = set(train_tiny._rows(train_tiny._templated_items.items(seed=1001, scale=4)))
    assert held and not (held & set(train_tiny._rows(train)))
    assert held != drawn  # the templates repeat: some drawn items were training items and are gone


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    cfg = train_tiny.TrainConfig(steps=3, batch_size=4, scale=1, warmup=1)
    base = tmp_path_factory.mktemp("train")
    quiet = lambda *a, **k: None  # noqa: E731
    return train_tiny.run(cfg, base / "a", log=quiet), train_tiny.run(cfg, base / "b", log=quiet)


def test_a_few_steps_train_every_exit_and_repeat_exactly(two_runs):
    a, b = two_runs
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    manifest = json.loads((a / "training.json").read_text())
    assert manifest["train_config"]["steps"] == 3
    assert len(manifest["final_loss_per_exit"]) == 4  # one loss per exit, all trained
    held = manifest["heldout_exact_match_per_exit"]
    assert set(held) == set(manifest["examples_per_dataset"]) and all(len(v) == 4 for v in held.values())
    assert set(manifest["examples_per_dataset"]) == {
        "mmlu",
        "mmlu_pro",
        "cmmlu",
        "bbh",
        "arc_c",
        "hellaswag",
        "winogrande",
        "gpqa",
        "math",
        "gsm8k",
    }
    family = load_family(a)
    assert [b.exit_layer for b in family.branches] == [2, 4, 6, 7]
    assert "not ability" in training_summary(a)


def test_the_prompts_trained_on_are_those_a_run_renders(two_runs):
    """The rendered chat prompt of a training item ends where a run's generation starts."""
    examples, _ = train_tiny.render(train_tiny.training_items(seed=1, scale=1))
    gsm = next(e for e in examples if e["dataset"] == "gsm8k")
    (user,) = [m for m in gsm["messages"] if m["role"] == "user"]
    assert user["content"].endswith("\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert gsm["response"].startswith("\\boxed{")
    mmlu = next(e for e in examples if e["dataset"] == "mmlu")
    assert mmlu["response"] in {f"ANSWER: {c}" for c in "ABCD"}


def test_the_shipped_family_says_what_it_was_trained_on():
    """The shipped weights are what `python scripts/train_tiny.py` (its defaults) writes."""
    manifest = json.loads((TRAINED_DIR / "training.json").read_text())
    assert manifest["train_config"] == asdict(train_tiny.TrainConfig())
    assert (TRAINED_DIR / "model.safetensors").stat().st_size < 4 * 2**20  # a few MB at most
