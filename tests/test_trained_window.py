"""Trained-window warning (issue 15): beyond the model's published context it simulates and says so.

DeepSeek-R1's config.json (models/hf/deepseek-ai--DeepSeek-R1.config.json) has
max_position_embeddings 163840; Llama-3.1-70B's 131072.
"""

from __future__ import annotations

import json

import pytest
from test_fuzz_inputs import cli

from helixsim.errors import SpecError
from helixsim.specs.registry import data_dir, load_model
from helixsim.specs.hf import load_hf_config

POINT = ["point", "--model", "deepseek-r1", "--hardware", "gb200-nvl72", "--strategy", "helix", "--kvp", "8",
         "--batch", "8", "--json"]


def test_built_in_models_carry_the_config_window():
    assert load_model("deepseek-r1").max_context_tokens == 163_840
    assert load_model("llama-3.1-70b").max_context_tokens == 131_072
    hf = data_dir("models") / "hf" / "deepseek-ai--DeepSeek-R1.config.json"
    assert load_hf_config(hf).max_context_tokens == 163_840  # the importer reads the same field


def test_loader_is_strict_about_the_field(tmp_path):
    text = (data_dir("models") / "deepseek-r1.yaml").read_text()
    bad = tmp_path / "deepseek-r1.yaml"
    bad.write_text(text.replace("max_context_tokens: 163840", "max_context_tokens: -5"))
    with pytest.raises(SpecError, match="max_context_tokens"):
        load_model(str(bad))
    ok = tmp_path / "ok" / "deepseek-r1.yaml"
    ok.parent.mkdir()
    ok.write_text(text.replace("max_context_tokens: 163840", "max_context_tokens: 160k"))
    assert load_model(str(ok)).max_context_tokens == 160_000


@pytest.mark.parametrize("context,warned", [("1M", True), ("163840", False), ("163841", True)])
def test_point_warns_beyond_the_window(capsys, context, warned):
    code, out, err = cli(capsys, POINT + ["--context", context])
    assert code == 0, err
    data = json.loads(out)
    assert bool(data["warnings"]) is warned and ("trained window of 163,840" in err) is warned
    assert err.count("\n") == (1 if warned else 0)


def test_plan_and_prefill_warn(capsys):
    code, out, err = cli(capsys, ["plan", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--context", "256k",
                                  "--users", "8", "--min-tokens-per-s-user", "10", "--max-batch", "8",
                                  "--no-sensitivity", "--json"])
    assert code == 0, err
    assert any("trained window of 131,072" in w for w in json.loads(out)["warnings"])
    code, out, err = cli(capsys, ["prefill", "--model", "llama-3.1-8b", "--hardware", "b200-hgx", "--strategy", "tp",
                                  "--tpa", "8", "--tpf", "8", "--isl", "200000", "--json"])
    assert code == 0, err
    assert json.loads(out)["warnings"] and "trained window" in err
