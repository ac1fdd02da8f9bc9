"""The run report: one HTML page (images embedded, opens offline) and the same content as Markdown (images beside
it in ``report_files/``): the table of models, CED curves on one plot, per-subset bars, the hardest faces, and
training curves. Built from what a pipeline's stages wrote; nothing is recomputed."""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import numpy as np

from kdmark.io import atomic_write_text, save_figure
from kdmark.metrics import plot_ced

__all__ = ["write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _per_image(eval_dir: Path, name: str) -> np.ndarray:
    with open(eval_dir / name / "per_image.csv") as f:
        return np.array([float(r["nme"]) for r in csv.DictReader(f)])


def _subset_bars(rows: list[dict], path: Path) -> Path | None:
    tags = sorted({t for r in rows for t in r.get("subsets", {})} - {"train", "test", "val"})
    if not tags:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, len(tags) * 1.3), 3.6), dpi=110)
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        vals = [r["subsets"].get(t, {}).get("nme", np.nan) * 100 for t in tags]
        ax.bar(np.arange(len(tags)) + i * width, vals, width, label=r["model"])
    ax.set_xticks(np.arange(len(tags)) + width * (len(rows) - 1) / 2, tags)
    ax.set_ylabel("NME (%)")
    ax.set_title("NME per subset")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _training_curves(run_dir: Path, names: list[str], path: Path) -> Path | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=110)
    drawn = False
    for name in names:
        log = run_dir / name / "metrics.csv"
        if not log.is_file():
            log = run_dir / name / "finetune" / "metrics.csv"
        if not log.is_file():
            continue
        with open(log) as f:
            rows = [r for r in csv.DictReader(f) if r.get("val_nme")]
        if rows:
            ax.plot([int(r["epoch"]) for r in rows], [float(r["val_nme"]) * 100 for r in rows], "-o", ms=3,
                    label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel="validation NME (%)", title="Training curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    t = rows[0]["threshold"]
    head = ["model", "NME (%)", f"FR@{t:g} (%)", f"AUC@{t:g}", "params (M)", "MACs (M)", "size (MB)",
            "CPU latency (ms, 1 thread)"]
    body = [[r["model"], f"{r['nme'] * 100:.3f}", f"{r['fr'] * 100:.2f}", f"{r['auc']:.4f}",
             f"{r['params'] / 1e6:.3f}", f"{r['macs'] / 1e6:.1f}", f"{r['size_bytes'] / 1e6:.2f}",
             f"{r['latency_ms_1t']:.2f}"] for r in rows]
    return head, body


def _comparisons(rows: list[dict], compare) -> tuple[list[str], list[str], list[list[str]]]:
    """The pipeline's ``compare`` pairs as sentences and a table: each ingredient's change in NME (relative) and
    in cost (parameters, MACs), as measured by the eval stage."""
    by = {r["model"]: r for r in rows}
    lines, body = [], []
    for c in compare:
        a, b = by.get(c.baseline), by.get(c.variant)
        if a is None or b is None:
            continue
        rel = (b["nme"] - a["nme"]) / a["nme"] * 100
        verdict = "better" if rel < 0 else "worse" if rel > 0 else "no change"
        lines.append(f"{c.what}: {c.variant} {b['nme'] * 100:.3f}% vs {c.baseline} {a['nme'] * 100:.3f}% NME "
                     f"({rel:+.1f}% relative, {verdict}); {b['params'] / a['params']:.2f}x the parameters, "
                     f"{b['macs'] / a['macs']:.2f}x the MACs")
        body.append([c.what, c.baseline, f"{a['nme'] * 100:.3f}", c.variant, f"{b['nme'] * 100:.3f}",
                     f"{rel:+.1f}%", f"{b['params'] / a['params']:.2f}x", f"{b['macs'] / a['macs']:.2f}x"])
    # (no latency ratio: one-thread latencies of two identical networks differ by up to 15% on a 2-core machine;
    # each model's own latency is in the table of every model)
    head = ["ingredient", "without", "NME (%)", "with", "NME (%)", "NME change", "params", "MACs"]
    compared = [by[n] for n in dict.fromkeys(n for c in compare for n in (c.baseline, c.variant)) if n in by]
    if compared:
        best = min(compared, key=lambda r: r["nme"])
        lines.insert(0, f"best of the compared models: {best['model']} ({best['nme'] * 100:.3f}% NME, "
                        f"{best['params'] / 1e6:.2f} M parameters)")
    return lines, head, body


def _img_html(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f'{html.escape(alt)}</figcaption></figure>'


SEED_NOTE = ("Each model was trained once (one seed): a difference smaller than the seed-to-seed spread is not "
             "evidence (train again with seed=N to measure it; BENCHMARKS.md has the spreads measured so far).")


def _html_table(head: list[str], body: list[list[str]]) -> str:
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in b) + "</tr>" for b in body) + "</table>"


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *["| " + " | ".join(b) + " |" for b in body]]


