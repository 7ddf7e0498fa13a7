"""Evals: real fault scenarios (`evals/scenarios/*.yaml`), run on fresh servers and scored like AIOpsLab and ITBench."""
