"""The capacity model of docs/scaling.md, computed from a JSON of per-item costs.

    python -m bench.capacity                      # the tables for bench/capacity_costs.json (markdown)
    python -m bench.capacity --costs my.json      # the same for other costs (e.g. after a GPU benchmark)

Why a script: the document's numbers must be reproducible, and they change whenever a cost is measured
again (a GPU benchmark replaces the assumed GPU seconds). tests/test_capacity_doc.py checks that the tables
in docs/scaling.md are exactly what this prints for the committed costs file.

The model is deliberately simple: a steady arrival rate (images/day ÷ 86,400), every stage's work per image
times that rate is the busy time it needs, divided by a utilisation target, rounded up to whole workers/GPUs.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COSTS = Path(__file__).resolve().parent / "capacity_costs.json"
DAY_S = 86_400.0
BEGIN = "<!-- capacity:begin (python -m bench.capacity) -->"
END = "<!-- capacity:end -->"


def _v(entry: Any) -> float:
    """A figure written either bare or as {"value": …, "source": …}."""
    return float(entry["value"] if isinstance(entry, dict) else entry)


@dataclass(frozen=True)
class Workload:
    """What one image turns into, from the costs file's workload section."""

    pos: float
    neg: float
    masks: float
    human_share: float

    @property
    def pairs(self) -> float:
        return self.pos + self.neg

    @property
    def routed(self) -> float:
        """Items the route stage decides on: every mask and every pair."""
        return self.masks + self.pairs

    @property
    def human_tasks(self) -> float:
        return self.pairs * self.human_share


def workload(costs: dict[str, Any]) -> Workload:
    w = costs["workload"]
    return Workload(_v(w["positive_phrases_per_image"]), _v(w["negative_phrases_per_image"]),
                    _v(w["masks_per_image"]), _v(w["human_share_of_pairs"]))


def cpu_seconds(costs: dict[str, Any], w: Workload) -> dict[str, float]:
    """Core-seconds per image of each CPU stage."""
    out: dict[str, float] = {}
    for name, stage in costs["cpu_stages"].items():
        out[name] = stage["core_s_per_item"] * w.routed if "core_s_per_item" in stage else stage["core_s_per_image"]
    return out


def gpu_seconds(costs: dict[str, Any], w: Workload) -> dict[str, float]:
    """GPU-seconds per image of each GPU stage."""
    g = costs["gpu_stages"]

    def phrases(stage: dict[str, Any], n: float) -> float:
        return stage["gpu_s_first_phrase"] + stage["gpu_s_per_extra_phrase"] * max(n - 1, 0)

    return {
        "caption": g["caption"]["gpu_s_per_image"],
        "propose": phrases(g["propose"], w.pos),
        "negatives": phrases(g["negatives"], w.neg) + g["negatives"]["gpu_s_suggester_per_image"],
        "verify": g["verify"]["gpu_s_per_mv"] * w.masks + g["verify"]["gpu_s_per_ev"] * w.pairs,
    }


def rows_per_image(w: Workload) -> dict[str, float]:
    """Rows each table gains per mined image (AI verdicts: one MV per mask, one EV per pair)."""
    return {"images": 1, "job_items": 1, "stage_items": 6, "captions": 2, "image_concepts": w.pairs,
            "image_embeddings": 1, "masks": w.masks, "verdicts": w.masks + w.pairs, "route_decisions": w.routed,
            "human_tasks": w.human_tasks}


def batches_per_image(costs: dict[str, Any]) -> dict[str, float]:
    """Broker task messages per image: one per batch of each stage."""
    stages = {**costs["cpu_stages"], **costs["gpu_stages"]}
    order = ("mine", "caption", "parse", "propose", "negatives", "verify", "route")
    return {name: 1.0 / stages[name]["batch"] for name in order}


