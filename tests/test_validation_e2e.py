"""End-to-end validation: measured serving rows mapped to layouts, every row accounted for."""

from pathlib import Path

import pandas as pd
import pytest

from helixsim.errors import SpecError
from helixsim.validation import row_config, validate_e2e

DATA = Path(__file__).resolve().parent.parent / "validation" / "silicon_decode_dev.csv"


def test_row_mapping_dp_attention_with_expert_parallel_moe():
    row = pd.Series({"hf_model_path": "deepseek-ai/DeepSeek-V3", "system": "gb200", "precision": "fp4", "tp": 1,
                     "pp": 1, "attention_dp": 8, "moe_tp": 1.0, "moe_ep": 8.0, "decode_batch": 256, "ctx_mid": 5120})
    model, hardware, layout, prec, batch, context = row_config(row)
    assert (model, hardware) == ("deepseek-r1", "gb200-nvl72")
    assert (layout.strategy, layout.dp, layout.tpa, layout.tpf, layout.ep) == ("ep", 8, 1, 1, 8)
    # NVIDIA's FP4 DeepSeek-R1 checkpoint: NVFP4 experts, dense FFN and wo, BF16 attention input
    # projections (self_attn excluded from quantisation; tests/test_fp4_checkpoint_formats.py); FP8 KV cache
    assert (prec.weights, prec.dense_weights_dtype, prec.attention_weights_dtype, prec.kv_cache) == \
        ("fp4", "fp4", "bf16", "fp8")
    # decode_batch counts requests per attention-DP rank: the instance decodes 256 x 8
    assert (batch, context) == (256 * 8, 5120)
    assert row_config(row, dp_batch="instance")[4] == 256


def test_shipped_rows_count_decode_batch_per_dp_rank():
    """The evidence for dp_batch="rank" (helixsim/validation.py, DP_BATCH_MODES), from the measured records:
    each run's client concurrency (source_id's _c<N>_) is a whole multiple of decode_batch x attention_dp;
    with 32 DP ranks it equals it, while per instance it would need exactly 32 instances of 32 GPUs."""
    df = pd.read_csv(DATA)
    conc = df["source_id"].str.extract(r"_c(\d+)_")[0].astype(float)
    dp = df["attention_dp"] > 1
    assert dp.sum() >= 20
    per_rank = df["decode_batch"] * df["attention_dp"]
    assert (conc[dp] % per_rank[dp] == 0).all()
    assert (conc[df["attention_dp"] == 32] == per_rank[df["attention_dp"] == 32]).all()
    assert (conc[df["mode"] == "agg"] == per_rank[df["mode"] == "agg"]).all()  # one aggregated instance per run


def test_unknown_dp_batch_mode_is_a_one_line_error():
    with pytest.raises(SpecError, match="--dp-batch"):
        validate_e2e(DATA, dp_batch="group")


def test_row_mapping_dense_tensor_parallel():
    row = pd.Series({"hf_model_path": "meta-llama/Llama-3.1-70B", "system": "h200_sxm", "precision": "fp8", "tp": 4,
                     "pp": 1, "attention_dp": 1, "moe_tp": float("nan"), "moe_ep": float("nan"),
                     "decode_batch": 16, "ctx_mid": 2048})
    _, hardware, layout, prec, _, _ = row_config(row)
    assert hardware == "h200-hgx" and (layout.strategy, layout.tpa, layout.tpf, layout.ep) == ("tp", 4, 4, 1)
    assert prec.dense_weights_dtype == "fp8"


def test_unknown_model_is_a_reason_not_a_silent_drop(tmp_path):
    df = pd.read_csv(DATA).head(3)
    df.loc[1, "hf_model_path"] = "someone/unknown-model"
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    result = validate_e2e(path)
    assert result.summary["overall"]["n"] == 2
    assert result.summary["skipped"] == [{"row": 1, "reason": "hf_model_path: no built-in model for 'someone/unknown-model'"}]


def test_every_shipped_row_is_predicted():
    result = validate_e2e(DATA)
    assert result.rows["predicted_tpot_ms"].notna().all()
    assert set(result.summary) >= {"overall", "by_model", "by_system", "by_backend"}
    assert set(result.summary["by_backend"]) == {"sglang", "trtllm", "vllm"}
    assert result.summary["overall"]["n"] == len(pd.read_csv(DATA))


def test_missing_column_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    pd.read_csv(DATA).drop(columns=["ctx_mid"]).to_csv(path, index=False)
    with pytest.raises(SpecError, match="ctx_mid: missing column"):
        validate_e2e(path)
