"""Spec loading and derived quantities, checked against hand calculations and published counts."""

from pathlib import Path

import pytest

from helixsim.errors import SpecError
from helixsim.specs.hf import load_hf_config
from helixsim.specs.registry import builtin_names, data_dir, load_hardware, load_model

HF = data_dir("models") / "hf"
HF_FOR = {
    "deepseek-r1": "deepseek-ai--DeepSeek-R1.config.json",
    "llama-3.1-405b": "meta-llama--Meta-Llama-3.1-405B.config.json",
    "llama-3.1-70b": "meta-llama--Meta-Llama-3.1-70B.config.json",
    "qwen3-32b": "Qwen--Qwen3-32B.config.json",
    "qwen3-235b-a22b": "Qwen--Qwen3-235B-A22B.config.json",
    "gpt-oss-120b": "openai--gpt-oss-120b.config.json",
    "kimi-k2": "moonshotai--Kimi-K2-Instruct.config.json",
    "llama-3.1-8b": "meta-llama--Meta-Llama-3.1-8B.config.json",
    "mixtral-8x22b": "mistralai--Mixtral-8x22B-v0.1.config.json",
    "deepseek-v3.2": "deepseek-ai--DeepSeek-V3.2.config.json",
    "qwen3.5-397b-a17b": "Qwen--Qwen3.5-397B-A17B.config.json",
}


def test_builtin_names():
    assert set(builtin_names("hardware")) == {"gb200-nvl72", "gb300-nvl72", "b200-hgx", "h200-hgx", "h100-hgx"}
    assert set(HF_FOR) <= set(builtin_names("models"))


@pytest.mark.parametrize("name", sorted(HF_FOR))
def test_yaml_and_hf_config_agree(name):
    """The shipped YAML and the public config.json describe the same architecture."""
    yaml_spec = load_model(name)
    hf_spec = load_hf_config(HF / HF_FOR[name])
    assert hf_spec.attention == yaml_spec.attention
    assert hf_spec.linear_attention == yaml_spec.linear_attention
    assert hf_spec.ffn == yaml_spec.ffn
    assert (hf_spec.num_layers, hf_spec.hidden_size, hf_spec.vocab_size) == \
           (yaml_spec.num_layers, yaml_spec.hidden_size, yaml_spec.vocab_size)
    assert hf_spec.total_params() == yaml_spec.total_params()


# Published / hand-computed totals (reference model_configs.md §2; DeepSeek-V3 paper "671B, 37B activated";
# Llama 3.1 model card 405B; gpt-oss model card 116.8B / 5.1B).
@pytest.mark.parametrize("name,total_b,active_b,tol_b", [
    ("deepseek-r1", 671.03, 36.63, 0.05),
    ("llama-3.1-405b", 405.85, 403.75, 0.05),
    ("llama-3.1-70b", 70.55, 69.50, 0.05),
    ("qwen3-235b-a22b", 235.09, 21.57, 0.05),
    ("kimi-k2", 1026.4, 31.69, 0.1),
    ("gpt-oss-120b", 116.83, 5.13, 0.05),
])
def test_parameter_counts(name, total_b, active_b, tol_b):
    m = load_model(name)
    assert abs(m.total_params() / 1e9 - total_b) < tol_b
    assert abs(m.active_params() / 1e9 - active_b) < tol_b


def test_deepseek_layer_blocks_by_hand():
    m = load_model("deepseek-r1")
    p = m.attention_params()
    assert p["q_a"] - 1536 == 7168 * 1536                      # 11.01 M
    assert p["q_b"] == 1536 * 128 * (128 + 64)                 # 37.75 M
    assert p["kv_a"] - 512 == 7168 * (512 + 64)                # 4.13 M
    assert p["kv_b"] == 512 * 128 * (128 + 128)                # 16.78 M
    assert p["o"] == 128 * 128 * 7168                          # 117.44 M
    assert m.expert_params() == 3 * 7168 * 2048                # 44.04 M
    assert (m.dense_layers, m.moe_layers, m.mtp_layers) == (3, 58, 1)


def test_kv_elements_per_token():
    assert load_model("deepseek-r1").kv_elements_per_token_per_layer == 576        # 512 latent + 64 rope
    assert load_model("llama-3.1-405b").kv_elements_per_token_per_layer == 2 * 8 * 128
    assert load_model("qwen3-235b-a22b").kv_elements_per_token_per_layer == 2 * 4 * 128
    gpt = load_model("gpt-oss-120b")
    assert gpt.kv_elements_per_token_per_layer == 2 * 8 * 64
    assert (gpt.attention.sliding_window_layers, gpt.attention.sliding_window_tokens) == (18, 128)


def test_hardware_fields():
    hw = load_hardware("gb200-nvl72")
    assert hw.hbm_bandwidth_gbps == 8000 and hw.nvlink_domain_gpus == 72
    assert load_hardware("h100-hgx").dense_tflops.fp4 is None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_suggests_closest(tmp_path):
    text = (data_dir("hardware") / "gb200-nvl72.yaml").read_text().replace("power_w:", "power_ww:")
    with pytest.raises(SpecError, match=r"power_ww: unknown key \(did you mean 'power_w'\?\)"):
        load_hardware(str(_write(tmp_path, "gb200-nvl72.yaml", text)))


@pytest.mark.parametrize("old,new,field", [
    ("hbm_bandwidth_gbps: 8000", "hbm_bandwidth_gbps: -8000", "hbm_bandwidth_gbps"),
    ("hbm_bandwidth_gbps: 8000", "hbm_bandwidth_gbps: .nan", "hbm_bandwidth_gbps"),
    ("hbm_bandwidth_gbps: 8000", "hbm_bandwidth_gbps: fast", "hbm_bandwidth_gbps"),
    ("nvlink_domain_gpus: 72", "nvlink_domain_gpus: 0", "nvlink_domain_gpus"),
    ("  fp8: 5000", "  fp8: .inf", "dense_tflops.fp8"),
])
def test_bad_values_name_file_and_field(tmp_path, old, new, field):
    text = (data_dir("hardware") / "gb200-nvl72.yaml").read_text()
    assert old in text
    path = _write(tmp_path, "gb200-nvl72.yaml", text.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_hardware(str(path))
    assert str(path) in str(err.value) and field in str(err.value) and "\n" not in str(err.value)


def test_missing_key(tmp_path):
    text = "\n".join(line for line in (data_dir("models") / "deepseek-r1.yaml").read_text().splitlines()
                     if not line.startswith("hidden_size"))
    with pytest.raises(SpecError, match="hidden_size: missing required key"):
        load_model(str(_write(tmp_path, "deepseek-r1.yaml", text)))


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="malformed YAML"):
        load_model(str(_write(tmp_path, "bad.yaml", "name: [unclosed\n")))
    with pytest.raises(SpecError, match="file not found"):
        load_model(str(tmp_path / "nope.yaml"))


def test_unsupported_hf_architecture(tmp_path):
    path = _write(tmp_path, "x.config.json", '{"architectures": ["LlamaForCausalLMM"]}')
    with pytest.raises(SpecError, match="did you mean 'LlamaForCausalLM'"):
        load_model(str(path))
