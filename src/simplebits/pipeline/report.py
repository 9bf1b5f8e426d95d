"""`simplebits report DIR`: one self-contained HTML page from a pipeline's output directory.

Everything is inline (PNG images as ``data:`` URIs, CSS in a ``<style>`` block, no scripts, no
fonts or anything else fetched), so the file reads offline and can be mailed or archived alone.
Plots are drawn with matplotlib (Agg backend, no display needed). The page is built from the
files under DIR only (``pipeline.json``, ``<stage>/stage.json`` and the images they name), so
``simplebits report`` rebuilds it at any time; sections appear for the stages that ran.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from ..errors import BadInputError, NotFoundError
from ..io import atomic_write_text

__all__ = ["write_report", "render_report"]

CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d8dde3; --accent: #2f6690; --bg-soft: #f4f6f8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 20px 60px; max-width: 1100px; overflow-wrap: anywhere; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 16px; }
nav { background: var(--bg-soft); padding: 8px 12px; border-radius: 6px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; display: inline-block; }
img { max-width: 100%; height: auto; display: block; image-rendering: pixelated; }
img.plot { image-rendering: auto; }
figure { margin: 10px 0; }
figcaption { color: var(--muted); font-size: 0.9em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: var(--bg-soft); }
.cards { display: flex; flex-wrap: wrap; gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px; flex: 1 1 300px; max-width: 100%;
        min-width: 0; }
.card img { margin: 0 auto 8px; }
.kv { color: var(--muted); font-size: 0.92em; }
.kv b { color: var(--fg); }
pre { background: var(--bg-soft); padding: 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-all;
      font-size: 0.85em; max-width: 100%; }
.note { color: var(--muted); font-size: 0.9em; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _pct(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "&ndash;"
    return f"{100 * acc['mean']:.2f} &plusmn; {100 * acc['std']:.2f}"


def _num(v: Any, fmt: str = ".3f") -> str:
    return "&ndash;" if v is None else format(v, fmt)


def _bits(st: dict[str, Any] | None) -> str:
    """A set's total storage (PNG images + labels) in readable bits: "48.2 kbit"."""
    if not st or st.get("total_bits") is None:
        return "&ndash;"
    b = float(st["total_bits"])
    for unit, k in (("Mbit", 1e6), ("kbit", 1e3)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b:.0f} bit"


