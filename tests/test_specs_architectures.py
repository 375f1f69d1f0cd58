"""Every shipped Hugging Face config.json imports by its fields, and each architecture's parameter
count matches the total its developers published (sources next to each figure)."""

import dataclasses
import json

import pytest

from helixsim.errors import SpecError
from helixsim.specs.hf import ARCHITECTURES, load_hf_config
from helixsim.specs.registry import data_dir

HF = data_dir("models") / "hf"


def test_every_shipped_config_imports():
    files = sorted(HF.glob("*.json"))
    assert len(files) >= 17
    for f in files:
        m = load_hf_config(f)
        assert m.total_params() > m.active_params() * 0.99 > 0


# (file, published total B, published active B, relative tolerance); the active figure is compared with the
# count including the embedding lookup (as most vendors count it) except where noted.
PUBLISHED = [
    # DeepSeek-V3.2: "671B" main model, as DeepSeek-V3 (V3.2-Exp model card: same architecture as V3.1-Terminus
    # plus DSA); the HF hub's 685B adds the 14B MTP module. Active "37B" (DeepSeek-V3 paper, arXiv 2412.19437).
    ("deepseek-ai--DeepSeek-V3.2.config.json", 671.0, 37.0, 0.03),
    # Qwen3.5-397B-A17B model card: 397B total, 17B activated (text model here; the ~0.4B vision tower is not
    # counted, active counted with the embedding as vendors do).
    ("Qwen--Qwen3.5-397B-A17B.config.json", 397.0, 17.0, 0.03),
    # Mixtral 8x22B announcement (mistral.ai/news/mixtral-8x22b): 141B total, 39B active.
    ("mistralai--Mixtral-8x22B-v0.1.config.json", 141.0, 39.0, 0.03),
    # Llama 4 Maverick model card (meta-llama/Llama-4-Maverick-17B-128E-Instruct): 400B total, 17B active.
    ("meta-llama--Llama-4-Maverick-17B-128E-Instruct.config.json", 400.0, 17.0, 0.03),
    # MiniMax-M2.5 model card (MiniMax-M2 family): 230B total, 10B active.
    # (MiniMax counts active parameters without the embedding table: 10.4B here, 11.0B with it.)
    ("MiniMaxAI--MiniMax-M2.5.config.json", 230.0, 10.0, 0.05),
    # Kimi K2.5 model card: 1T total, 32B active (same text model as Kimi-K2).
    ("moonshotai--Kimi-K2.5.config.json", 1026.4, 32.0, 0.03),
    # Qwen3-Coder-480B-A35B-Instruct model card: 480B total, 35B active.
    ("Qwen--Qwen3-Coder-480B-A35B-Instruct.config.json", 480.0, 35.0, 0.03),
    # Qwen3-235B-A22B-FP8 model card: 235B total, 22B active (the FP8 copy has the same architecture).
    ("Qwen--Qwen3-235B-A22B-FP8.config.json", 235.0, 22.0, 0.03),
]


@pytest.mark.parametrize("name,total_b,active_b,tol", PUBLISHED)
def test_published_parameter_counts(name, total_b, active_b, tol):
    m = load_hf_config(HF / name)
    assert abs(m.total_params() / 1e9 / total_b - 1) < tol
    active = (m.active_params() + (0 if "MiniMax" in name else m.embedding_params())) / 1e9
    assert abs(active / active_b - 1) < 0.05


