"""Orchestration: the whole workflow (stage=pipeline) and the main job (stage=main) over a cache of finished
stages keyed by config hash (see cache.py, workflow.py, plan.py)."""
