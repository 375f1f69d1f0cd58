"""Capacity planning, split by concern.

:mod:`helixsim.plan` is the entry point (:func:`helixsim.plan.plan`) and re-exports the
public names; the pieces live here:

- :mod:`.inputs`: plan YAML, price list, default precision and GPU cap;
- :mod:`.costing`: cost and energy per token, instances, racks/nodes, one deployment;
- :mod:`.results`: the result records (pools, per-hardware plans, the whole plan);
- :mod:`.selection`: picking the configuration at the floor and the runner-ups;
- :mod:`.sensitivity`: the re-planned scenarios;
- :mod:`.report_blocks`, :mod:`.report_figures`, :mod:`.report_content`,
  :mod:`.report_markdown`, :mod:`.report_html`: the report (see :mod:`helixsim.report`).
"""
