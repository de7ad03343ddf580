#!/usr/bin/env python3
"""Markdown tables of scripts/bench/gguf_trip's measurements (its trip.jsonl). Standard library only.

usage: gguf_trip_table.py OUT/trip.jsonl
"""
import json
import sys


def mb(n):
    return f"{n / 1e6:,.2f} MB"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    times = {r["label"]: r for r in rows if r["kind"] == "time"}
    diffs = {r["label"]: r["worst_rel_l2"] for r in rows if r["kind"] == "diff"}
    evals = [r for r in rows if r["kind"] == "eval"]
    files = [r for r in rows if r["kind"] == "diff"]
    if files:
        f32 = next((r["bytes"] for r in files if r["label"].endswith(" f32")), None)
        print("| student file | size | of the f32 GGUF | worst tensor REL_L2 vs f32 | convert wall |")
        print("|---|---:|---:|---:|---:|")
        for r in files:
            share = f"{100 * r['bytes'] / f32:.1f}%" if f32 else ""
            t = times.get("convert " + r["label"])
            print(f"| {r['label']}.gguf | {mb(r['bytes'])} | {share} | {r['worst_rel_l2']:.2e} | {t['seconds']:.2f} s |" if t else "")
        print()
    if evals:
        print("| model | file | size | worst tensor REL_L2 vs f32 | forget_rate | retain_accuracy | heldout_loss | eval wall |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in evals:
            res = r["result"]
            rel = diffs.get(r["label"])
            print(f"| {r['label']} | {r['file'].rsplit('/', 1)[-1]} | {mb(r['bytes'])} | "
                  f"{'' if rel is None else f'{rel:.2e}'} | {100 * res['forget_rate']:.1f}% | {100 * res['retain_accuracy']:.1f}% | "
                  f"{res['heldout_loss']:.4f} | {times['eval ' + r['label']]['seconds']:.1f} s |")
        print()
    forwards = [r for r in rows if r["kind"] == "forward"]
    if forwards:
        print("| bench forward --model | size | process wall (load + warm-up + passes) | seconds per forward | peak RSS |")
        print("|---|---:|---:|---:|---:|")
        for r in forwards:
            t = times["forward " + r["label"]]
            print(f"| {r['label']} (batch {r['result']['batch']}, {r['result']['size']}x{r['result']['size']}) | {mb(r['bytes'])} | "
                  f"{t['seconds']:.2f} s | {r['result']['seconds_per_forward']:.3f} s | {t['peak_rss_kib'] / 1024:,.0f} MiB |")
        print()
    other = [r for r in rows if r["kind"] == "time" and not r["label"].startswith(("eval ", "forward ", "convert student"))]
    sizes = [r for r in rows if r["kind"] == "size"]
    if other or sizes:
        print("| step | wall | peak RSS |")
        print("|---|---:|---:|")
        for r in other:
            label = r["label"].replace("|", "\\|")
            print(f"| {label} | {r['seconds']:.2f} s | {r['peak_rss_kib'] / 1024:,.0f} MiB |")
        print()
        for r in sizes:
            print(f"- {r['label']}: {r['bytes']:,} bytes ({mb(r['bytes'])})")


if __name__ == "__main__":
    main()
