#!/usr/bin/env python3
"""Mean and spread over several `scripts/demo` runs: one markdown table from their report.json files,
then the issue's claims checked per seed.

Usage: scripts/bench/demo_table.py DIR [DIR...]     (each DIR holds one run's report.json)
"""
import json
import statistics
import sys

ARMS = ["teacher", "distill", "two_stage", "bilevel"]
KEYS = ["forget_rate", "retain_accuracy", "heldout_loss", "seconds"]


def cell(values, key):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    if key in ("forget_rate", "retain_accuracy"):
        return f"{100 * mean:.1f}% ± {100 * sd:.1f} ({100 * min(values):.1f}–{100 * max(values):.1f})"
    if key == "heldout_loss":
        return f"{mean:.4f} ± {sd:.4f}"
    return f"{mean:.0f} ± {sd:.0f}"


def claims(r):
    d, b, t, teacher = r["distill"], r["bilevel"], r["two_stage"], r["teacher"]
    return {
        "distilled forget_rate >= half the teacher's": d["forget_rate"] >= 0.5 * teacher["forget_rate"],
        "bilevel forget_rate <= 25% of distilled": b["forget_rate"] <= 0.25 * d["forget_rate"],
        "bilevel retain_accuracy >= distilled - 5 points": b["retain_accuracy"] >= d["retain_accuracy"] - 0.05,
        "bilevel heldout_loss <= 1.1x distilled": b["heldout_loss"] <= 1.1 * d["heldout_loss"],
        "bilevel forget_rate < two-stage": b["forget_rate"] < t["forget_rate"],
        "bilevel retain_accuracy >= two-stage - 2 points": b["retain_accuracy"] >= t["retain_accuracy"] - 0.02,
    }


def main():
    runs = [json.load(open(f"{d}/report.json")) for d in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    print(f"| arm ({len(runs)} seeds: mean ± sd (min–max)) | " + " | ".join(KEYS) + " |")
    print("|---|" + "---:|" * len(KEYS))
    for arm in ARMS:
        print(f"| {arm} | " + " | ".join(cell([r[arm][k] for r in runs], k) for k in KEYS) + " |")
    print()
    print("| claim | " + " | ".join(d for d in sys.argv[1:]) + " |")
    print("|---|" + "---|" * len(runs))
    checks = [claims(r) for r in runs]
    for name in checks[0]:
        print(f"| {name} | " + " | ".join("yes" if c[name] else "**no**" for c in checks) + " |")


if __name__ == "__main__":
    main()
