"""Regenerate docs/fidelity.md: serving-framework kernels, end-to-end error by framework, system and
model, held-out kernel error per framework, the MTP check against a published result and public wide-EP
decode results against helixsim's prediction of the same setup.

    helixsim docs        (or python -m helixsim.fidelity, which runs the same)

Every figure in the page comes from :func:`page`, registered as the ``fidelity`` block of
docs/fidelity.md (helixsim/docgen/validation_docs.py); no number is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from .backends import BACKENDS, CHECKPOINT_KV_CACHE, DEFAULTS
from .calibration.fit import builtin_calibration_path
from .cost.mtp import DEEPSEEK_R1_ACCEPTANCE_LENGTH, DEFAULT_ACCEPTANCE
from .precision import Precision
from .validation import validate_e2e

SYSTEMS = ("gb200-nvl72", "gb300-nvl72", "b200-hgx", "h200-hgx", "h100-hgx")

#: TensorRT-LLM tech blog 1 ("Pushing Latency Boundaries: Optimizing DeepSeek-R1 Performance on NVIDIA
#: B200 GPUs"), table "Autoregressive MTP Layers": DeepSeek-R1-FP4 on 8x B200, attention TP 8, MoE
#: TP 4 x EP 2, batch 1, ISL/OSL 1k/2k; tokens/s/user without MTP and with 1..5 MTP layers
MTP_BLOG_TPS_USER = (111, 198, 250, 253, 245, 239)
MTP_BLOG_URL = ("https://github.com/NVIDIA/TensorRT-LLM/blob/main/docs/source/blogs/tech_blog/"
                "blog1_Pushing_Latency_Boundaries_Optimizing_DeepSeek-R1_Performance_on_NVIDIA_B200_GPUs.md")
#: The formats that blog served. Its "Precision Strategy" table: "64x Attention Modules bf16" (TensorRT-LLM's
#: FP8 attention "doesn't help with performance" here, so a BF16 KV cache), "3x Dense FFN Layers nvfp4",
#: "58x MoE FFN Layers nvfp4" (routed and shared experts). Its reproduction guide
#: (docs/source/blogs/Best_perf_practice_on_DeepSeek-R1_in_TensorRT-LLM.md, "B200 min-latency") downloads
#: nvidia/DeepSeek-R1-FP4, the v1 checkpoint whose ``exclude_modules`` are ``lm_head`` and every
#: ``model.layers.N.self_attn*`` (TensorRT-LLM issue #5766): the output projection ``wo`` is BF16 too
#: (the v2 checkpoints, later, quantise it to NVFP4).
MTP_BLOG_PRECISION = Precision(weights="fp4", kv_cache="bf16", attention_weights="bf16", o_proj_weights="bf16")


def _stats_table(groups: dict, label: str) -> list[str]:
    lines = [f"| {label} | n | median % | mean % | p90 % |", "|---|---:|---:|---:|---:|"]
    for name, s in groups.items():
        if s.get("n"):
            lines.append(f"| {name} | {s['n']} | {s['median_ape']:.1f} | {s['mean_ape']:.1f} | {s['p90_ape']:.1f} |")
    return lines


def _ape(frame: pd.DataFrame) -> dict:
    from .validation import ape_stats

    return ape_stats(frame["ape_pct"].to_numpy())


def e2e_section(path: Path, validate=validate_e2e) -> list[str]:
    res = validate(path)
    rows = res.rows[res.rows["ape_pct"].notna()].copy()
    s = res.summary
    out = ["## End-to-end decode TPOT by serving framework", "",
           f"`helixsim validate --e2e {path}`: every row is priced with the kernels of its own `backend` column "
           f"and that framework's KV-cache default; {s['overall']['n']} of {len(res.rows)} rows predicted. "
           "No constant was fitted to these runs.", ""]
    out += _stats_table({"overall": s["overall"], **{f"backend: {k}": v for k, v in s["by_backend"].items()}},
                        "rows")
    out += ["", "By framework, system and model:", ""]
    groups = {f"{b} / {sy} / {m}": _ape(g) for (b, sy, m), g in rows.groupby(["backend", "system", "model"])}
    out += _stats_table(groups, "framework / system / model")
    return out


def holdout_section() -> list[str]:
    out = ["## Held-out kernel error per framework", "",
           "Median APE (%) on the fifth of each measured table held out of the fit "
           "(`python -m helixsim.calibration.validate --data <calibration data> --backend B --write-summary`; "
           "n = rows held out).", ""]
    fams: dict[tuple[str, str], dict] = {}
    for hw in SYSTEMS:
        root = builtin_calibration_path(hw)
        for b in BACKENDS:
            f = (root / ("" if b == "trtllm" else b) / "holdout.json") if root else None
            if f is not None and f.is_file():
                for fam, st in json.loads(f.read_text())["families"].items():
                    fams.setdefault((b, fam), {})[hw] = st
    out += ["| framework | family | " + " | ".join(SYSTEMS) + " |", "|---|---|" + "---:|" * len(SYSTEMS)]
    for (b, fam), per in sorted(fams.items()):
        cells = [f"{per[h]['median_ape']:.1f} (n={per[h]['n']})" if h in per and per[h].get("n") else "–"
                 for h in SYSTEMS]
        out.append(f"| {b} | {fam} | " + " | ".join(cells) + " |")
    return out


def mtp_section() -> list[str]:
    from .api import simulate_point
    from .layout import Layout
    from .precision import Precision

    prec = MTP_BLOG_PRECISION
    lay = Layout("tp", tpa=8, tpf=4, ep=2)
    out = ["## MTP check: DeepSeek-R1 min-latency on 8x B200", "",
           f"Published: TensorRT-LLM tech blog 1 ({MTP_BLOG_URL}), table \"Autoregressive MTP Layers\": "
           "DeepSeek-R1-FP4, attention TP 8, MoE TP 4 x EP 2, batch 1, ISL/OSL 1k/2k, strict acceptance. "
           "Formats as the blog's \"Precision Strategy\" table and the checkpoint its reproduction serves "
           "(nvidia/DeepSeek-R1-FP4, v1, whose `exclude_modules` list every `self_attn` module): attention in BF16, "
           "the output projection `wo` included, with a BF16 KV cache; dense FFN, shared and routed experts in NVFP4. "
           "helixsim: `helixsim point --model deepseek-r1 --hardware b200-hgx --strategy tp --tpa 8 --tpf 4 --ep 2 "
           "--batch 1 --context 2048 --weights fp4 --attention-weights bf16 --o-proj-weights bf16 --kv-cache bf16 "
           f"--mtp N` with the default acceptance rates {', '.join(f'{a:.3f}' for a in DEFAULT_ACCEPTANCE)} "
           "(derived from the same table's acceptance lengths; so the acceptance is the blog's, the step time is "
           "helixsim's). The blog's MTP layers run in BF16 (\"3x MTP Layers | bf16\"; the checkpoint excludes "
           "`model.layers.61*` from quantisation); helixsim prices the draft layer in BF16 too, attention, "
           "shared and routed experts alike (`helixsim.cost.mtp.mtp_precision`, the rule its memory uses). No BF16 "
           "MoE kernel is measured at DeepSeek-R1's expert shape (hidden 7168) in the Blackwell tables: the draft's "
           "experts take the efficiency of the nearest measured BF16 MoE shape (docs/calibration.md, prediction "
           "step 2), so they are less sure than the main layers' NVFP4 experts.", "",
           "| MTP draft tokens | tokens per step (blog) | tokens/s/user, blog | helixsim | speed-up vs no MTP, blog | "
           "helixsim | step time, helixsim (ms) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    base = None
    for n in range(0, 6):
        r = simulate_point("deepseek-r1", "b200-hgx", lay, batch=1, context=2048, precision=prec, mtp=n)
        base = base or r.tokens_per_s_user
        al = 1.0 if n == 0 else DEEPSEEK_R1_ACCEPTANCE_LENGTH[n - 1]
        blog = MTP_BLOG_TPS_USER[n]
        out.append(f"| {n} | {al:.2f} | {blog} | {r.tokens_per_s_user:.0f} | {blog / MTP_BLOG_TPS_USER[0]:.2f}x | "
                   f"{r.tokens_per_s_user / base:.2f}x | {r.ttl_ms:.2f} |")
    return out


def mtp_helix_section() -> list[str]:
    """What MTP does to Helix's gain in the paper's DeepSeek-R1 1M study (sweeps/paper-fig5-deepseek-r1-1m.yaml)."""
    from dataclasses import replace

    from .search import frontiers, search
    from .sweep import load_sweep
    from .api import resolve_hardware, resolve_model

    spec, path = load_sweep("paper-fig5-deepseek-r1-1m")
    space = replace(spec.space(), mtp=(0, 3), two_batch_overlap=(False, True))
    table = search(resolve_model("deepseek-r1"), resolve_hardware(spec.hardware[0]), space, spec.precision.build(str(path)))
    fr = frontiers(table)
    out = ["## MTP in the DeepSeek-R1 1M Helix study", "",
           "The paper's study (`sweeps/paper-fig5-deepseek-r1-1m.yaml`, GB200 NVL72, FP4, 1-64 GPUs) searched "
           "with `mtp: [0, 3]` (DeepSeek-R1's default acceptance: 2.82 tokens per step with 3 drafts) and "
           "`two_batch_overlap: [false, true]` (ep layouts also as two overlapped micro-batches):", "",
           "| frontier | max tokens/s/user | max tokens/s/GPU |", "|---|---:|---:|"]
    for name in ("Helix no MTP", "Best baseline no MTP", "Best baseline no TBO", "Helix", "Best baseline"):
        f = fr[name]
        label = (name.replace(" no ", ", no ") if " no " in name else
                 f"{name}, MTP 0 or 3" + (", TBO on or off" if name == "Best baseline" else ""))
        out.append(f"| {label} | {f['tokens_per_s_user'].max():.1f} | {f['tokens_per_s_gpu'].max():.2f} |")
    g0 = fr["Helix no MTP"]["tokens_per_s_user"].max() / fr["Best baseline no MTP"]["tokens_per_s_user"].max()
    g3 = fr["Helix"]["tokens_per_s_user"].max() / fr["Best baseline"]["tokens_per_s_user"].max()
    more = "less" if g3 < g0 else "more"
    out += ["", f"Helix's interactivity gain over the best baseline: {g0:.2f}x without MTP, {g3:.2f}x with it "
            f"(Helix gains {more} from MTP than the best baseline does). MTP multiplies every layout's tokens "
            "per step by the same acceptance, but verifying 1 + N tokens multiplies the tokens of the GEMMs, the "
            "MoE and the all-to-all, and adds N MTP forwards: a step dominated by weight reads absorbs that "
            "almost free, one already paying per-token costs does not. At the throughput end (large batches) "
            "MTP does not pay and the frontier keeps MTP 0."]
    t0 = fr["Best baseline no TBO"]["tokens_per_s_gpu"].max()
    t1 = fr["Best baseline"]["tokens_per_s_gpu"].max()
    ep = table[table["strategy"] == "ep"]
    e0, e1 = (frontiers(ep[ep["two_batch_overlap"] == on])["EP"]["tokens_per_s_gpu"].max() for on in (False, True))
    top = fr["Best baseline"].sort_values("tokens_per_s_gpu").iloc[-1]
    out += ["", f"Two-batch overlap: the best baseline's top throughput is {t0:.2f} tokens/s/GPU without it and "
            f"{t1:.2f} with it ({t1 / t0:.2f}x; reached by {top['strategy']} `{top['label']}`); the EP frontier "
            f"alone goes from {e0:.2f} to {e1:.2f} tokens/s/GPU ({e1 / e0:.2f}x)."]
    return out


def backends_section() -> list[str]:
    out = ["## Framework defaults (helixsim/backends.py)", "",
           "| backend | KV cache of an FP8/FP4 checkpoint | kernels preferred | source |", "|---|---|---|---|"]
    for b in BACKENDS:
        d = DEFAULTS[b]
        prefs = "; ".join(f"{fam}: {', '.join(v)}" for fam, v in d.kernel_sources.items()) or "every measured kernel"
        kv = d.kv_cache_quantized
        if d.follows_checkpoint_kv:   # --kv-cache-dtype auto takes the checkpoint's own KV format where it names one
            kv += " (the checkpoint's own where it names one: " + ", ".join(
                f"{m} {w}: {v}" for (m, w), v in sorted(CHECKPOINT_KV_CACHE.items())) + ")"
        out.append(f"| {b} | {kv} | {prefs} | {d.source} |")
    return out


def page(e2e: Path, validate=validate_e2e) -> str:
    """The whole page (``validate``: how ``e2e`` is predicted; ``helixsim docs`` passes a cached run)."""
    lines = ["# Serving-framework fidelity: per-framework kernels and MTP", "",
             "Generated by `helixsim docs` (`python -m helixsim.fidelity` runs the same); do not edit by hand.",
             ""]
    from .wideep_check import wide_ep_section

    for section in (backends_section(), e2e_section(e2e, validate), holdout_section(), mtp_section(),
                    mtp_helix_section(), wide_ep_section()):
        lines += section + [""]
    return "\n".join(lines).rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    """Regenerate every generated part of README.md and docs/, this page included (``helixsim docs``)."""
    from .docgen import main as docs_main

    argparse.ArgumentParser(prog="python -m helixsim.fidelity", description=__doc__.split("\n")[0]).parse_args(argv)
    return docs_main([])


if __name__ == "__main__":
    raise SystemExit(main())
