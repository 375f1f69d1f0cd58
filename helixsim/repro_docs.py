"""Regenerate docs/reproducing.md, its figures and the README's reproduction table from code.

:func:`render` and :func:`helixsim.reproduce.claims_table` turn the runs of
:func:`helixsim.reproduce.reproduce` under the three kernel models (calibrated,
default-efficiency roofline, textbook roofline) into the page and the table; they are
registered with ``helixsim docs`` (:mod:`helixsim.docgen.reproduction`), which rewrites them
with every other generated part (``python -m helixsim.repro_docs`` runs the same).
Nothing in these documents is typed by hand.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from .pareto import gain_target
from .reproduce import BLOG, Reproduction, claims_table, points
from .search import BASELINES
from .specs.registry import load_efficiency

README_BEGIN = "<!-- generated:reproduce-table -->"   # the block helixsim docs refills (docgen/reproduction.py)
README_END = "<!-- /generated:reproduce-table -->"
FIGURES = ("paper-fig5-deepseek-r1-1m-frontier", "paper-fig6-llama-405b-1m-frontier",
           "paper-fig5-deepseek-r1-1m-helix-breakdown", "paper-fig7-hopb-llama-3.1-405b-frontier",
           "gb300-deepseek-r1-1m-frontier")
KERNEL_MODELS = (
    ("calibrated", {}, "**Calibrated (the default)**: per-kernel times interpolated from measured GB200 and "
     "GB300 kernels.", "helixsim reproduce"),
    ("roofline", {"calibration": "none"}, None, "helixsim reproduce --calibration none"),
    ("ideal", {"ideal": True}, "**Textbook roofline** (peaks, no floors, no overheads).",
     "helixsim reproduce --ideal"),
)


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _fastest(rep: Reproduction, study: str, frontier: str = "Helix") -> pd.Series:
    res = next(r for r in rep.results if r.spec.name == study)
    f = res.frontiers[frontier]
    return f.loc[f["tokens_per_s_user"].idxmax()]


def _share(rep: Reproduction, model: str, label: str | None) -> str:
    """The batched all-to-all's share of lockstep attention + all-to-all at one Helix frontier point."""
    t = rep.hopb_tables[model]
    row = t[t["label"] == label]
    if row.empty:
        return "n/a"
    return _pct(float(row["lockstep_a2a_us"].iloc[0] / row["lockstep_us"].iloc[0]))


def _best_row(rows: pd.DataFrame, x0: float = 0.0) -> pd.Series:
    ok = rows[rows["tokens_per_s_user"] >= x0]
    return ok.loc[ok["tokens_per_s_gpu"].idxmax()]


def _throughput_story(rep: Reproduction, study: str) -> dict:
    """Where the DeepSeek-R1 throughput gain peaks, and how close the baseline comes without a floor."""
    res = next(r for r in rep.results if r.spec.name == study)
    helix, base = points(res.table, ["helix"]), points(res.table, BASELINES)
    _, x0 = gain_target(helix, base, "tokens_per_s_gpu")
    h, b = _best_row(helix, x0), _best_row(base, x0)
    hm, bm = _best_row(helix), _best_row(base)
    name = lambda r: f"{r['strategy']} {r['label']} ({r['tokens_per_s_gpu']:.2f} tokens/s/GPU)"  # noqa: E731
    return {"x0": x0, "helix": name(h), "base": name(b), "base_max": name(bm),
            "share": float(bm["tokens_per_s_gpu"] / hm["tokens_per_s_gpu"])}


def _roofline_blurb() -> str:
    e = load_efficiency("gb200-nvl72")
    return (f"**Roofline with the default efficiencies** (HBM {e.hbm:g}, GEMM {e.gemm_compute:g}, attention "
            f"{e.attention_compute:g}, NVLink {e.nvlink:g}, {e.kernel_floor_us:g} µs per kernel, measured "
            "collective floors; `hardware/efficiency/`).")


def hopb_table(rep: Reproduction, model: str, rows: int = 6) -> str:
    """The HOP-B-on Helix frontier's fastest points where HOP-B applies, chunk by chunk (per layer)."""
    t = rep.hopb_tables[model]
    t = t[(t["kvp"] > 1) & (t["chunks"] > 1)].sort_values("tokens_per_s_user", ascending=False).head(rows)
    lines = ["| point | requests per GPU (chunks) | attention chunk | all-to-all chunk | lockstep (off) "
             "| HOP-B pipeline | step change if forced on |", "|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['label']} | {int(r['chunks'])} | {r['attention_chunk_us']:.1f} µs | "
                     f"{r['a2a_chunk_us']:.1f} µs | {r['lockstep_us']:.1f} µs | {r['pipelined_us']:.1f} µs | "
                     f"{100 * r['hopb_ttl_change']:+.1f} % |")
    return "\n".join(lines)


