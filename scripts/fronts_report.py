#!/usr/bin/env python3
"""Reads a fronts.json (formats/fronts.md): the plot, each method's chosen point, and the README's
paragraph about the fronts, all computed from the data.

Usage: scripts/fronts_report.py FRONTS.json [--plot PNG] [--chosen] [--chosen-table] [--points-table] [--paragraph]
       scripts/fronts_report.py FRONTS.json --check FILE   (exit 1 unless FILE holds the paragraphs as made now)
       scripts/fronts_report.py FRONTS.json --update FILE  (replace FILE's paragraphs, between their markers, by these)
       (with a convergence.json next to FRONTS.json: --convergence-plot PNG, and its paragraph too; with a
       robustness.json (scripts/fronts --attacks), its paragraph too)

The rule (nothing tuned per method): a method's settings are averaged over the seeds; at a retain level
of P points (P = 2, 5, 10) the settings whose mean retain_accuracy is at least the distilled student's
mean minus P points qualify, and the method's best forget rate there is the lowest mean forget_rate
among them (with that setting's spread over seeds). A method's chosen point is its best at 2 points,
else at 5, else at 10, else its setting of highest mean retain accuracy.

Convergence (convergence.json, made by scripts/fronts from the training logs' heldout_loss): distillation
alone against bilevel interleaved at its chosen point, per seed, on the same held-out renders at fixed
noise. Per seed, the ratio of the bilevel's mean held-out loss over all probes to distillation's (the
area under the curve: a slower descent shows as a larger area), and the ratio over the last 4 probes;
both averaged over seeds. The sentence says the lower level converges as fast with the upper level on
when the area ratio is at most 1.05. (The mean over probes is used rather than the first step below a
threshold, which the probe-to-probe noise of a few percent makes unstable.)

Robustness (robustness.json): per model (the teacher, the distilled student, each method's chosen
point), the forget rate with the concept's own token, with its paraphrase token and with the adversarial
embedding, each averaged over the seeds; the sentences give, per attack, the range of the chosen points'
changes and the largest rise, and which chosen point forgets most with the token and under each attack;
then, among the chosen points within 2 points of the distilled student's retain accuracy, which forgets
most with the token and under the adversarial embedding, and whether any meets issue 22's goal (stated
before its run): an adversarial forget rate below 25% there.
"""
import argparse
import json
import statistics
import sys

METHODS = ["two_stage", "bilevel_interleaved", "bilevel_penalty", "ablation",
           "uce", "bilevel_ablation", "bilevel_uce", "bilevel_robust"]
LABELS = {"two_stage": "two-stage (ESD after distillation)", "bilevel_interleaved": "bilevel, interleaved",
          "bilevel_penalty": "bilevel, penalty", "ablation": "concept ablation after distillation",
          "uce": "UCE after distillation", "bilevel_ablation": "bilevel, interleaved, ablation upper level",
          "bilevel_uce": "bilevel, interleaved, UCE upper level",
          "bilevel_robust": "bilevel, interleaved, robust ablation upper level"}
LEVELS = [2, 5, 10]
# One phase against two with the same upper objective: (objective, the bilevel method, the method run after
# the distillation), each compared at every retain level when both ran.
DUELS = [("ESD's", "bilevel_interleaved", "two_stage"), ("concept ablation's", "bilevel_ablation", "ablation"),
         ("UCE's", "bilevel_uce", "uce")]
DUEL_NAMES = {"bilevel_interleaved": "bilevel interleaved", "two_stage": "two-stage", "bilevel_ablation": "bilevel ablation",
              "ablation": "ablation after distillation", "bilevel_uce": "bilevel UCE", "uce": "UCE after distillation"}
# The goal issue 22 set before its run: a forget rate under the adversarial embedding below this share with
# retain accuracy within GOAL_LEVEL points of the distilled student's.
GOAL_RATE, GOAL_LEVEL = 0.25, 2
BEGIN, END = "<!-- fronts:{concept} begin -->", "<!-- fronts:{concept} end -->"


def methods_run(fronts):
    """The methods of METHODS this run swept (in its grid or among its points), in METHODS order: a run
    made before a method existed does not name it."""
    run = {g["method"] for g in fronts.get("grid", [])} | {p["method"] for p in fronts["points"]}
    return [m for m in METHODS if m in run]


