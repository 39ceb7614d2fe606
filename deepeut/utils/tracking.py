"""Experiment tracking for deepeut's own stage results (nequip's per-epoch metrics go through Lightning loggers).

``logger=csv`` appends flat scalar results to ``<out>/tracking.csv``; ``logger=wandb`` logs them (and text
tables) to a W&B run under ``<out>/wandb`` (offline unless ``logger.mode=online``); ``logger=none`` does nothing.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict

from deepeut.config.schema import Config


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, float]:
    """Nested dict → {"a/b/c": number} with only numeric leaves."""
    out: Dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def log_results(cfg: Config, out: Path, name: str, results: Dict[str, Any], table: str = "") -> None:
    """Send a stage's final results (numbers, nested allowed) and an optional text table to the logger."""
    flat = flatten(results, name)
    if cfg.logger.name == "none" or cfg.logger.mode == "disabled":
        return
    if cfg.logger.name == "csv":
        path = Path(out) / "tracking.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["key", "value"])
            w.writerows(sorted(flat.items()))
        return
    os.environ.setdefault("WANDB_MODE", cfg.logger.mode)
    import wandb
    from dataclasses import asdict

    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        dir=str(out),
        tags=list(cfg.logger.tags),
        name=f"{cfg.system.name}-{name}",
        job_type=name,
        config=asdict(cfg),
        mode=cfg.logger.mode,
        reinit="finish_previous",
    )
    run.summary.update(flat)
    if table:
        run.log({f"{name}_table": wandb.Html(f"<pre>{table}</pre>")})
    run.finish()