def test_layer_kinds_from_fields():
    """Per-layer mixers and feed-forwards come from each config's own fields (hand-read from the files)."""
    v32 = load_hf_config(HF / "deepseek-ai--DeepSeek-V3.2.config.json")
    assert v32.attention.dsa.index_topk == 2048 and v32.index_key_elements_per_token == 128
    assert (v32.dense_layers, v32.moe_layers) == (3, 58)
    q35 = load_hf_config(HF / "Qwen--Qwen3.5-397B-A17B.config.json")
    assert (q35.full_attention_layers, q35.linear_layers) == (15, 45)     # layer_types: 15 full, 45 linear
    assert q35.attention.output_gate and q35.ffn.moe.shared_experts == 1
    # gated delta-net state: 64 value heads x 128 x 128 fp32 = 4 MiB per request per layer
    assert q35.linear_attention.state_elements() * 4 == 64 * 128 * 128 * 4
    l4 = load_hf_config(HF / "meta-llama--Llama-4-Maverick-17B-128E-Instruct.config.json")
    # interleave_moe_layer_step 2: layers 1, 3, ..., 47 MoE; chunked attention (8192) on 3 of 4 layers
    assert (l4.dense_layers, l4.moe_layers) == (24, 24)
    assert (l4.attention.sliding_window_layers, l4.attention.sliding_window_tokens, l4.full_attention_layers) == (36, 8192, 12)
    assert l4.ffn.intermediate_size == 16384 and l4.ffn.moe.shared_experts == 1
    kimi25 = load_hf_config(HF / "moonshotai--Kimi-K2.5.config.json")
    kimi2 = load_hf_config(HF / "moonshotai--Kimi-K2-Instruct.config.json")
    assert kimi25.attention == kimi2.attention
    # same FFN; only the checkpoint differs: K2's experts FP8 with 128x128 block scales, K2.5's INT4 in groups
    # of 32 (compressed-tensors quantization_config), hence no FP8 block scales
    assert kimi2.ffn.moe.fp8_block_scales and not kimi25.ffn.moe.fp8_block_scales
    assert kimi25.ffn == dataclasses.replace(kimi2.ffn, moe=dataclasses.replace(kimi2.ffn.moe, fp8_block_scales=False))


def test_qwen35_blocks_by_hand():
    """One gated delta-net layer and one gated attention layer of Qwen3.5-397B, by hand from text_config."""
    q = load_hf_config(HF / "Qwen--Qwen3.5-397B-A17B.config.json")
    lin = q.linear_attention.params(4096)
    assert lin["in_proj"] == 4096 * (2 * 16 * 128 + 2 * 64 * 128 + 2 * 64)   # q, k, v, z, b, a
    assert lin["conv1d"] == (2 * 16 * 128 + 64 * 128) * 4
    assert lin["out_proj"] == 64 * 128 * 4096
    assert q.attention_params()["qkv"] == 4096 * (2 * 32 * 256 + 2 * 2 * 256)   # q doubled by the output gate
    assert q.shared_expert_params() == 3 * 4096 * 1024


def test_unknown_architecture_lists_supported(tmp_path):
    cfg = json.loads((HF / "meta-llama--Meta-Llama-3.1-8B.config.json").read_text())
    cfg["architectures"] = ["FalconH1ForCausalLM"]
    path = tmp_path / "falcon.config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SpecError) as err:
        load_hf_config(path)
    msg = str(err.value)
    assert "\n" not in msg and "architectures" in msg and "supported:" in msg
    assert all(a in msg for a in ARCHITECTURES)


def test_missing_field_is_named(tmp_path):
    cfg = json.loads((HF / "Qwen--Qwen3.5-397B-A17B.config.json").read_text())
    del cfg["text_config"]["linear_num_value_heads"]
    path = tmp_path / "q.config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=r"text_config\.linear_num_value_heads: missing required key"):
        load_hf_config(path)


def test_point_runs_for_every_shipped_config():
    """`helixsim point` works with every config.json (Helix KVP 2 x TPA 1, FFN 2 wide, 1M tokens, GB200)."""
    from helixsim.api import simulate_point
    from helixsim.layout import Layout
    from helixsim.precision import Precision

    for f in sorted(HF.glob("*.json")):
        r = simulate_point(str(f), "gb200-nvl72", Layout("helix", kvp=2, tpa=1, tpf=2, ep=1), batch=2,
                           context=1_000_000, precision=Precision(weights="fp4", kv_cache="fp8"))
        assert r.tokens_per_s_user > 0 and all(v >= 0 for v in r.breakdown_ms.values()), f.name