def mean_sd(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def settings_of(fronts, method):
    """[(setting, [points over seeds])] in the order of the grid."""
    out = []
    for p in fronts["points"]:
        if p["method"] != method:
            continue
        for s, ps in out:
            if s == p["setting"]:
                ps.append(p)
                break
        else:
            out.append((p["setting"], [p]))
    return out


def summary(points):
    f = mean_sd([p["forget_rate"] for p in points])
    r = mean_sd([p["retain_accuracy"] for p in points])
    h = mean_sd([p["heldout_loss"] for p in points])
    return {"forget": f, "retain": r, "heldout": h, "seconds": statistics.fmean(p["seconds"] for p in points), "n": len(points)}


def reference(fronts, arm):
    ms = list(fronts[arm].values())
    return summary(ms)


def best(fronts, method, level):
    """(setting, summary) of the lowest mean forget rate with mean retain >= distilled - level points, or None."""
    floor = reference(fronts, "distill")["retain"][0] - level / 100
    ok = [(s, summary(ps)) for s, ps in settings_of(fronts, method)]
    ok = [(s, m) for s, m in ok if m["retain"][0] >= floor - 1e-12]
    return min(ok, key=lambda sm: (sm[1]["forget"][0], -sm[1]["retain"][0])) if ok else None


def chosen(fronts, method):
    for level in LEVELS:
        b = best(fronts, method, level)
        if b:
            return b[0], b[1], f"best forget rate within {level} points of the distilled student's retain accuracy"
    all_ = [(s, summary(ps)) for s, ps in settings_of(fronts, method)]
    if not all_:
        return None
    s, m = max(all_, key=lambda sm: sm[1]["retain"][0])
    return s, m, "no setting within 10 points: the one of highest retain accuracy"


def setting_text(setting):
    names = {"upper_lr": "upper lr", "lr": "lr", "lambda": "λ", "inner_steps": "K", "erase_scale": "erase scale"}
    return ", ".join(f"{names.get(k, k)} {v:g}" for k, v in setting.items())


def pct(x):
    return f"{100 * x:.1f}%"


def paragraph(fronts):
    """The README's text about these fronts: every number from the data."""
    concept = fronts["concept"]
    seeds = ", ".join(str(s) for s in fronts["seeds"])
    d, t = reference(fronts, "distill"), reference(fronts, "teacher")
    lines = [BEGIN.format(concept=concept),
             f"Concept `{concept}`, seeds {seeds} (mean ± sd over seeds). Teacher: forget rate {pct(t['forget'][0])}, "
             f"retain accuracy {pct(t['retain'][0])}; distilled student: forget rate {pct(d['forget'][0])} ± {100 * d['forget'][1]:.1f}, "
             f"retain accuracy {pct(d['retain'][0])} ± {100 * d['retain'][1]:.1f}. Settings run: "
             + ", ".join(f"{LABELS[m]} {len(settings_of(fronts, m))}" for m in methods_run(fronts)) + ".", ""]
    if d["forget"][0] < t["forget"][0] / 2:
        lines[-2] += (f" The distilled student already draws the concept for less than half as many forget-prompt samples as the "
                      f"teacher ({pct(d['forget'][0])} against {pct(t['forget'][0])}): pruning and distillation on retain data do "
                      "not carry this concept over here, so this front shows each method's cost to retain accuracy more than "
                      "its forgetting.")
    edges = []
    for level in LEVELS:
        parts, lowest = [], []
        for m in methods_run(fronts):
            b = best(fronts, m, level)
            if b:
                lowest.append((b[1]["forget"][0], LABELS[m]))
                parts.append(f"{LABELS[m]} {pct(b[1]['forget'][0])} ± {100 * b[1]['forget'][1]:.1f} ({setting_text(b[0])})")
                margin = b[1]["retain"][0] - (d["retain"][0] - level / 100)
                if margin < b[1]["retain"][1] and (m, b[0]) not in [(e[0], e[1]) for e in edges]:
                    edges.append((m, b[0], b[1], level, margin))
            else:
                parts.append(f"{LABELS[m]}: {'no setting qualifies' if settings_of(fronts, m) else 'not run'}")
        winner = f" Lowest: {min(lowest)[1]}." if lowest else ""
        lines.append(f"- With retain accuracy within {level} points of the distilled student's (≥ {pct(d['retain'][0] - level / 100)}), "
                     "the lowest forget rates are: " + "; ".join(parts) + "." + winner)
    for objective, one, two in DUELS:
        duel = []
        for level in LEVELS:
            bi, ts = best(fronts, one, level), best(fronts, two, level)
            if bi and ts:
                gap, spread = ts[1]["forget"][0] - bi[1]["forget"][0], max(bi[1]["forget"][1], ts[1]["forget"][1])
                duel.append((level, "lower by more than the seed spread" if gap > spread else "lower, within the seed spread" if gap > 0
                             else "not lower"))
        if duel:
            lines += ["", f"One phase against two with the same upper-level objective ({objective}), {DUEL_NAMES[one]}'s best forget rate "
                      f"against {DUEL_NAMES[two]}'s: " + "; ".join(f"within {level} points, {verdict}" for level, verdict in duel) + "."]
    if edges:
        lines += ["", "At the edge (a setting that qualifies by less than its retain accuracy's spread over seeds, so that "
                  "other seeds may leave it out): " + "; ".join(
                      f"{LABELS[m]} at {setting_text(s)}, retain accuracy {pct(sm['retain'][0])} ± {100 * sm['retain'][1]:.1f}, "
                      f"{100 * margin:.1f} points above the {level}-point floor" for m, s, sm, level, margin in edges) + "."]
    lines += ["", *chosen_table(fronts), END.format(concept=concept)]
    return "\n".join(lines)


CONCEPTS = ["style", "object"]


def per_concept(fronts, points):
    """The style and object cells (each concept's mean forget rate) when the run forgets both concepts."""
    if fronts["concept"] != "both":
        return ""
    return "".join(f" {pct(statistics.fmean(p['forget_rates'][c] for p in points))} |" for c in CONCEPTS)


def chosen_table(fronts):
    """Each method's chosen point (mean ± sd over seeds) as markdown table lines (and, forgetting both
    concepts, each concept's forget rate)."""
    both = fronts["concept"] == "both"
    lines = ["| method | chosen setting | seeds | forget_rate |" + (" style | object |" if both else "")
             + " retain_accuracy | heldout_loss | seconds |",
             "|---|---|---:|---:|" + ("---:|---:|" if both else "") + "---:|---:|---:|"]
    rows = [(arm, {}, list(fronts[arm].values())) for arm in ("teacher", "distill")] if both else []
    rows += [(m, c[0], next(ps for s, ps in settings_of(fronts, m) if s == c[0])) for m in METHODS if (c := chosen(fronts, m))]
    for m, s, ps in rows:
        sm = summary(ps)
        lines.append(f"| {m} | {setting_text(s)} | {sm['n']} | {pct(sm['forget'][0])} ± {100 * sm['forget'][1]:.1f} |"
                     + per_concept(fronts, ps)
                     + f" {pct(sm['retain'][0])} ± {100 * sm['retain'][1]:.1f} | {sm['heldout'][0]:.4f} | {sm['seconds']:.0f} |")
    return lines


def points_table(fronts):
    """Every setting of every method, mean ± sd over its seeds, as markdown table lines (BENCHMARKS.md)."""
    lines = ["| method | setting | seeds | forget_rate | retain_accuracy | heldout_loss | seconds |", "|---|---|---:|---:|---:|---:|---:|"]
    for arm in ("teacher", "distill"):
        sm = reference(fronts, arm)
        lines.append(f"| {arm} | | {sm['n']} | {pct(sm['forget'][0])} ± {100 * sm['forget'][1]:.1f} | "
                     f"{pct(sm['retain'][0])} ± {100 * sm['retain'][1]:.1f} | {sm['heldout'][0]:.4f} | {sm['seconds']:.0f} |")
    for m in METHODS:
        for s, ps in settings_of(fronts, m):
            sm = summary(ps)
            lines.append(f"| {m} | {setting_text(s)} | {sm['n']} | {pct(sm['forget'][0])} ± {100 * sm['forget'][1]:.1f} | "
                         f"{pct(sm['retain'][0])} ± {100 * sm['retain'][1]:.1f} | {sm['heldout'][0]:.4f} | {sm['seconds']:.0f} |")
    return lines


def chosen_json(fronts):
    out = {}
    for m in METHODS:
        c = chosen(fronts, m)
        if c:
            s, sm, why = c
            out[m] = {"setting": s, "why": why, "forget_rate": sm["forget"][0], "retain_accuracy": sm["retain"][0]}
    return out


ROBUSTNESS_BEGIN, ROBUSTNESS_END = "<!-- robustness:{concept} begin -->", "<!-- robustness:{concept} end -->"
ATTACKS = [("paraphrase", "paraphrase token"), ("adversarial", "adversarial embedding")]


def robustness_rows(robustness):
    """[(model, setting, [rows over seeds])] in the order of the file (teacher, distill, chosen points)."""
    out = []
    for r in robustness["rows"]:
        for model, setting, rows in out:
            if model == r["model"] and setting == r["setting"]:
                rows.append(r)
                break
        else:
            out.append((r["model"], r["setting"], [r]))
    return out


def robustness_paragraph(fronts, robustness):
    """The README's block about the attacks on the chosen points: a table and what each attack changed."""
    if not robustness["rows"]:
        return ""
    concept = fronts["concept"]
    tokens = sorted({f"`{t['token']}` for `{t['of']}`" for r in robustness["rows"] for t in r["paraphrase"]["tokens"].values()})
    a = robustness["attack"]
    lines = [ROBUSTNESS_BEGIN.format(concept=concept),
             f"Robustness, concept `{concept}`, seeds {', '.join(str(s) for s in robustness['seeds'])} (mean ± sd over seeds; "
             f"paraphrase {', '.join(tokens)}; adversarial: {a['steps']} Adam steps, radius {a['radius']:g}, lr {a['lr']:g}, "
             f"{a['images_per_prompt']} {a['targets']} images per forget prompt):", "",
             "| model | setting | seeds | retain_accuracy | forget_rate (token) | (paraphrase) | (adversarial) | attack loss before → after |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    rises = {kind: [] for kind, _ in ATTACKS}
    near, distilled = [], None  # chosen points within GOAL_LEVEL points: (adversarial, token, retain, model)
    floor = reference(fronts, "distill")["retain"][0] - GOAL_LEVEL / 100
    for model, setting, rows in robustness_rows(robustness):
        r = mean_sd([x["retain_accuracy"] for x in rows])
        f = mean_sd([x["forget_rate"] for x in rows])
        att = {kind: mean_sd([x[kind]["forget_rate"] for x in rows]) for kind, _ in ATTACKS}
        before = statistics.fmean(x["adversarial"]["loss_before"] for x in rows)
        after = statistics.fmean(x["adversarial"]["loss_after"] for x in rows)
        lines.append(f"| {model} | {setting_text(setting)} | {len(rows)} | {pct(r[0])} ± {100 * r[1]:.1f} | {pct(f[0])} ± {100 * f[1]:.1f} | "
                     + " | ".join(f"{pct(att[k][0])} ± {100 * att[k][1]:.1f}" for k, _ in ATTACKS) + f" | {before:.4f} → {after:.4f} |")
        if model in METHODS:
            for kind, _ in ATTACKS:
                rises[kind].append((att[kind][0] - f[0], model, f[0], att[kind][0]))
            if r[0] >= floor - 1e-12:
                near.append((att["adversarial"][0], f[0], r[0], model))
        elif model == "distill":
            distilled = att["adversarial"][0]
    parts = []
    for kind, label in ATTACKS:
        if rises[kind]:
            low, high = min(rises[kind]), max(rises[kind])
            most = (f"the largest rise: {LABELS[high[1]]}, {pct(high[2])} → {pct(high[3])}" if high[0] > 0
                    else "none of them rises")
            parts.append(f"the {label} moves the chosen points' mean forget rates by {100 * low[0]:+.1f} to {100 * high[0]:+.1f} "
                         f"points ({most})")
    if parts:
        lines += ["", "Against the concept's own token, " + "; ".join(parts) + "."]
        ranks = []
        for kind, label in ATTACKS:
            if rises[kind]:
                _, model, _, after = min(rises[kind], key=lambda r: r[3])
                ranks.append(f"under the {label}, {LABELS[model]}'s ({pct(after)})")
        token = min((r[2], r[1]) for r in rises[ATTACKS[0][0]])
        lines[-1] += (f" The lowest forget rate among the chosen points is, with the token, {LABELS[token[1]]}'s ({pct(token[0])}); "
                      + "; ".join(ranks) + ".")
    if rises["adversarial"]:
        lines += ["", goal_sentence(near, floor, distilled)]
    lines.append(ROBUSTNESS_END.format(concept=concept))
    return "\n".join(lines)


def goal_sentence(near, floor, distilled):
    """Which chosen point within GOAL_LEVEL points of the distilled student's retain accuracy forgets most,
    with the token and under the adversarial embedding, and whether any meets the goal (GOAL_RATE)."""
    head = (f"The goal set before the run: a forget rate under the adversarial embedding below {pct(GOAL_RATE)} with retain accuracy "
            f"within {GOAL_LEVEL} points of the distilled student's (≥ {pct(floor)}"
            + (f"; the distilled student itself, before any removal: {pct(distilled)} under the adversarial embedding" if distilled is not None else "")
            + ").")
    if not near:
        return head + f" No method's chosen point has retain accuracy within {GOAL_LEVEL} points, so none meets it."
    token = min(near, key=lambda n: (n[1], n[0]))
    adv = min(near)
    met = [n for n in sorted(near) if n[0] < GOAL_RATE]
    verdict = (f"Met by {', '.join(f'{LABELS[n[3]]} ({pct(n[0])})' for n in met)}." if met
               else f"No method meets it: the lowest is {pct(adv[0])}.")
    return (head + f" Among the {len(near)} chosen points within it, the lowest forget rate with the concept's token is "
            f"{LABELS[token[3]]}'s ({pct(token[1])}), and under the adversarial embedding {LABELS[adv[3]]}'s ({pct(adv[0])}). "
            + verdict)


CONVERGENCE_BEGIN, CONVERGENCE_END = "<!-- convergence:{concept} begin -->", "<!-- convergence:{concept} end -->"
TOLERANCE = 0.05
LAST = 4


def convergence_runs(fronts, convergence):
    """{seed: (distill curve, bilevel curve)} for the bilevel interleaved chosen setting; a curve is [(step, loss)]."""
    c = chosen(fronts, "bilevel_interleaved")
    if not c:
        return None, {}
    setting = c[0]
    out = {}
    for seed in fronts["seeds"]:
        runs = [r for r in convergence["runs"] if r["seed"] == seed]
        d = next((r for r in runs if r["method"] == "distill"), None)
        b = next((r for r in runs if r["method"] == "bilevel_interleaved" and r["setting"] == setting), None)
        if d and b:
            out[seed] = (list(zip(d["steps"], d["heldout_loss"])), list(zip(b["steps"], b["heldout_loss"])))
    return setting, out


def convergence_paragraph(fronts, convergence):
    concept = fronts["concept"]
    setting, runs = convergence_runs(fronts, convergence)
    if not runs:
        return ""
    every = convergence["probe_every"]
    area, end, d_end = [], [], []
    for d, b in runs.values():
        dv, bv = [v for _, v in d], [v for _, v in b]
        area.append(statistics.fmean(bv) / statistics.fmean(dv))
        end.append(statistics.fmean(bv[-LAST:]) / statistics.fmean(dv[-LAST:]))
        d_end.append(statistics.fmean(dv[-LAST:]))
    a, e = statistics.fmean(area), statistics.fmean(end)
    verdict = ("the lower level converges as fast with the upper level on" if a <= 1 + TOLERANCE
               else "the lower level converges more slowly with the upper level on")
    return "\n".join([
        CONVERGENCE_BEGIN.format(concept=concept),
        f"Convergence, concept `{concept}`, seeds {', '.join(str(s) for s in runs)}, held-out loss every {every} lower-level steps: "
        f"over the whole run, bilevel interleaved ({setting_text(setting)}, its chosen point) has {a:.2f}x the mean held-out loss of "
        f"distillation alone (the area under the curve; min–max over seeds {min(area):.2f}–{max(area):.2f}), and over the last "
        f"{LAST * every} steps {e:.2f}x (distillation: {statistics.fmean(d_end):.4f}): {verdict} here "
        f"(criterion: the area ratio at most {1 + TOLERANCE:.2f}).",
        CONVERGENCE_END.format(concept=concept)])


def plot_convergence(fronts, convergence, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setting, _ = convergence_runs(fronts, convergence)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    styles = {"distill": ("black", "distillation alone"), "bilevel_interleaved": ("tab:blue", "bilevel interleaved"),
              "bilevel_penalty": ("tab:green", "bilevel penalty")}
    for r in convergence["runs"]:
        if r["method"] not in styles or (r["method"] == "bilevel_interleaved" and r["setting"] != setting):
            continue
        colour, label = styles[r["method"]]
        label = f"{label} ({setting_text(r['setting'])})" if r["setting"] else label
        ax.plot(r["steps"], r["heldout_loss"], color=colour, alpha=0.8, lw=1.2, label=f"{label}, seed {r['seed']}",
                linestyle=["-", "--", ":"][fronts["seeds"].index(r["seed"]) % 3])
    ax.set_xlabel("lower-level (L_ft) steps")
    ax.set_ylabel("held-out denoising loss (fixed noise)")
    ax.set_yscale("log")
    ax.set_title(f"Concept '{fronts['concept']}': held-out loss during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot(fronts, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    for m, colour in zip(METHODS, ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:cyan", "tab:olive",
                                   "tab:brown"]):
        rows = [summary(ps) for _, ps in settings_of(fronts, m)]
        if not rows:
            continue
        rows.sort(key=lambda r: r["retain"][0])
        xs = [100 * r["retain"][0] for r in rows]
        ys = [100 * r["forget"][0] for r in rows]
        ax.errorbar(xs, ys, xerr=[100 * r["retain"][1] for r in rows], yerr=[100 * r["forget"][1] for r in rows],
                    marker="o", ms=4, capsize=2, color=colour, label=LABELS[m])
    for arm, marker in (("teacher", "*"), ("distill", "s")):
        r = reference(fronts, arm)
        ax.errorbar([100 * r["retain"][0]], [100 * r["forget"][0]], xerr=[100 * r["retain"][1]], yerr=[100 * r["forget"][1]],
                    marker=marker, ms=10, color="black", capsize=2, linestyle="none",
                    label="teacher" if arm == "teacher" else "distilled student")
    ax.set_xlabel("retain accuracy (%)")
    ax.set_ylabel("forget rate (%)  (best: bottom right)")
    ax.set_title(f"Concept '{fronts['concept']}': fronts at 600 L_ft + 150 L_CU steps, seeds {fronts['seeds']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fronts")
    ap.add_argument("--plot")
    ap.add_argument("--chosen", action="store_true")
    ap.add_argument("--chosen-table", action="store_true")
    ap.add_argument("--points-table", action="store_true")
    ap.add_argument("--paragraph", action="store_true")
    ap.add_argument("--check")
    ap.add_argument("--convergence-plot")
    ap.add_argument("--update")
    a = ap.parse_args()
    try:
        with open(a.fronts) as f:
            fronts = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{a.fronts}: {e}", file=sys.stderr)
        sys.exit(1)
    if a.plot:
        plot(fronts, a.plot)
    if a.chosen:
        print(json.dumps(chosen_json(fronts), indent=1))
    if a.points_table:
        print("\n".join(points_table(fronts)))
    if a.chosen_table:
        print("\n".join(chosen_table(fronts)))
    convergence = load_convergence(a.fronts)
    robustness = load_beside(a.fronts, "robustness.json")
    if a.convergence_plot and convergence:
        plot_convergence(fronts, convergence, a.convergence_plot)
    if a.paragraph:
        print(paragraphs(fronts, convergence, robustness))
    parts = blocks(fronts, convergence, robustness)
    if a.update:
        update(a.update, parts)
    if a.check:
        text = open(a.check).read()
        for part in parts:
            if part not in text:
                print(f"{a.check}: its paragraph {part.splitlines()[0]} is not the one {a.fronts} gives now; "
                      f"regenerate it with scripts/fronts_report.py {a.fronts} --paragraph", file=sys.stderr)
                sys.exit(1)


def update(path, parts):
    """Replaces each part's marked block in the file (the markers are the part's first and last lines)."""
    text = open(path).read()
    for part in parts:
        lines = part.splitlines()
        begin, end = text.find(lines[0]), text.find(lines[-1])
        if begin < 0 or end < begin:
            print(f"{path}: no block {lines[0]} ... {lines[-1]} to replace", file=sys.stderr)
            sys.exit(1)
        text = text[:begin] + part + text[end + len(lines[-1]):]
    with open(path, "w") as f:
        f.write(text)


def load_beside(fronts_path, name):
    """The named file of the same run (next to fronts.json), or None when the run has none."""
    import os
    path = os.path.join(os.path.dirname(fronts_path), name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_convergence(fronts_path):
    return load_beside(fronts_path, "convergence.json")


def blocks(fronts, convergence, robustness=None):
    """Every marked block of this run (each starts and ends with its marker line), in README order."""
    parts = [paragraph(fronts)]
    if convergence:
        parts.append(convergence_paragraph(fronts, convergence))
    if robustness:
        parts.append(robustness_paragraph(fronts, robustness))
    return [p for p in parts if p]


def paragraphs(fronts, convergence, robustness=None):
    return "\n\n".join(blocks(fronts, convergence, robustness))


if __name__ == "__main__":
    main()
