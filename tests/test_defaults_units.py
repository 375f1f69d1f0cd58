"""One set of defaults, units as people type them, inferred widths, deduplicated grids (issue 15)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from test_fuzz_inputs import assert_error, cli

from helixsim.errors import SpecError
from helixsim.planning.report_content import _family_cell, _family_text
from helixsim.specs.registry import data_dir
from helixsim.units import parse_tokens

SMALL_PLAN = ["plan", "--model", "llama-3.1-70b", "--hardware", "b200-hgx", "--context", "8k", "--users", "8",
              "--min-tokens-per-s-user", "20", "--max-gpus-per-instance", "8", "--max-batch", "8", "--no-sensitivity"]


@pytest.mark.parametrize("text, tokens", [
    ("1M", 1_000_000), ("256k", 256_000), ("256K", 256_000), ("128Ki", 131_072), ("1.5M", 1_500_000),
    ("2Gi", 2 ** 31), ("131072", 131_072), (131072, 131_072), (" 64k ", 64_000),
])
def test_token_counts_as_people_write_them(text, tokens):
    """k, M, G are powers of 1000 and Ki, Mi, Gi powers of 1024 (IEC 80000-13)."""
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["1.0001k", "0", "-5", "1e6", "1,000", "abc", "", 2 ** 63, True, "1Ti"])
def test_token_counts_that_are_refused(text):
    with pytest.raises(SpecError):
        parse_tokens(text)


def point_json(capsys, *args) -> dict:
    code, out, err = cli(capsys, ["point", "--model", "llama-3.1-70b", "--hardware", "b200-hgx", "--batch", "4",
                                  "--json", *args])
    assert code == 0, err
    return json.loads(out)


def test_context_suffix_equals_the_plain_number(capsys):
    assert point_json(capsys, "--strategy", "tp", "--tpa", "8", "--context", "128Ki") == \
        point_json(capsys, "--strategy", "tp", "--tpa", "8", "--context", "131072")


def test_redundant_ffn_width_is_inferred_from_the_layout_rule(capsys):
    """tpf x ep = kvp x tpa x dp: --strategy tp --tpa 8 is --tpf 8; --strategy ep --dp 8 is --ep 8."""
    implicit = point_json(capsys, "--strategy", "tp", "--tpa", "8", "--context", "8192")
    explicit = point_json(capsys, "--strategy", "tp", "--tpa", "8", "--tpf", "8", "--ep", "1", "--context", "8192")
    assert implicit == explicit and implicit["layout"]["tpf"] == 8


def prefill_json(capsys, *args) -> dict:
    code, out, err = cli(capsys, ["prefill", "--model", "llama-3.1-70b", "--hardware", "h200-hgx", "--json", *args])
    assert code == 0, err
    return json.loads(out)


def test_prefill_takes_token_units_and_infers_the_ffn_width(capsys):
    """--isl 8Ki is 8192 tokens and --chunk 2k is 2000; --strategy tp --tpa 8 means --tpf 8 in prefill
    as in point (the same layout rule), so the short and the spelled-out commands price the same."""
    short = prefill_json(capsys, "--strategy", "tp", "--tpa", "8", "--isl", "8Ki", "--chunk", "2k")
    full = prefill_json(capsys, "--strategy", "tp", "--tpa", "8", "--tpf", "8", "--ep", "1",
                        "--isl", "8192", "--chunk", "2000")
    assert short == full and short["ttft_ms"] > 0


def test_whole_deployment_plan_takes_token_units(capsys):
    """--isl 1M --osl 8k equals --isl 1000000 --osl 8000 (SI suffixes, as --context); a request holding
    1,008,000 tokens of KV exceeds DeepSeek-R1's trained window (163,840 tokens, its config.json), which
    the JSON states as a warning rather than a refusal."""
    base = ["plan", "--model", "deepseek-r1", "--hardware", "gb200-nvl72", "--users", "64",
            "--min-tokens-per-s-user", "20", "--max-ttft-s", "600", "--json"]
    runs = []
    for isl, osl in (("1M", "8k"), ("1000000", "8000")):
        code, out, err = cli(capsys, base + ["--isl", isl, "--osl", osl])
        assert code == 0, err
        runs.append(json.loads(out))
    assert runs[0] == runs[1]
    assert any("163,840" in w for w in runs[0]["warnings"])


def test_point_and_plan_share_defaults_and_agree(capsys):
    """The layout plan chooses, priced by point with no precision flags, gives plan's tokens/s/user:
    both default to FP4 weights on a GPU with FP4 tensor cores (B200) and say so."""
    code, out, err = cli(capsys, SMALL_PLAN + ["--json"])
    assert code == 0, err
    rec = json.loads(out)
    lay = rec["layout"]
    got = point_json(capsys, "--strategy", rec["strategy"], "--kvp", str(lay["kvp"]), "--tpa", str(lay["tpa"]),
                     "--dp", str(lay["dp"]), "--tpf", str(lay["tpf"]), "--ep", str(lay["ep"]), "--pp", str(lay["pp"]),
                     "--batch", str(rec["batch"]), "--context", "8000")
    assert got["precision"]["weights"] == rec["per_hardware"][0]["precision"]["weights"] == "fp4"
    assert got["tokens_per_s_user"] == pytest.approx(rec["tokens_per_s_user"], rel=1e-9)


def test_plan_refuses_enormous_flags_in_one_line(capsys):
    for flag, value in (("--context", str(2 ** 63)), ("--users", str(2 ** 63))):
        argv = list(SMALL_PLAN)
        argv[argv.index(flag) + 1] = value
        assert_error(cli(capsys, argv), flag)


def test_repeated_hardware_is_planned_once(capsys):
    code, out, err = cli(capsys, SMALL_PLAN + ["--hardware", "b200-hgx", "--json"])
    assert code == 0, err
    assert [h["hardware"] for h in json.loads(out)["per_hardware"]] == ["b200-hgx"]


def test_sweep_lists_are_deduplicated_and_models_resolve_beside_the_yaml(tmp_path, capsys):
    sub = tmp_path / "specs"
    sub.mkdir()
    (sub / "llama-3.1-70b.yaml").write_text((data_dir("models") / "llama-3.1-70b.yaml").read_text())
    once = ("name: s\ndescription: s\nmodels: [specs/llama-3.1-70b.yaml]\nhardware: h200-hgx\ncontexts: [4k]\n"
            "max_gpus: 2\nmax_batch: 2\nstrategies: [tp]\n")
    twice = once.replace("[specs/llama-3.1-70b.yaml]", "[specs/llama-3.1-70b.yaml, specs/llama-3.1-70b.yaml]") \
                .replace("[4k]", "[4k, 4000]").replace("[tp]", "[tp, tp]")
    tables = []
    for name, text in (("once", once), ("twice", twice)):
        (tmp_path / f"{name}.yaml").write_text(text)
        code, out, err = cli(capsys, ["sweep", tmp_path / f"{name}.yaml", "--out", tmp_path / f"out-{name}",
                                      "--format", "csv"])
        assert code == 0, err   # the model file is found beside the YAML, not in the working directory
        tables.append((tmp_path / f"out-{name}" / "s.csv").read_text().splitlines()[1:])
    assert tables[0] == tables[1]


def test_more_pipeline_stages_than_layers_is_refused(tmp_path, capsys):
    path = tmp_path / "pp.yaml"
    path.write_text("name: s\ndescription: s\nmodels: [llama-3.1-70b]\nhardware: h200-hgx\ncontexts: [4096]\n"
                    "pp: [8192]\n")
    err = assert_error(cli(capsys, ["sweep", path, "--out", tmp_path / "out"]), str(path), out_dir=tmp_path / "out")
    assert "pp[0]" in err and "80 layers" in err, err


def test_family_wording_says_what_was_searched_and_ties():
    cfg = SimpleNamespace(strategy="helix", label="1x8x1=8x1", batch=8)
    alone = SimpleNamespace(choice=SimpleNamespace(config=cfg), other_family_best=None, family="Helix",
                            family_margin=None)
    assert _family_text(alone, ("helix",)) == "No baseline layout was searched (strategies: helix)."
    assert _family_text(alone, ("helix", "tp")) == "No baseline layout reaches the floor here."
    twin = SimpleNamespace(choice=SimpleNamespace(config=cfg), family="Helix", family_margin=1.001,
                           other_family_best=SimpleNamespace(strategy="tp", label="1x8x1=8x1", batch=8))
    assert "ties with the best baseline" in _family_text(twin, ("helix", "tp"))
    assert _family_cell(twin) == "Helix ties (within 0.5 %)"
