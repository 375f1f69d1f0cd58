"""helixsim: an analytical roofline and Pareto simulator for LLM decode, centred on Helix parallelism."""

__version__ = "0.1.0"
