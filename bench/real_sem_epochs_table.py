"""Markdown tables of bench/results/real_sem_epochs.md from the run folder (default /tmp/rs_runs).

Per run ``e{E}s{S}``: ``_bench.json`` (bench/real_sem_reference.py --json), ``_validate.json``,
``_evaluate.json``, ``_train_run.json`` (the run's metrics/ and models/), ``.log`` (dvc repro
wall time, model sha256) and, for seeds other than 42, ``fixval_e{E}s{S}.json``: the validate stage
run with the seed-42 params on that model, so that every model is scored on the same images.

    python bench/real_sem_epochs_table.py /tmp/rs_runs
"""
import glob, json, re, sys
from pathlib import Path
D = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/rs_runs")
rows = []
for b in sorted(D.glob("e*s*_bench.json")):
    e, s = map(int, re.match(r"e(\d+)s(\d+)_bench", b.name).groups())
    bench = json.loads(b.read_text())
    sp = bench["metrics"]["count"]["split_labels"]
    errs = [r["split_labels_error_pct"] for r in bench["table"] if r.get("split_labels_error_pct") is not None]
    within = sum(abs(x) <= 5 for x in errs)
    por = bench["metrics"].get("porosity", {})
    vj = json.loads((D / f"e{e}s{s}_validate.json").read_text())["targets"]
    v, gt = vj["predicted"], vj["ground_truth"]["count"]
    fx = D / (f"e{e}s{s}_validate.json" if s == 42 else f"fixval_e{e}s{s}.json")
    fv = json.loads(fx.read_text())["targets"]["predicted"] if fx.exists() else None
    ev = json.loads((D / f"e{e}s{s}_evaluate.json").read_text())
    tr = {}
    for name in (f"e{e}s{s}_train_run.json",):
        p = D / name
        if p.exists():
            tr = json.loads(p.read_text())
    log = (D / f"e{e}s{s}.log").read_text()
    sha = re.search(r"([0-9a-f]{64})  \S*model.pt", log)
    repro = re.search(r"repro rc=(\d+) wall_s=(\d+)", log)
    c = v["count"]
    rows.append(dict(epochs=e, seed=s, mean=sp["mean_abs_pct"], max=sp["max_abs_pct"], within=f"{within}/{len(errs)}",
                     pooled=sp["pooled_pct"], pmean=por.get("mean_abs_pp"), pmax=por.get("max_abs_pp"),
                     vpor=v["porosity_max_abs_pp"], vc20=c["<=20%"]["best_max_abs_pct"], vc40=c[">20%"]["best_max_abs_pct"],
                     vest=c["<=20%"]["best_estimator"] + "/" + c[">20%"]["best_estimator"], vmet=v["all_met"], gt20=gt["<=20%"]["best_max_abs_pct"], gt40=gt[">20%"]["best_max_abs_pct"],
                     fpor=fv and fv["porosity_max_abs_pp"], f20=fv and fv["count"]["<=20%"]["best_max_abs_pct"],
                     f40=fv and fv["count"][">20%"]["best_max_abs_pct"], fmet=fv and fv["all_met"],
                     dice=ev["pore"]["dice"]["mean"], train_s=tr.get("seconds"), repro_s=int(repro.group(2)) if repro else None,
                     sha=sha.group(1)[:12] if sha else "?"))
hdr = ["epochs", "seed", "split mean abs err %", "max abs err %", "within 5 %", "pooled %", "porosity mean pp",
       "porosity max pp", "validate porosity max pp", "validate count max % <=20 %", "validate count max % 20-40 %",
       "validate estimator", "validate all_met", "same count max % on true masks <=20 / 20-40",
       "seed-42 val images: porosity max pp", "seed-42 val: count max % <=20 %", "seed-42 val: count max % 20-40 %", "seed-42 val: all met", "test Dice (mean)", "train s", "dvc repro s", "model sha256"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
f = lambda x, n=2: "-" if x is None else (f"{x:.{n}f}" if isinstance(x, float) else str(x))
for r in sorted(rows, key=lambda r: (r["epochs"], r["seed"])):
    print("| " + " | ".join([str(r["epochs"]), str(r["seed"]), f(r["mean"]), f(r["max"]), r["within"], f(r["pooled"]),
                             f(r["pmean"]), f(r["pmax"]), f(r["vpor"], 3), f(r["vc20"], 3), f(r["vc40"], 3), r["vest"], str(r["vmet"]), f(r["gt20"]) + " / " + f(r["gt40"]),
                             f(r["fpor"], 3), f(r["f20"], 3), f(r["f40"], 3), str(r["fmet"]),
                             f(r["dice"], 4), f(r["train_s"], 0), f(r["repro_s"]), r["sha"]]) + " |")
# per-epoch means over seeds
import statistics as st
print()
print("| epochs | runs | split mean abs err %, mean over seeds (min-max) | pooled % mean (min-max) | porosity mean pp, mean (min-max) | validate targets met (own images) | met on seed-42 val images |")
print("|---|---|---|---|---|---|---|")
for e in sorted({r["epochs"] for r in rows}):
    rr = [r for r in rows if r["epochs"] == e]
    g = lambda k: f"{st.mean(r[k] for r in rr):.2f} ({min(r[k] for r in rr):.2f} to {max(r[k] for r in rr):.2f})"
    print(f"| {e} | {len(rr)} | {g('mean')} | {g('pooled')} | {g('pmean')} | {sum(r['vmet'] for r in rr)}/{len(rr)} | {sum(bool(r['fmet']) for r in rr)}/{sum(r['fmet'] is not None for r in rr)} |")
# the same models with measure.scale: auto (bench --scale auto), where run
auto = sorted(D.glob("auto_e*s*.json"))
if auto:
    print()
    print("| epochs | seed | split mean abs err % (scale auto) | max abs err % | within 5 % | pooled % | porosity mean pp |")
    print("|---|---|---|---|---|---|---|")
    got = []
    for a in auto:
        e, s = map(int, re.match(r"auto_e(\d+)s(\d+)", a.name).groups())
        m = json.loads(a.read_text())
        sp, errs = m["metrics"]["count"]["split_labels"], [r["split_labels_error_pct"] for r in m["table"]]
        got.append((e, s, sp, sum(abs(x) <= 5 for x in errs), len(errs), m["metrics"]["porosity"]["mean_abs_pp"]))
    for e, s, sp, w, n, pm in sorted(got, key=lambda g: (g[0], g[1])):
        print(f"| {e} | {s} | {sp['mean_abs_pct']:.2f} | {sp['max_abs_pct']:.2f} | {w}/{n} | {sp['pooled_pct']:.2f} | {pm:.2f} |")
