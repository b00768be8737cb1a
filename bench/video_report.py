"""The video benchmark's tables: throughput side by side with the ratio, RSS at two lengths, click latency."""

from __future__ import annotations

from typing import Any

from bench._common import fmt, format_table


def _config(r: dict[str, Any]) -> str:
    params = r.get("parameters")
    return f"{r['config']} ({params / 1e6:.2f} M)" if params else r["config"]


def throughput_table(runs: list[dict[str, Any]], device: str) -> str:
    rows = []
    by_config: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_config.setdefault(r["config"], {})[r["way"]] = r
    for config, ways in by_config.items():
        video, image = ways.get("video", {}), ways.get("image", {})
        v_fps, i_fps = video.get("frames_per_s"), image.get("frames_per_s")
        ratio = f"{v_fps / i_fps:.2f}x" if v_fps and i_fps else "-"
        for way, r in (("video (tracking)", video), ("image every frame", image)):
            if not r or "skipped" in r:
                rows.append([config, way, r.get("frames", "-"), "-", "-", "-", "-", "-", "-", "-", "-", "-",
                             "skipped"])
                continue
            rows.append([_config(r), way, r["frames"], fmt(r["seconds"], 2), fmt(r["frames_per_s"], 3),
                         fmt(r["frames_per_cpu_s"], 3), fmt(r["first_frame_s"], 3), fmt(r.get("tracked_per_frame"), 2),
                         r["objects"],
                         fmt(r.get("object_ids")), fmt(r["peak_rss_mb"], 0), fmt(r["other_processes_cores"], 2),
                         ratio if way.startswith("video") else ""])
    return format_table(["config (params)", "way", "frames", "seconds", "frames/s", "frames/CPU-s", "1st frame s",
                         "tracked/frame", "objects out", "masklets", "peak RSS MB", "others' cores",
                         "video/image fps"], rows, left=2,
                        title=f"Masklet proposal throughput ({device}; after a warm-up run)")


def rss_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    done = [r for r in runs if "skipped" not in r]
    for r in runs:
        if "skipped" in r:
            rows.append([r["frames"], "-", "-", "-", "-", "-", "-", "-", "skipped"])
            continue
        samples = [mb for _, mb in r["rss_samples"]]
        rows.append([r["frames"], fmt(r["rss_after_load_mb"], 0), fmt(r["rss_after_warmup_mb"], 0),
                     fmt(min(samples) if samples else None, 0), fmt(max(samples) if samples else None, 0),
                     fmt(r["peak_mb"], 0), fmt(r.get("gpu_peak_mb"), 0), fmt(r["seconds"], 1),
                     fmt(r["frames"] / r["seconds"], 2)])
    table = format_table(["frames", "RSS after load MB", "after warm-up MB", "run min MB", "run max MB",
                          "peak (VmHWM) MB", "GPU peak MB", "seconds", "frames/s"], rows, left=0,
                         title="Tiny video proposer: RSS by video length (each a fresh process)")
    if len(done) >= 2:
        first, last = done[0], done[-1]
        table += (f"\npeak at {last['frames']} frames / peak at {first['frames']} frames = "
                  f"{last['peak_mb'] / first['peak_mb']:.3f} ({last['peak_mb'] - first['peak_mb']:+.0f} MB)")
    return table


def click_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        if r["phase"] == "api_click":
            if "skipped" in r:
                rows.append(["page API (POST track, poll GET)", "-", "-", "-", "-"])
                continue
            cold = r["cold_click"]
            rows.append([f"page API, first click (loads the tracker; {r['database']})", 1,
                         fmt(cold["clicked_frame_s"], 3), fmt(cold["first_propagated_s"], 3),
                         fmt(cold["all_frames_s"], 3)])
            for way, label in (("tight", "polled every 20 ms"), ("page", "polled as the page does")):
                m = r[way]
                count = sum(1 for c in r["clicks_run"] if c["way"] == way)
                rows.append([f"page API, {label}", count, fmt(m["clicked_frame_s"], 3),
                             fmt(m["first_propagated_s"], 3), fmt(m["all_frames_s"], 3)])
            continue
        if "skipped" in r:
            rows.append(["tracker call (in process)", "-", "-", "-", "-"])
            continue
        rows.append(["tracker call (in process)", len(r["clicks_run"]), fmt(r["median_clicked_frame_s"], 3),
                     fmt(r["median_first_propagated_s"], 3), fmt(r["median_all_frames_s"], 3)])
    return format_table(["measured through", "clicks", "clicked frame s", "1st propagated s",
                         "whole window s"], rows,
                        title="Click to first propagated frame (tiny video tracker, medians; from the click)")


def print_tables(results: dict[str, list[dict[str, Any]]], device: str) -> None:
    for key, table in (("throughput", lambda runs: throughput_table(runs, device)), ("rss", rss_table),
                       ("click", click_table)):
        if results[key]:
            print()
            print(table(results[key]))
    skipped = [r for r in results["throughput"] + results["rss"] + results["click"] if "skipped" in r]
    for r in skipped:
        what = " ".join(str(r[k]) for k in ("phase", "way", "config", "frames") if k in r)
        print(f"skipped {what}: {r['skipped']}")
    configs = [r for r in results["throughput"] + results["rss"] + results["click"]
               if "skipped" not in r and "path" in r]
    print("\nModels:")
    seen = set()
    for r in configs:
        if r["path"] not in seen:
            seen.add(r["path"])
            print(f"  {r['path']}: {r['parameters']:,} parameters, loaded in {r['load_s']} s")
