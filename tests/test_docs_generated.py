"""Docs that cannot drift (issue 15): generated blocks and figures of README.md and docs/ match the code.

The first test is the guard: it recomputes every ``<!-- generated:NAME -->`` block and the
numbers behind every registered figure and fails on any difference (run ``helixsim docs``
to regenerate). The others check the mechanism on a scratch tree.
"""

from __future__ import annotations

import json

import pytest

from helixsim import docgen
from helixsim.errors import SpecError


def test_committed_docs_match_what_the_code_produces():
    drift = docgen.regenerate(check=True)
    assert drift == [], f"docs differ from the code: {drift}; run `helixsim docs` and commit the result"


def test_every_block_in_the_docs_has_a_generator():
    docgen.load_all()
    names = {m for f in docgen.doc_files() for m in docgen.OPEN.findall(f.read_text())}
    assert names, "no generated block in README.md or docs/"
    assert names <= set(docgen.GENERATORS)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A repository root with one doc, one generator and one figure whose values the test controls."""
    docgen.load_all()
    state = {"text": "first", "numbers": {"x": [1.0, 2.0]}}
    monkeypatch.setitem(docgen.GENERATORS, "scratch-text", lambda: state["text"])
    drawn = []
    monkeypatch.setitem(docgen.FIGURES, "scratch-fig", docgen.Figure(
        "docs/fig.png", lambda: state["numbers"], lambda numbers, path: (drawn.append(numbers), path.write_bytes(b"png"))))
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("intro\n<!-- generated:scratch-text -->\nstale\n<!-- /generated:scratch-text -->\nend\n")
    return tmp_path, state, drawn


def only_scratch(changes):
    return [c for c in changes if "scratch" in c or "fig.png" in c]


def test_regenerate_fills_blocks_and_draws_figures_from_their_numbers(scratch):
    root, state, drawn = scratch
    changes = only_scratch(docgen.regenerate(root, names=("scratch-fig",)))
    assert changes == ["README.md: scratch-text", "docs/fig.png: figure scratch-fig"]
    assert (root / "README.md").read_text() == ("intro\n<!-- generated:scratch-text -->\nfirst\n"
                                                "<!-- /generated:scratch-text -->\nend\n")
    assert json.loads((root / "docs" / "fig.json").read_text()) == {"x": [1.0, 2.0]}
    assert drawn == [{"x": [1.0, 2.0]}]
    assert only_scratch(docgen.regenerate(root, check=True, names=("scratch-fig",))) == []


def test_check_reports_text_and_number_drift_without_writing(scratch):
    root, state, drawn = scratch
    docgen.regenerate(root, names=("scratch-fig",))
    state["text"], state["numbers"] = "second", {"x": [1.0, 2.5]}
    before = (root / "README.md").read_text()
    changes = only_scratch(docgen.regenerate(root, check=True, names=("scratch-fig",)))
    assert changes == ["README.md: scratch-text", "docs/fig.png: figure scratch-fig"]
    assert (root / "README.md").read_text() == before


def test_float_noise_below_the_stored_digits_is_not_drift(scratch):
    root, state, drawn = scratch
    docgen.regenerate(root, names=("scratch-fig",))
    state["numbers"] = {"x": [1.0 + 1e-12, 2.0]}
    assert only_scratch(docgen.regenerate(root, check=True, names=("scratch-fig",))) == []


def test_unknown_or_unterminated_blocks_are_errors():
    with pytest.raises(SpecError, match="no docs generator"):
        docgen.render_file("<!-- generated:nope -->\n<!-- /generated:nope -->\n", "X.md", {})
    with pytest.raises(SpecError, match="no matching"):
        docgen.render_file("<!-- generated:nope -->\ntext\n", "X.md", {})
