"""docs/scaling.md's capacity tables are exactly what bench/capacity.py prints for the committed costs."""

import json
from pathlib import Path

import pytest

from bench import capacity

REPO = Path(__file__).resolve().parent.parent


def test_doc_tables_match_the_script() -> None:
    costs = json.loads(capacity.COSTS.read_text())
    doc = (REPO / "docs" / "scaling.md").read_text()
    assert capacity.doc_block(doc) == capacity.render(costs)


def test_more_images_need_more_of_everything() -> None:
    costs = json.loads(capacity.COSTS.read_text())
    small, big = capacity.scenario(costs, 1_000_000), capacity.scenario(costs, 10_000_000)
    assert big["rows_s"] == pytest.approx(10 * small["rows_s"])
    assert big["broker_s"] == pytest.approx(10 * small["broker_s"])
    for stage, (_, busy, units) in big["gpu"].items():
        assert busy == pytest.approx(10 * small["gpu"][stage][1])
        assert units >= small["gpu"][stage][2]
        assert units >= busy  # never sized above 100 % busy


def test_bigger_gpu_batches_mean_fewer_broker_messages() -> None:
    costs = json.loads(capacity.COSTS.read_text())
    before = capacity.scenario(costs, 1_000_000)["broker_s"]
    costs["gpu_stages"]["verify"]["batch"] = 32
    assert capacity.scenario(costs, 1_000_000)["broker_s"] < before