def _workers(busy_per_s: float, util: float) -> int:
    return max(1, math.ceil(busy_per_s / util - 1e-9))


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def scenario(costs: dict[str, Any], per_day: int) -> dict[str, Any]:
    """Every figure of one images/day scenario."""
    w, util = workload(costs), _v(costs["utilisation"])
    rate = per_day / DAY_S
    cpu, gpu = cpu_seconds(costs, w), gpu_seconds(costs, w)
    pg = costs["postgres"]
    rows = rows_per_image(w)
    table_bytes = {t: n * pg["bytes_per_row"][t] for t, n in rows.items()}
    store = costs["object_store"]
    h = costs["humans"]
    human_s = w.human_share * (w.pos * _v(h["s_per_positive_pair"]) + w.neg * _v(h["s_per_negative_pair"]))
    tasks_s = rate * w.human_tasks
    return {
        "rate": rate,
        "cpu": {k: (v, rate * v, _workers(rate * v, util)) for k, v in cpu.items()},
        "gpu": {k: (v, rate * v, _workers(rate * v, util)) for k, v in gpu.items()},
        "rows_per_image": sum(rows.values()),
        "bytes_per_image": sum(table_bytes.values()),
        "pg_gb_day": per_day * sum(table_bytes.values()) / 1e9,
        "rows_s": rate * sum(rows.values()),
        "inserts_s": rate * sum(rows.values()) * _v(pg["inserts_per_row"]),
        "xact_s": rate * _v(pg["transactions_per_image"]),
        "broker_s": rate * sum(batches_per_image(costs).values()),
        "store_s": rate * (sum(store["requests_per_image"].values())
                           + w.human_tasks * store["requests_per_human_task"]),
        "human_tasks_s": tasks_s,
        "annotators": math.ceil(per_day * human_s / (_v(h["active_hours_per_annotator_day"]) * 3600)),
        "web_cores": 2 * math.ceil(tasks_s / _v(costs["web"]["tasks_per_s_per_2_cores"]) / util - 1e-9) or 2,
    }


def render(costs: dict[str, Any]) -> str:
    """The markdown tables docs/scaling.md carries between its capacity markers."""
    days = costs["scenarios_images_per_day"]
    runs = [scenario(costs, d) for d in days]
    head = "| | " + " | ".join(f"{d / 1e6:g} M images/day ({r['rate']:.1f}/s)"
                               for d, r in zip(days, runs, strict=True)) + " |"
    sep = "|---|" + "---|" * len(days)
    w = workload(costs)
    lines = [f"Workload per image: {w.pos:g} positive + {w.neg:g} negative phrases, {w.masks:g} masks, "
             f"{w.routed:g} routed items, {w.human_tasks:g} human tasks; utilisation target "
             f"{_v(costs['utilisation']):.0%}.", "",
             "**Workers and GPUs per stage** (busy seconds per image → busy seconds per second → units at the "
             "target)", "",
             head, sep]
    for kind, unit in (("cpu", "cores"), ("gpu", "GPUs")):
        for name in runs[0][kind]:
            per = runs[0][kind][name][0]
            cells = [f"{r[kind][name][2]} {unit if r[kind][name][2] > 1 else unit[:-1]} ({_fmt(r[kind][name][1])} busy)"
                     for r in runs]
            lines.append(f"| {name} ({kind}, {per * 1000:.1f} ms/image) | " + " | ".join(cells) + " |")
    gpus = [sum(v[2] for v in r["gpu"].values()) for r in runs]
    cores = [sum(v[2] for v in r["cpu"].values()) for r in runs]
    lines.append("| **all GPU stages** | " + " | ".join(f"**{g} GPUs**" for g in gpus) + " |")
    lines.append("| **all CPU stages** | " + " | ".join(f"**{c} cores**" for c in cores) + " |")
    lines += ["", "**PostgreSQL, broker, object store, people**", "", head, sep]
    rows = [
        ("rows written per image", lambda r: f"{r['rows_per_image']:.1f}"),
        ("bytes kept per image (heap + indexes + TOAST)", lambda r: f"{r['bytes_per_image'] / 1e3:.1f} kB"),
        ("PostgreSQL growth per day", lambda r: f"{r['pg_gb_day']:,.1f} GB"),
        ("PostgreSQL growth per 30 days", lambda r: f"{r['pg_gb_day'] * 30 / 1e3:,.2f} TB"),
        ("rows kept per second", lambda r: f"{r['rows_s']:,.0f}"),
        ("tuple inserts per second (with TOAST, bookkeeping)", lambda r: f"{r['inserts_s']:,.0f}"),
        ("transactions per second (pipeline only)", lambda r: f"{r['xact_s']:,.0f}"),
        ("broker task messages per second", lambda r: f"{r['broker_s']:.1f}"),
        ("object-store requests per second", lambda r: f"{r['store_s']:.1f}"),
        ("human tasks per second (made)", lambda r: f"{r['human_tasks_s']:.1f}"),
        ("annotators (paper's seconds, 6 active h/day)", lambda r: f"{r['annotators']:,}"),
        ("web server cores for the queue (180 tasks/s per 2 cores)", lambda r: f"{r['web_cores']}"),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in runs) + " |")
    return "\n".join(lines) + "\n"


def doc_block(text: str) -> str:
    """The part of docs/scaling.md between the capacity markers."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start:text.index(END)].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--costs", type=Path, default=COSTS, help="the per-item costs (JSON)")
    args = parser.parse_args(argv)
    print(render(json.loads(args.costs.read_text())), end="")


if __name__ == "__main__":
    main()
