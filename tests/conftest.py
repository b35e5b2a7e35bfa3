"""Hypothesis profiles. "ci" (the default) is derandomised: the same examples on every run and every machine, so
a red CI is reproducible and a green one is not luck; no deadline (two shared cores make timings noisy).
"dev" draws new random examples each run and more of them: HYPOTHESIS_PROFILE=dev pytest tests/test_properties.py
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
