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
    # NVIDIA's FP4 DeepSeek-R1 checkpoint: FP4 experts, FP8 attention; FP8 KV cache
    assert (prec.weights, prec.dense_weights_dtype, prec.kv_cache) == ("fp4", "fp8", "fp8")
    assert (batch, context) == (256, 5120)


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
    assert set(result.summary) >= {"overall", "by_model", "by_system"}
    assert result.summary["overall"]["n"] == len(pd.read_csv(DATA))


def test_missing_column_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    pd.read_csv(DATA).drop(columns=["ctx_mid"]).to_csv(path, index=False)
    with pytest.raises(SpecError, match="ctx_mid: missing column"):
        validate_e2e(path)