def write_report(run_dir: str | Path, eval_stage: str = "eval", title: str | None = None,
                 compare=()) -> tuple[Path, Path, list[str]]:
    """Write ``report.html`` and ``report.md`` in ``run_dir`` from its eval stage's summary; ``compare`` (the
    pipeline's ``Comparison`` pairs) adds what each ingredient bought. Returns both paths and those findings."""
    run_dir = Path(run_dir)
    eval_dir = run_dir / eval_stage
    rows = json.loads((eval_dir / "summary.json").read_text())
    files = run_dir / "report_files"
    files.mkdir(exist_ok=True)
    names = [r["model"] for r in rows]
    figures = [(plot_ced({n: _per_image(eval_dir, n) for n in names}, rows[0]["threshold"], files / "ced.png",
                         title=f"CED of every model ({rows[0]['normaliser']})"), "CED curves of all models")]
    bars = _subset_bars(rows, files / "subsets.png")
    if bars:
        figures.append((bars, "NME per subset"))
    final = names[-1]
    worst = eval_dir / final / "worst.png"
    if worst.is_file():
        (files / "worst.png").write_bytes(worst.read_bytes())
        figures.append((files / "worst.png", f"The hardest faces for {final}: ground truth (coloured by side) "
                                             "and prediction (yellow crosses)"))
    curves = _training_curves(run_dir, names, files / "curves.png")
    if curves:
        figures.append((curves, "Validation NME during training"))
    head, body = _table(rows)
    title = title or f"kdmark report: {run_dir.name}"
    findings, chead, cbody = _comparisons(rows, compare)
    md = [f"# {title}", ""]
    if cbody:
        md += ["## What each ingredient buys", "", *[f"- {f}" for f in findings], "", *_md_table(chead, cbody), "",
               SEED_NOTE, "", "## Every model", ""]
    md += [*_md_table(head, body),
           "", f"{rows[0]['num_images']} evaluation faces; NME normalised by {rows[0]['normaliser']}.", ""]
    md += [f"![{alt}](report_files/{p.name})\n\n{alt}\n" for p, alt in figures]
    table_html = _html_table(head, body)
    ingredients = (f"<h2>What each ingredient buys</h2><ul>{''.join(f'<li>{html.escape(f)}</li>' for f in findings)}"
                   f"</ul>{_html_table(chead, cbody)}<p>{html.escape(SEED_NOTE)}</p><h2>Every model</h2>"
                   if cbody else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:1.5em 0}}
figcaption{{color:#555;font-size:90%}}</style></head><body><h1>{html.escape(title)}</h1>
{ingredients}{table_html}
<p>{rows[0]['num_images']} evaluation faces; NME normalised by {html.escape(rows[0]['normaliser'])}.</p>
{"".join(_img_html(p, alt) for p, alt in figures)}
<script>window.addEventListener("load", function () {{  /* lets a headless browser check every image decoded */
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
}});</script></body></html>"""
    html_path = atomic_write_text(run_dir / "report.html", page)
    md_path = atomic_write_text(run_dir / "report.md", "\n".join(md))
    return html_path, md_path, findings
