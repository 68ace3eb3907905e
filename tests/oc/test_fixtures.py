"""The embedded fixtures are what scripts/make_fixtures.py writes where the catalog says, for the groups it names."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from evalkit.catalog.datasets import BY_KEY
from evalkit.oc.fixtures import FIXTURE_GROUPS, FIXTURES

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _make_fixtures(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("make_fixtures", SCRIPTS / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_fixtures", module)
    spec.loader.exec_module(module)
    return module


def _content(path: Path) -> object:
    if path.suffix == ".parquet":  # compared by rows: the bytes carry the writer's pyarrow version
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return path.read_bytes()


def test_script_reproduces_the_embedded_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    script = _make_fixtures(monkeypatch)
    monkeypatch.setattr(script, "FIXTURES", tmp_path)
    script.main()
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(
        p.relative_to(FIXTURES)
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and "tiny-ruyi" not in p.parts  # the trained family: train_tiny.py
    )
    assert written == shipped
    for rel in written:
        assert _content(tmp_path / rel) == _content(FIXTURES / rel), rel
    answers = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert list(answers) == [k for k in BY_KEY if k != "humaneval"]


def test_fixtures_hold_every_group_the_catalog_names() -> None:
    assert set(FIXTURE_GROUPS) == {k for k, d in BY_KEY.items() if d.grouped} == {"mmlu", "mmlu_pro", "cmmlu", "bbh"}
    for key, groups in FIXTURE_GROUPS.items():
        assert groups, key
        for template in BY_KEY[key].opencompass.files:
            for group in groups:
                assert (FIXTURES / template.format(g=group)).exists(), (key, group)


def test_script_refuses_groups_the_catalog_does_not_name(monkeypatch: pytest.MonkeyPatch) -> None:
    script = _make_fixtures(monkeypatch)
    with pytest.raises(SystemExit, match="bbh: the fixture items have groups .*'navigate'.* but the catalog lists"):
        script._groups("bbh", {**script.fixture_items()["BBH"], "navigate": []})