def render(reps: dict[str, Reproduction]) -> str:
    """The whole of docs/reproducing.md."""
    cal, roof, ideal = reps["calibrated"], reps["roofline"], reps["ideal"]
    d, ll, blog = cal.metrics["deepseek-r1"], cal.metrics["llama-3.1-405b"], cal.metrics[BLOG]
    fast = _fastest(cal, "paper-fig5-deepseek-r1-1m")
    front = cal.hopb_tables["llama-3.1-405b"]
    piped = front[(front["kvp"] > 1) & (front["chunks"] > 1)].sort_values("tokens_per_s_user", ascending=False)
    ex = piped.iloc[0] if len(piped) else None
    out = [
        "# Reproducing the Helix paper",
        "",
        "Generated by `helixsim docs` (every number below comes from code; do not edit by hand).",
        "",
        "`helixsim reproduce --out out/` runs the paper's studies (sweeps `paper-fig5-deepseek-r1-1m`,",
        "`paper-fig6-llama-405b-1m`, `paper-fig7-hopb`: GB200 NVL72, FP4 weights, KV and arithmetic,",
        "1 to 64 GPUs, context 10^6, every valid helix / tp / ep / medha layout with pp 1, 2, 4 and",
        "batches up to what fits) and the TensorRT-LLM Helix blog's measured setting (sweep",
        "`gb300-deepseek-r1-1m`: GB300 NVL72, FP4 weights, FP8 KV cache, no HOP-B, Helix against TP",
        "and EP without KV parallelism), and sets each claim beside the simulated value. Nothing in",
        "helixsim was tuned to these numbers; the kernel model is calibrated on measured kernels",
        "only (`docs/calibration.md`).",
        "",
        "## The results, three ways",
        "",
    ]
    for name, _, blurb, cmd in KERNEL_MODELS:
        out += [blurb or _roofline_blurb(), "", claims_table(reps[name]), "", f"`{cmd}`", ""]
    out += [
        "Definitions (`helixsim/pareto.py`, `helixsim/reproduce.py`). Every gain reads *all* feasible",
        "points of each side, not only frontier points. Interactivity gain: the ratio of the largest",
        "tokens/s/user. Throughput and batch gains: over every interactivity target x0 (each point's",
        "tokens/s/user), the ratio of Helix's best tokens/s/GPU (largest batch) among its points with",
        "tokens/s/user >= x0 to the baseline's best among its points with tokens/s/user >= x0; the",
        "largest ratio is reported. HOP-B loss: each configuration (layout, batch) compared with",
        "itself with HOP-B off, `1 - x_off / x_on`; the table gives the largest over the points of the",
        "HOP-B-on Helix frontier (the JSON also gives the largest over every configuration,",
        "`hopb_off_loss_any_layout`). No frontier is interpolated, least of all across layouts.",
        "Ranges in brackets (`<metric>_range` in `reproduce --json`): each gain computed again with",
        "every configuration at the fast end of its 80 % TTL interval, and again with every one at the",
        "slow end (`docs/calibration.md`, the interval rule; one consistent world per end, as Helix's",
        "and the baselines' intervals come from the same kernel families), spanning those and the",
        "central value. A gain is a maximum over discrete configurations, so its range can jump by a",
        "whole batch step. The textbook roofline is a bound with no interval.",
        "The paper's baseline is the union of tp, ep (DP attention + EP) and medha (the FFN on one TP",
        "group, no expert parallelism, as the paper describes Medha), each with pp. helixsim's",
        "`medha-ep` (Medha's FFN spread over EP ranks) is an extension, reported apart",
        f"(`with_medha_ep` in the JSON; DeepSeek-R1 calibrated: {_x(d['with_medha_ep']['interactivity_gain'])} "
        f"interactivity, {_x(d['with_medha_ep']['throughput_gain'])} throughput,",
        f"{_x(d['with_medha_ep']['batch_gain'])} batch).",
        "",
        "![DeepSeek-R1 frontier](figures/paper-fig5-deepseek-r1-1m-frontier.png)",
        "![Llama-405B frontier](figures/paper-fig6-llama-405b-1m-frontier.png)",
        "![DeepSeek-R1 on GB300, the blog's setting](figures/gb300-deepseek-r1-1m-frontier.png)",
        "![Helix frontier breakdown, DeepSeek-R1](figures/paper-fig5-deepseek-r1-1m-helix-breakdown.png)",
        "",
        "Shaded bands (Helix and the best baseline): between the frontiers of the points moved to",
        "the fast and to the slow ends of their 80 % intervals, each along its own ray. Rings: points",
        "with more than half of the step priced outside the measured kernels (an extrapolation law or",
        "the roofline).",
        "",
        "## HOP-B, configuration by configuration",
        "",
        "Without HOP-B the requests' attention runs in lockstep and the partial outputs leave in",
        "one batched all-to-all (paper Fig. 3, upper timeline: 16 units of attention, then 9.6 of",
        "communication). With HOP-B each request is a chunk: its attention, then its own all-to-all",
        "while the next request's attention runs, `c + (n-1) max(c, m) + m` (Fig. 3: 17.2 units",
        "against 25.6). helixsim prices the attention chunk as the attention kernel at batch 1 and",
        "the all-to-all chunk as an all-to-all of one request's partial outputs, each with its own",
        "fixed cost (`helixsim/cost/step.py`, `hopb_chunks_ms`); the step uses HOP-B only where",
        "that pipeline is shorter than lockstep. Per layer, on the calibrated HOP-B-on frontier's",
        "fastest points where HOP-B applies (kvp > 1, more than one request per GPU):",
        "",
        "DeepSeek-R1:",
        "",
        hopb_table(cal, "deepseek-r1"),
        "",
        "Llama-3.1-405B:",
        "",
        hopb_table(cal, "llama-3.1-405b"),
        "",
        "`helixsim docs` (from `helixsim.hopb_study.hopb_chunks`)",
        "",
        "## Where helixsim agrees",
        "",
        f"- **The blog's GB300 setting**: {_x(blog['interactivity_gain'])} interactivity and "
        f"{_x(blog['batch_gain'])} batch at equal or better",
        "  interactivity against TP/EP, beside the blog's measured 1.8x and 32x (throughput",
        f"  {_x(blog['throughput_gain'])}; the blog gives no throughput figure).",
        f"- **Llama-405B**: batch {_x(ll['batch_gain'])} and throughput {_x(ll['throughput_gain'])} calibrated "
        f"({_x(ideal.metrics['llama-3.1-405b']['batch_gain'])} and "
        f"{_x(ideal.metrics['llama-3.1-405b']['throughput_gain'])} textbook) against the",
        "  paper's 4x: KVP divides the KV cache that TP (capped at K = 8 useful ways) cannot.",
        "- The **direction** of every gain: Helix's frontier reaches further on both axes for both",
        f"  models; the DeepSeek-R1 throughput gain against TP/EP alone ({_x(d['without_medha']['throughput_gain'])} "
        f"calibrated, {_x(ideal.metrics['deepseek-r1']['without_medha']['throughput_gain'])} textbook)",
        "  brackets the paper's 32x.",
        "- The **Figure 1 roofline** is reproduced exactly (`tests/test_roofline.py`,",
        "  `tests/test_cost_golden.py`).",
        "",
        "![Figure 1](figures/paper-fig1-roofline.png)",
        "",
        "## Where it does not, and why",
        "",
        f"1. **Interactivity ({_x(d['interactivity_gain'])} and {_x(ll['interactivity_gain'])} against 1.5x and "
        "1.13x): physics of today's kernels.** At the",
        "   low-latency end both Helix and the baseline are made of fixed per-kernel costs. At",
        f"   Helix's fastest DeepSeek-R1 point ({fast['label']}) attention is {fast['attention_ms']:.2f} ms of a "
        f"{fast['ttl_ms']:.2f} ms step, while the",
        f"   MLA projections replicated on every KVP rank take {fast['qkv_proj_ms']:.2f} ms and the MoE "
        f"{fast['ffn_ms']:.2f} ms; measured GEMMs",
        "   at m = 1 run far below the bandwidth roofline, and Helix does not shrink them. Under the",
        f"   textbook roofline the same search gives {_x(ideal.metrics['deepseek-r1']['interactivity_gain'])} and "
        f"{_x(ideal.metrics['llama-3.1-405b']['interactivity_gain'])}: the paper's simulator evidently priced",
        "   these kernels closer to the roofline than measured kernels run today.",
        f"2. **The baseline set for DeepSeek-R1: a definition, not physics.** Against TP/EP alone the interactivity gain is "
        f"{_x(d['without_medha']['interactivity_gain'])}",
        f"   ({_x(roof.metrics['deepseek-r1']['without_medha']['interactivity_gain'])} on the default-efficiency "
        "roofline); Medha as the paper defines it takes part of",
        "   Helix's lead at the low-latency end, because it shards the MLA latent by KVP. The paper",
        "   says Medha has no MoE results (§3.2), so its DeepSeek-R1 baseline probably left it out.",
        f"3. **HOP-B ({_pct(d['hopb_off_loss'])} and {_pct(ll['hopb_off_loss'])} against 1 % and 12 %): physics "
        "of the measured collectives",
        "   against a model limit of the paper's chunk arithmetic.** At decode the Helix all-to-all is",
        "   latency-bound, and a per-request chunk pays almost the whole batched exchange's time.",
    ]
    if ex is not None:
        out += [
            f"   At Llama-405B's fastest pipelined point ({ex['label']}) one request's all-to-all takes "
            f"{ex['a2a_chunk_us']:.1f} µs",
            f"   and its attention {ex['attention_chunk_us']:.1f} µs: {int(ex['chunks'])} chunks take "
            f"{ex['pipelined_us']:.1f} µs against {ex['lockstep_us']:.1f} µs in lockstep.",
        ]
    split_d, split_l = d["hopb_even_split_ttl_change"], ll["hopb_even_split_ttl_change"]
    out += [
        "   The paper's Figure 3 arithmetic divides the batched times evenly among the chunks",
        "   (c = attention / n, m = all-to-all / n), so each chunk pays only its share of the",
        "   all-to-all's latency, which no real per-request collective can. Applied to the",
        "   calibrated batched times it would save at best "
        f"{_pct(None if split_d is None else -split_d)} of the DeepSeek-R1 step ({d['hopb_even_split_ttl_change_at']})",
        f"   and {_pct(None if split_l is None else -split_l)} of the Llama-405B step ({ll['hopb_even_split_ttl_change_at']}): "
        "even then the ranking of",
        "   the two models is the reverse of the paper's (1 % and 12 %): at those points the batched",
        f"   all-to-all is {_share(cal, 'deepseek-r1', d['hopb_even_split_ttl_change_at'])} of lockstep attention "
        f"plus all-to-all for DeepSeek-R1 (512-wide latent partials",
        f"   for 128 heads) and {_share(cal, 'llama-3.1-405b', ll['hopb_even_split_ttl_change_at'])} for Llama-405B. "
        "A model limit of the paper's chunking, not something",
        "   helixsim can fit.",
    ]
    tp = _throughput_story(cal, "paper-fig5-deepseek-r1-1m")
    out += [
        f"4. **DeepSeek-R1 throughput and batch against the full baseline ({_x(d['throughput_gain'])}, "
        f"{_x(d['batch_gain'])} against 32x): a model",
        "   result, stated as found (the baseline's strength, not a kernel price).** The throughput",
        f"   ratio peaks at an interactivity target of {tp['x0']:.1f} tokens/s/user, where Helix's best is "
        f"{tp['helix']} and the",
        f"   baseline's best is {tp['base']}. Without a floor on interactivity the baseline's most",
        f"   productive point ({tp['base_max']}) reaches {_pct(tp['share'])} of Helix's best tokens/s/GPU.",
        "",
        "## Regenerate",
        "",
        "```bash",
        "helixsim docs                           # this page, its figures, the README table (and every other generated part)",
        "helixsim reproduce --out out/           # calibrated tables, figures, reproduce.json / .md",
        "helixsim reproduce --calibration none --out out-roofline/",
        "helixsim reproduce --ideal --out out-ideal/",
        "helixsim roofline --out out/ && helixsim roofline --preset blog --out out/",
        "```",
        "",
    ]
    return "\n".join(out)


def update_readme(text: str, table: str) -> str:
    """Replace the block between the README markers with ``table``."""
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {README_BEGIN} ... {README_END} block")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{table}\n{README_END}", text)


def regenerate(root: Path) -> list[str]:
    """Rewrite docs/reproducing.md, its figures and the README table: what ``helixsim docs`` does
    (the blocks and figures are registered in :mod:`helixsim.docgen.reproduction`)."""
    from .docgen import regenerate as docs_regenerate

    return docs_regenerate(root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: the checkout)")
    args = parser.parse_args(argv)
    from .docgen import ROOT

    for line in regenerate(args.root or ROOT):
        print(f"rewrote {line}")


if __name__ == "__main__":
    main()