def _img_file(out: Path, rel: str | None, alt: str, cls: str = "") -> str:
    if not rel:
        return ""
    p = out / rel
    if not p.is_file():
        return f'<p class="note">({_esc(rel)} is missing)</p>'
    raw = p.read_bytes()
    data = base64.b64encode(raw).decode()
    size = ""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and not cls:  # small pixel grids (8x8 or 28x28 images): shown enlarged
        w = int.from_bytes(raw[16:20], "big")
        k = min(4, -(-360 // max(1, w)))
        if k > 1:
            size = f' style="width: {w * k}px"'
    return f'<img{f" class={cls!r}" if cls else ""}{size} src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _plot(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img class="plot" src="data:image/png;base64,{data}" alt="plot">'


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------------------------------- sections


def _data(out: Path, f: dict[str, Any], files: dict[str, Any]) -> str:
    rows = [["data set", _esc(f["dataset"])], ["training images", str(f["n_train"])],
            ["test images", str(f["n_test"]) + (" (a class-balanced subset of the test split)"
                                                if f.get("test_size") else "")], ["classes", f"{f['num_classes']}: " + _esc(", ".join(f["classes"]))],
            ["image shape (C×H×W)", "×".join(map(str, f["shape"]))],
            ["training images per class", f"{min(f['counts_train'])}&ndash;{max(f['counts_train'])}"]]
    parts = ["<h2 id='data'>Data set</h2>", _table(["", "value"], rows)]
    b = f.get("bpd")
    if b:
        plt = _mpl()
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist(b["values"], bins=40, alpha=0.75, label=f"Glow {b['model']} (mean {b['mean']:.3f})", color="#2f6690")
        ax.hist(b["png_values"], bins=40, alpha=0.5, label=f"PNG (mean {b['png_mean']:.3f})", color="#d1495b")
        ax.set_xlabel("bits per model dimension (Glow bound) / per image dimension (PNG)")
        ax.set_ylabel("test images")
        ax.legend(frameon=False)
        ax.set_title(f"complexity of {b['n']} test images")
        native = (f"; <b>{b['native_mean']:.3f}</b> bits per dimension of the images as given"
                  if b.get("native_mean") is not None and abs(b["native_mean"] - b["mean"]) > 1e-9 else "")
        how = ("dequantisation bound, a code length" if b.get("dequantize") == "bound"
               else "midpoint estimate from an older version, not a code length")
        parts += [f"<p class='kv'>mean <b>{b['mean']:.3f} &plusmn; {b['std']:.3f}</b> bits per model dimension under "
                  f"the density model <b>{_esc(b['model'])}</b> ({how}; {b['n']} test images){native}. PNG "
                  f"<b>{b['png_mean']:.3f} &plusmn; {b['png_std']:.3f}</b> bpd of the images as given.</p>"
                  + (f"<p class='kv'>{_esc(b['note'])}</p>" if b.get("note") else ""),
                  f"<figure>{_plot(fig)}<figcaption>bpd histogram</figcaption></figure>"]
    parts.append(f"<figure>{_img_file(out, files.get('samples'), 'sample images')}"
                 "<figcaption>random training images, one row per class</figcaption></figure>")
    return "\n".join(parts)


def _baseline(f: dict[str, Any]) -> str:
    rows = [[str(r["ipc"]), _pct(r["accuracy"]), str(r["accuracy"]["n_train"]),
             ", ".join(str(s) for s in r["accuracy"]["seeds"]), _bits(r.get("storage"))] for r in f["rows"]]
    proto = f["rows"][0]["accuracy"]["protocol"] if f["rows"] else ""
    return ("<h2 id='baseline'>Random real baseline</h2>"
            f"<p class='lead'>Random real subsets with the same images per class, a fresh network per seed "
            f"(protocol {_esc(proto)}); a different subset per seed. Every accuracy below stands next to it.</p>"
            + _table(["IPC", "accuracy % (mean &plusmn; std)", "images", "seeds", "bits to store"], rows))


def _note(text: str | None) -> str:
    """A stage's note (the density model's blind spots) as one paragraph; "" without one."""
    return f"<p class='note'><b>Note:</b> {_esc(text)}</p>" if text else ""


def _condense(out: Path, f: dict[str, Any]) -> str:
    cards = []
    for s in f["sets"]:
        cards.append(
            f"<div class='card'><h3>{_esc(s['label'])}</h3>{_img_file(out, s.get('grid'), s['label'])}"
            f"<div class='kv'>accuracy <b>{_pct(s['accuracy'])}</b> % &middot; random real "
            f"<b>{_pct(s['baseline'])}</b> %"
            + (f" &middot; its start <b>{_pct(s['start'])}</b> %" if s.get("start") else "")
            + (" <b>(below its start)</b>" if s.get("below_start") else "")
            + f"<br>bpd <b>{_num(s.get('bpd'))}</b> (native <b>{_num(s.get('bpd_native'))}</b>) &middot; PNG bpd "
            f"<b>{_num(s.get('png_bpd'))}</b><br>file {_esc(s['file'])}</div></div>")
    rows = [[_esc(s["label"]), str(s["ipc"]), f"{s['lambda_sim']:g}", _num(s.get("bpd")), _num(s.get("bpd_native")),
             _num(s.get("png_bpd")),
             _pct(s["accuracy"]) + (" (below its start)" if s.get("below_start") else ""), _pct(s["baseline"]),
             _pct(s.get("start")), _bits(s.get("storage"))] for s in f["sets"]]
    return ("<h2 id='condense'>Condensed sets</h2>"
            "<p class='lead'>Each set beside random real images and beside the images its run started from "
            "(real initialisation; same protocol and seeds): a set below its start made the data worse. "
            "bpd: the dequantisation bound per model dimension; native bpd: the same bits per dimension of the "
            "images as stored; PNG bpd: of the images as stored; bits to store: the PNG files plus the hard "
            "labels (log<sub>2</sub> C bits each).</p>"
            + "".join(_note(n) for n in dict.fromkeys(s.get("blind_spot_note") for s in f["sets"]))
            + _table(["set", "IPC", "&lambda;", "bpd", "native bpd", "PNG bpd", "accuracy %", "random real %",
                      "its start %", "bits to store"], rows)
            + f"<div class='cards'>{''.join(cards)}</div>")


def _tradeoff(figures: dict[str, Any]) -> str:
    cond = figures.get("condense", {}).get("sets", [])
    simp = figures.get("simplify")
    if not cond and not simp:
        return ""
    plt = _mpl()
    panels = [p for p in (("condense", cond), ("simplify", simp)) if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 3.8), squeeze=False)
    data_bpd = (figures.get("data", {}).get("bpd") or {}).get("mean")
    for ax, (kind, val) in zip(axes[0], panels):
        if kind == "condense":
            for ipc in sorted({s["ipc"] for s in val}):
                pts = sorted((s for s in val if s["ipc"] == ipc and s.get("bpd") is not None), key=lambda s: s["bpd"])
                if pts:
                    ax.errorbar([s["bpd"] for s in pts], [100 * s["accuracy"]["mean"] for s in pts],
                                yerr=[100 * s["accuracy"]["std"] for s in pts], marker="o", capsize=3,
                                label=f"condensed, IPC {ipc}")
                    for s in pts:
                        ax.annotate(f"λ {s['lambda_sim']:g}", (s["bpd"], 100 * s["accuracy"]["mean"]),
                                    textcoords="offset points", xytext=(4, 4), fontsize=8)
                base = next((s["baseline"] for s in val if s["ipc"] == ipc and s.get("baseline")), None)
                if base and data_bpd is not None:
                    ax.errorbar([data_bpd], [100 * base["mean"]], yerr=[100 * base["std"]], marker="s", capsize=3,
                                linestyle="none", label=f"random real, IPC {ipc}")
            ax.set_title("condensed sets")
        else:
            rows = sorted(val["rows"], key=lambda r: r["bpd"]["mean"])
            ax.errorbar([r["bpd"]["mean"] for r in rows], [100 * r["retrain"]["mean"] for r in rows],
                        xerr=[r["bpd"]["std"] for r in rows], yerr=[100 * r["retrain"]["std"] for r in rows],
                        marker="o", capsize=3, label="SimpleBits, retrained")
            for r in rows:
                ax.annotate(f"λ {r['lambda_sim']:g}", (r["bpd"]["mean"], 100 * r["retrain"]["mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=8)
            o = val["original"]
            ax.errorbar([o["bpd"]], [100 * o["retrain"]["mean"]], yerr=[100 * o["retrain"]["std"]], marker="s",
                        capsize=3, linestyle="none", label="original images")
            ax.set_title(f"SimpleBits ({val['n_train']} training images)")
        ax.set_xlabel("bits per dimension")
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return ("<h2 id='tradeoff'>Accuracy against bits per dimension</h2>"
            "<p class='lead'>Each point: mean &plusmn; std over seeds; lower bpd means simpler images.</p>"
            f"<figure>{_plot(fig)}</figure>")


def _prune(f: dict[str, Any]) -> str:
    par = f["parent"]
    rows = [[_esc(r["parent"]), str(r["ipc_from"]), str(r["ipc_to"]), _esc(r["rule"]), str(r["kept"]),
             _pct(r["accuracy"]), _pct(r["baseline"]), _bits(r.get("storage"))] for r in f["rows"]]
    plt = _mpl()
    targets = sorted({r["ipc_to"] for r in f["rows"]})
    rules = list(dict.fromkeys(r["rule"] for r in f["rows"]))
    fig, ax = plt.subplots(figsize=(min(10.0, 2.5 + 0.9 * len(targets) * (len(rules) + 1)), 3.4))
    width = 0.8 / (len(rules) + 1)
    for j, rule in enumerate(rules + ["random real"]):
        xs, ys, es = [], [], []
        for i, t in enumerate(targets):
            r = next((r for r in f["rows"] if r["ipc_to"] == t and r["rule"] == rule), None)
            acc = (r or {}).get("accuracy") if rule != "random real" else \
                next((r["baseline"] for r in f["rows"] if r["ipc_to"] == t), None)
            if acc:
                xs.append(i + j * width)
                ys.append(100 * acc["mean"])
                es.append(100 * acc["std"])
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=rule)
    ax.set_xticks([i + width * len(rules) / 2 for i in range(len(targets))])
    ax.set_xticklabels([f"IPC {par['ipc']} → {t}" for t in targets])
    ax.set_ylabel("test accuracy %")
    ax.legend(frameon=False, fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return ("<h2 id='prune'>Pruning (IPC<sub>F</sub> &rarr; IPC<sub>T</sub>)</h2>"
            f"<p class='lead'>The set pruned: {_esc(par['label'])}"
            + (f", accuracy {_pct(par['accuracy'])} %" if par.get("accuracy") else "") + ".</p>"
            + _table(["set", "IPC<sub>F</sub>", "IPC<sub>T</sub>", "rule", "kept", "accuracy %", "random real %",
                      "bits to store"], rows)
            + f"<figure>{_plot(fig)}</figure>")


def _storage(figures: dict[str, Any]) -> str:
    """Accuracy against the bits a set costs to store, random real subsets of every size as the reference."""
    base = [r for r in figures.get("baseline", {}).get("rows", []) if r.get("storage")]
    sets = [(s["label"], s) for s in figures.get("condense", {}).get("sets", []) if s.get("storage")]
    sets += [(f"{r['parent']} → ipc{r['ipc_to']} {r['rule']}", r) for r in figures.get("prune", {}).get("rows", [])
             if r.get("storage")]
    if not base and not sets:
        return ""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if base:
        ax.errorbar([r["storage"]["total_bits"] for r in base], [100 * r["accuracy"]["mean"] for r in base],
                    yerr=[100 * r["accuracy"]["std"] for r in base], marker="s", capsize=3, color="0.4",
                    label="random real (IPC " + ", ".join(str(r["ipc"]) for r in base) + ")")
    for label, r in sets:
        ax.errorbar([r["storage"]["total_bits"]], [100 * r["accuracy"]["mean"]], yerr=[100 * r["accuracy"]["std"]],
                    marker="o", capsize=3, linestyle="none", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("bits to store the set (PNG images + hard labels)")
    ax.set_ylabel("test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    return ("<h2 id='storage'>Accuracy vs bits to store</h2>"
            "<p class='lead'>What each set costs to keep against what it teaches: its PNG files plus log<sub>2</sub> C "
            "bits per label. A set above the random-real line is worth its bits; below it, storing that many bits "
            "of random real images would teach more. Mean &plusmn; std over seeds.</p>"
            f"<figure>{_plot(fig)}</figure>")


def _scores(figures: dict[str, Any]) -> str:
    """DD-Ranking's scores of every set that has them (evaluate.scores = true)."""
    sets = [(s["label"], s) for s in figures.get("condense", {}).get("sets", []) if s.get("scores")]
    sets += [(f"{r['parent']} → ipc{r['ipc_to']} {r['rule']}", r) for r in figures.get("prune", {}).get("rows", [])
             if r.get("scores")]
    if not sets:
        return ""

    def ms(sc: dict[str, Any], k: str) -> str:
        return f"{sc['scores'][k]['mean']:.2f} &plusmn; {sc['scores'][k]['std']:.2f}"

    rows = [[_esc(label), _esc(r["scores"]["protocol"]), _pct(r["scores"]["accuracies"]["set_any"]),
             _pct(r["scores"]["accuracies"]["random_any"]), ms(r["scores"], "hlr"), ms(r["scores"], "ior"),
             ms(r["scores"], "lrs"), ms(r["scores"], "ars")] for label, r in sets]
    full = sets[0][1]["scores"]["accuracies"]["full_hard"]
    return ("<h2 id='scores'>DD-Ranking scores</h2>"
            "<p class='lead'>HLR: accuracy on the whole training set minus the set's, both with hard labels "
            f"(whole set: {_pct(full)} %; lower is better). IOR: the set minus random real of the same size under "
            "the same evaluation (higher is better). LRS and ARS: DD-Ranking's label- and augmentation-robust "
            "scores, 0-100. HLR and IOR in accuracy points; mean &plusmn; std over seeds.</p>"
            + _table(["set", "evaluation", "set %", "random real %", "HLR", "IOR", "LRS", "ARS"], rows))


def _simplify(out: Path, f: dict[str, Any], files: dict[str, Any]) -> str:
    o = f["original"]
    rows = [["originals", "&ndash;", _num(o["bpd"]), _num(o.get("bpd_native")), _num(o.get("png_bpd")), "&ndash;",
             _pct(o["retrain"]), "&ndash;", _bits(o.get("storage"))]]
    for r in f["rows"]:
        st = [c["storage"]["total_bits"] for c in f.get("cells", [])
              if c["lambda_sim"] == r["lambda_sim"] and c.get("storage")]
        rows.append(["SimpleBits", f"{r['lambda_sim']:g}",
                     f"{_num(r['bpd']['mean'])} &plusmn; {_num(r['bpd']['std'])}",
                     _num((r.get("bpd_native") or {}).get("mean")), _num(r["png_bpd"]["mean"]),
                     _pct(r["joint"]), _pct(r["retrain"]), _pct(r["finetune"]),
                     _bits({"total_bits": sum(st) / len(st)} if st else None)])
    note = (f.get("units") or {}).get("note")
    grids = "".join(
        f"<div class='card'><h3>{_esc(name)}</h3>{_img_file(out, v.get('grid'), name)}</div>"
        for name, v in files.items())
    return ("<h2 id='simplify'>SimpleBits: simplified training images</h2>"
            f"<p class='lead'>A simplifier trained jointly with a classifier ({f['epochs']} epochs on {f['n_train']} "
            "images); accuracies on the original test images: the joint classifier, a fresh classifier retrained on "
            "the simplified images, and the joint classifier finetuned on them. The first row retrains on the "
            "originals (the same training loop). bpd: the dequantisation bound per model dimension; native bpd: "
            "the same bits per dimension of the images as given; PNG bpd: of the images as given.</p>"
            + (f"<p class='note'>{_esc(note)}</p>" if note else "")
            + _note(f.get("blind_spot_note"))
            + _table(["", "&lambda;", "bpd", "native bpd", "PNG bpd", "joint %", "retrained %", "finetuned %",
                      "bits to store"], rows)
            + f"<div class='cards'>{grids}</div>"
            "<p class='note'>each grid: originals above their simplified versions</p>")


def _explain(out: Path, f: dict[str, Any], files: dict[str, Any]) -> str:
    return ("<h2 id='explain'>Explanation</h2>"
            f"<p class='lead'>A classifier trained on the data (test accuracy {100 * f['classifier_accuracy']:.2f} %); "
            f"{f['n']} {_esc(f['select'])} test images simplified in {_esc(f['space'])} space "
            f"({f['steps']} steps) so that the classifier's prediction stays: bpd <b>{f['bpd_orig']:.3f} &rarr; "
            f"{f['bpd_sim']:.3f}</b>, prediction kept for <b>{100 * f['prediction_kept']:.0f} %</b>.</p>"
            + _note(f.get("blind_spot_note"))
            + f"<figure>{_img_file(out, files.get('figure'), 'explanation figure')}<figcaption>originals, simplified "
            "versions and saliency maps</figcaption></figure>")


def _continual(out: Path, f: dict[str, Any], files: dict[str, Any]) -> str:
    tasks = f["tasks"]
    head = ["setting"] + [("after " if i == 0 else "+") + _esc(t) for i, t in enumerate(tasks)]
    rows = [[_esc(s["label"])] + [f"{100 * m:.2f} &plusmn; {100 * sd:.2f}" for m, sd in
                                  zip(s["seen_mean"]["mean"], s["seen_mean"]["std"])] for s in f["settings"]]
    return ("<h2 id='continual'>Continual learning</h2>"
            f"<p class='lead'>Tasks {_esc(' → '.join(tasks))}; replay: {_esc(f['replay'])} sets at IPC "
            f"{f['replay_ipc']}; mean accuracy % over the tasks seen so far.</p>"
            + _table(head, rows) + f"<figure>{_img_file(out, files.get('curve'), 'continual curve', 'plot')}</figure>")


def _settings(meta: dict[str, Any], toml_text: str) -> str:
    secs = meta.get("seconds", {})
    rows = [[_esc(k), f"{v:.1f}"] for k, v in secs.items()]
    rows.append(["<b>total</b>", f"<b>{sum(secs.values()):.1f}</b>"])
    info = [["simplebits", _esc(meta.get("version"))], ["python", _esc(meta.get("python"))],
            ["torch", _esc(meta.get("torch"))], ["device", _esc(meta.get("device"))],
            ["platform", _esc(meta.get("platform"))], ["started", _esc(meta.get("started"))],
            ["finished", _esc(meta.get("finished"))], ["peak RSS (MB)", _esc(meta.get("peak_rss_mb"))],
            ["config hash", _esc(meta.get("config_hash"))],
            ["stages reused from an earlier run", _esc(", ".join(meta.get("skipped") or []) or "none")]]
    cfg = meta.get("config", {})
    seeds = cfg.get("seed", 0), cfg.get("evaluate", {}).get("seeds", 1)
    return ("<h2 id='settings'>Settings, seeds, versions and timings</h2>"
            f"<p class='lead'>Evaluation seeds {seeds[0]}..{seeds[0] + seeds[1] - 1}; every stage derives its "
            "randomness from the config's seed.</p>"
            + _table(["", "value"], info) + "<h3>Seconds per stage (as last run)</h3>"
            + _table(["stage", "seconds"], rows) + f"<h3>Config</h3><pre>{_esc(toml_text)}</pre>")


def render_report(out: str | os.PathLike, meta: dict[str, Any] | None = None) -> str:
    """The report of pipeline directory ``out`` as an HTML string."""
    from .runner import load_result

    d = Path(out)
    meta_file, figures, files = load_result(d)
    meta = meta or meta_file
    cfg = meta.get("config", {})
    toml_path = d / "config.toml"
    toml_text = toml_path.read_text() if toml_path.is_file() else ""
    name = figures.get("data", {}).get("dataset") or meta.get("dataset") or cfg.get("data", {}).get("dataset", "")
    title = cfg.get("title") or f"simplebits report: {name}"
    sections, nav = [], []

    def add(anchor: str, label: str, body: str) -> None:
        if body:
            sections.append(body)
            nav.append(f"<a href='#{anchor}'>{label}</a>")

    if "data" in figures:
        add("data", "data", _data(d, figures["data"], files.get("data", {})))
    if "baseline" in figures:
        add("baseline", "random real", _baseline(figures["baseline"]))
    if "condense" in figures:
        add("condense", "condensed sets", _condense(d, figures["condense"]))
    add("tradeoff", "accuracy vs bpd", _tradeoff(figures))
    if "prune" in figures:
        add("prune", "pruning", _prune(figures["prune"]))
    add("storage", "accuracy vs bits", _storage(figures))
    add("scores", "scores", _scores(figures))
    if "simplify" in figures:
        add("simplify", "SimpleBits", _simplify(d, figures["simplify"], files.get("simplify", {})))
    if "explain" in figures:
        add("explain", "explanation", _explain(d, figures["explain"], files.get("explain", {})))
    if "continual" in figures:
        add("continual", "continual learning", _continual(d, figures["continual"], files.get("continual", {})))
    add("settings", "settings", _settings(meta, toml_text))
    state = meta.get("state")
    warn = "" if state == "done" else ("<p class='note'><b>This run has not finished</b>: the sections below are the "
                                       "stages finished so far.</p>")
    lead = (f"{_esc(name)} &middot; simplebits {_esc(meta.get('version'))} &middot; {_esc(meta.get('finished') or '')}"
            f" &middot; {sum(meta.get('seconds', {}).values()):.0f} s")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p class='lead'>{lead}</p>{warn}<nav>{''.join(nav)}</nav>"
            + "\n".join(sections) + "</body></html>\n")


def write_report(out: str | os.PathLike, *, meta: dict[str, Any] | None = None, path: str | os.PathLike | None = None
                 ) -> Path:
    """Write ``OUT/report.html`` (or ``path``) atomically; returns its path."""
    d = Path(out)
    if not d.is_dir():
        raise NotFoundError(f"{d} is not a directory; give the output directory of `simplebits run`")
    target = Path(path) if path is not None else d / "report.html"
    if target.is_dir():
        raise BadInputError(f"{target} is a directory; give a file name for the report")
    atomic_write_text(target, render_report(d, meta=meta))
    return target


# ------------------------------------------------------------------------------------------- sweeps


def _setting_text(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v[0] if isinstance(v, list) and len(v) == 1 else v}" for k, v in setting.items()) or "-"


def sweep_table_text(table: list[dict[str, Any]]) -> str:
    """The grouped rows of a sweep as plain text (what `simplebits sweep` prints)."""
    if not table:
        return "(no finished cells)"
    head = ["setting", "set", "accuracy % (mean ± std)", "n", "bpd"]
    rows = [[_setting_text(r["setting"]), r["label"],
             "-" if r["mean"] is None else f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}", str(r["n"]),
             "-" if r["bpd"] is None else f"{r['bpd']:.3f}"] for r in table]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _sweep_tradeoff(table: list[dict[str, Any]]) -> str:
    pts = [r for r in table if r["kind"] == "condensed" and r["bpd"] is not None and r["mean"] is not None]
    if not pts:
        return ""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label in dict.fromkeys(_setting_text({k: v for k, v in r["setting"].items() if "lambda" not in k})
                               for r in pts):
        mine = sorted((r for r in pts if _setting_text({k: v for k, v in r["setting"].items()
                                                        if "lambda" not in k}) == label), key=lambda r: r["bpd"])
        ax.errorbar([r["bpd"] for r in mine], [100 * r["mean"] for r in mine], yerr=[100 * r["std"] for r in mine],
                    marker="o", capsize=3, label=label if label != "-" else "condensed")
    ax.set_xlabel("bits per dimension")
    ax.set_ylabel("test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return ("<h2 id='tradeoff'>Accuracy against bits per dimension</h2><p class='lead'>Condensed sets of every cell; "
            "cells that differ only in seed pooled (mean &plusmn; std over seeds &times; networks).</p>"
            f"<figure>{_plot(fig)}</figure>")


def render_sweep_report(out: str | os.PathLike) -> str:
    """The report of a sweep folder (``simplebits sweep``) as an HTML string: the grid, every
    cell's state and time with a link to its own report, the grouped table, the accuracy-vs-bpd
    plot and the pruning table read from the cells' results."""
    from .sweeps import load_sweep_result, sweep_prune_table

    d = Path(out)
    res = load_sweep_result(d)
    meta = res["meta"]
    grid = "".join(f"<li><code>{_esc(k)}</code>: {_esc(', '.join(json.dumps(v) for v in vals))}</li>"
                   for k, vals in res["grid"].items())
    cell_rows = []
    for c in res["cells"]:
        link = f"{c['folder']}/report.html"
        has = (d / link).is_file()
        cell_rows.append([_esc(c["name"]), _esc(_setting_text(c["overrides"])), _esc(c.get("state")),
                          f"{c.get('seconds', 0):.0f} s" + (" (finished earlier)" if c.get("skipped_cell") else ""),
                          f"<a href='{_esc(link)}'>report</a>" if has else "&ndash;"])
    table = res["table"]
    rows = [[_esc(_setting_text(r["setting"])), _esc(r["label"]),
             "&ndash;" if r["mean"] is None else f"{100 * r['mean']:.2f} &plusmn; {100 * r['std']:.2f}", str(r["n"]),
             _num(r["bpd"])] for r in table]
    sections = [
        f"<h2 id='grid'>Grid</h2><ul>{grid}</ul><p class='lead'>{len(res['cells'])} cells on "
        f"{_esc(meta.get('engine'))}, "
        f"{_esc(meta.get('cpus_per_task'))} CPU thread(s) per cell; {float(meta.get('seconds', 0)):.0f} s wall.</p>",
        "<h2 id='cells'>Cells</h2>" + _table(["cell", "setting", "state", "time", ""], cell_rows),
        "<h2 id='results'>Results</h2><p class='lead'>Every set of every finished cell; cells that differ only in "
        "<code>seed</code> pooled: mean &plusmn; std over all their networks' accuracies (n).</p>"
        + _table(["setting", "set", "accuracy %", "n", "bpd"], rows),
        _sweep_tradeoff(table),
    ]
    pt = sweep_prune_table(d, cells=res["cells"])
    if pt is not None:
        body = []
        for net in pt.nets:
            prow = [[str(ipc)] + [_esc(pt.summary(pt.cells.get(net, {}).get(r, {}).get(str(ipc), [])))
                                  for r in pt.rules] for ipc in pt.ipcs]
            body.append(f"<h3>{_esc(net)}</h3>" + _table(["IPC<sub>T</sub>"] + [_esc(r) for r in pt.rules], prow))
        sections.append(f"<h2 id='prune'>Pruning table</h2><p class='lead'>{_esc(pt.source)} pruned; accuracy % "
                        "pooled over the cells (prune-table.json holds it as a PruneTable).</p>" + "".join(body))
    toml_path = d / "sweep.toml"
    if toml_path.is_file():
        sections.append(f"<h2 id='settings'>Sweep config</h2><pre>{_esc(toml_path.read_text())}</pre>")
    title = f"simplebits sweep: {d.name}"
    warn = "" if meta.get("state") == "done" else (
        f"<p class='note'><b>Not every cell finished</b> (state {_esc(meta.get('state'))}); rerun the sweep to "
        "continue.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><h1>{_esc(title)}</h1>{warn}"
            + "\n".join(s for s in sections if s) + "</body></html>\n")


def write_sweep_report(out: str | os.PathLike, *, path: str | os.PathLike | None = None) -> Path:
    """Write ``OUT/report.html`` of a sweep folder (or ``path``) atomically; returns its path."""
    d = Path(out)
    target = Path(path) if path is not None else d / "report.html"
    if target.is_dir():
        raise BadInputError(f"{target} is a directory; give a file name for the report")
    atomic_write_text(target, render_sweep_report(d))
    return target
