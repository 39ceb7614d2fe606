"""A campaign's state that survives a fresh machine: the labeled store, the newest trained ensemble and the history.

A campaign (``scripts/campaign.sh``) spans sessions; ``outputs/`` may be gone in the next one. :func:`save` packs,
from a ``stage=al`` folder, into a committed folder (``deepeut/data/campaign/<system>/``):

    train|test|calibration.extxyz.gz, manifest.jsonl   the labeled store (deepeut.data.demo.pack)
    ensemble/                                          the newest complete iteration's members (packaged models
                                                       only, no checkpoints, no machine paths) + snapshot.json
    al_history.json                                    {"segments": [{"started_from", "iterations": [...]}]}:
                                                       one segment per stage=al folder the campaign has run in

The next session's campaign restores the store and warm-starts its first AL iteration from ``ensemble/``
(``al.initial_ensemble``), so no label is recomputed and no member is trained from scratch again.

    python -m deepeut.active_learning.snapshot outputs/campaign/ura/al deepeut/data/campaign/ura
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

from deepeut.training.members import MANIFEST
from deepeut.utils.io import write_json_atomic

HISTORY = "al_history.json"
ENSEMBLE = "ensemble"


def newest_complete_iteration(al_dir: Path) -> Optional[int]:
    """The highest k whose ``iter_<k>/train`` holds a complete ensemble, or None."""
    done = []
    for manifest in Path(al_dir).glob(f"iter_*/train/{MANIFEST}"):
        if json.loads(manifest.read_text()).get("complete"):
            done.append(int(manifest.parent.parent.name.split("_")[1]))
    return max(done) if done else None


def merged_history(old: Dict, started_from: str, iterations: List[Dict]) -> Dict:
    """``old`` with the segment that started from ``started_from`` replaced by ``iterations`` (appended when new)."""
    segments = [s for s in old.get("segments", []) if s.get("started_from") != started_from]
    segments.append({"started_from": started_from, "iterations": iterations})
    return {"segments": segments}


def save(al_dir: Path, dest: Path, started_from: str, store: Optional[Path] = None) -> Dict:
    """Pack the store (``store``, default the loop's own ``al_dir/data``), the newest complete iteration's ensemble
    and the history of ``al_dir`` into ``dest``."""
    from deepeut.data.demo import pack as pack_store
    from deepeut.training.embedded import pack as pack_ensemble

    state = json.loads((Path(al_dir) / "al_state.json").read_text())
    pack_store(Path(store) if store else Path(al_dir) / "data", dest)
    k = newest_complete_iteration(al_dir)
    info: Dict = {"iteration": k, "started_from": started_from}
    if k is not None:
        rec = next((h for h in state["history"] if h["iteration"] == k), {})
        info.update(test_force_rmse_eV_A=rec.get("test_force_rmse"), dataset_size=rec.get("dataset_size"))
        pack_ensemble(Path(al_dir) / f"iter_{k}" / "train", dest / ENSEMBLE, note={"campaign_snapshot": info})
        write_json_atomic(dest / ENSEMBLE / "snapshot.json", info)
    path = dest / HISTORY
    old = json.loads(path.read_text()) if path.exists() else {}
    write_json_atomic(path, merged_history(old, started_from, state["history"]))
    return info


def main() -> None:
    p = argparse.ArgumentParser(description="pack an active-learning campaign's state into a committed folder")
    p.add_argument("al_dir", type=Path, help="a stage=al output folder")
    p.add_argument("dest", type=Path, help="the committed folder, e.g. deepeut/data/campaign/ura")
    p.add_argument("--started-from", default="initial training", help="what the AL folder's iteration 0 was")
    p.add_argument("--store", type=Path, help="the loop's data.store (default: <al_dir>/data)")
    args = p.parse_args()
    print(json.dumps(save(args.al_dir, args.dest, args.started_from, args.store)))


if __name__ == "__main__":
    main()
