"""What a pipeline is about to do, with a time estimate, printed before any work starts.

Estimates are rough: per-atom costs of one model call measured on the 2-core CPU this project is developed on
(:data:`CPU_COST_S_PER_ATOM`) or derived for one GPU from the paper's 0.65 ns/day on 8 A30s for 8192 atoms
(:data:`GPU_COST_S_PER_ATOM`), reference labels scaled from measurements here (xTB ~3 s at 88 atoms, ∝ N²; CP2K
~3 min at 48 atoms on 2 cores, ∝ N³), and the stage's own counts (epochs × frames × members, MD steps × replicas).
Finished stages (already in the stage cache) cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from deepeut.config.schema import Config, ConfigError

#: seconds per atom of one model call on 2 CPU cores: inference (energy + forces) and one training step
CPU_COST_S_PER_ATOM = {
    "allegro_small": {"infer": 0.45e-3, "train_step": 1.6e-3},
    "allegro_medium": {"infer": 0.9e-3, "train_step": 3.3e-3},  # training step measured (2.1x small); infer scaled
    "allegro_paper": {"infer": 11e-3, "train_step": 50e-3},
}
#: the same on one A30-class GPU: the paper's MD (0.65 ns/day, 8192 atoms, 8 GPUs) gives 6.5e-5 s per atom-step
GPU_COST_S_PER_ATOM = {
    "allegro_small": {"infer": 1.5e-5, "train_step": 5e-5},
    "allegro_medium": {"infer": 3e-5, "train_step": 1e-4},  # the CPU ratio to allegro_small, not measured on a GPU
    "allegro_paper": {"infer": 6.5e-5, "train_step": 2e-4},
}
XTB_S_AT_88_ATOMS = 3.0
CP2K_S_AT_48_ATOMS = 180.0


@dataclass
class PlanStep:
    stage: str
    what: str
    estimate_s: float
    reused: bool = False
    note: str = ""  # shown instead of the estimate


def n_atoms(cfg: Config) -> int:
    """Atoms in one box of ``cfg.system`` at ``cfg.scale`` (from the SMILES with hydrogens)."""
    from rdkit import Chem

    from deepeut.systems.box import composition

    counts = composition(cfg.system, cfg.scale.n_ion_pairs)
    sizes = {s.name: Chem.AddHs(Chem.MolFromSmiles(s.smiles)).GetNumAtoms() for s in cfg.system.species}
    return sum(sizes[k] * n for k, n in counts.items())


def model_cost(cfg: Config, kind: str) -> float:
    table = CPU_COST_S_PER_ATOM if cfg.device == "cpu" else GPU_COST_S_PER_ATOM
    return table.get(cfg.model.name, table["allegro_paper"])[kind]


def classical_seconds(cfg: Config, atoms: int, replicas: int) -> float:
    """OpenMM CPU time of the classical stage: ~1 ms + 2 µs per atom per step on 2 cores (measured here: 1.4 ms
    at 88 atoms, 1.7 ms at 352); a GPU ~10× faster for large boxes (not measured here)."""
    c = cfg.classical
    n_steps = (2 * c.heat_ps + c.npt_ps + c.nvt_ps) * 1000.0 / c.timestep_fs
    per_step = 1e-3 + 2e-6 * atoms * (1.0 if cfg.device == "cpu" else 0.1)
    return replicas * (n_steps * per_step + 5.0)


def label_seconds(cfg: Config, atoms: int) -> float:
    """One reference label (energy + forces) of ``atoms`` atoms with ``labeler`` (import: free)."""
    if cfg.labeler.name == "cp2k":
        return CP2K_S_AT_48_ATOMS * (atoms / 48.0) ** 3
    if cfg.labeler.name == "xtb":
        return XTB_S_AT_88_ATOMS * (atoms / 88.0) ** 2
    return 0.0


def md_steps(duration_ps: float, timestep_fs: float) -> int:
    return int(round(duration_ps * 1000.0 / timestep_fs))


def training_seconds(cfg: Config, atoms: int, n_frames: int, members: Optional[int] = None) -> float:
    """Members × epochs × frames training steps (validation and packaging add ~20 %)."""
    members = cfg.train.ensemble_size if members is None else members
    return 1.2 * members * cfg.train.max_epochs * n_frames * atoms * model_cost(cfg, "train_step")


def md_seconds(cfg: Config, atoms: int, seconds_per_step: Optional[float] = None) -> float:
    per_step = seconds_per_step if seconds_per_step is not None else atoms * model_cost(cfg, "infer")
    return cfg.md.replicas * md_steps(cfg.md.duration_ps, cfg.md.timestep_fs) * per_step


def al_seconds(cfg: Config, atoms: int, n_frames: int) -> float:
    a = cfg.al
    explore = a.explore_runs * md_steps(a.explore_ps, cfg.md.timestep_fs) * atoms * model_cost(cfg, "infer")
    frames = a.explore_runs * a.explore_ps * 1000.0 / a.explore_save_every_fs
    uncertainty = frames * cfg.train.ensemble_size * atoms * model_cost(cfg, "infer")
    labels = (a.n_calibration + (a.max_selected or frames)) * label_seconds(cfg, atoms)
    retrain = training_seconds(cfg, atoms, n_frames + (a.max_selected or int(frames)))
    return a.max_iterations * (explore + uncertainty + labels + retrain)


def analysis_seconds(cfg: Config, atoms: int) -> float:
    frames = cfg.md.replicas * cfg.md.duration_ps * 1000.0 / cfg.md.save_every_fs
    return 20.0 + frames * atoms * 2.1e-6  # measured: 20 000 frames of 8192 atoms in 341 s


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def plan_text(cfg: Config, title: str, steps: List[PlanStep]) -> str:
    todo = sum(s.estimate_s for s in steps if not s.reused)
    where = cfg.device + (
        " (estimates for one GPU; labels for 2 CPU cores)"
        if cfg.device != "cpu"
        else " (estimates measured on 2 CPU cores)"
    )
    lines = [f"deepeut {title}: system={cfg.system.name} scale={cfg.scale.name} model={cfg.model.name} on {where}"]
    for k, s in enumerate(steps, 1):
        cost = s.note or ("finished earlier, reused" if s.reused else f"~{fmt_duration(s.estimate_s)}")
        lines.append(f"  {k}. {s.stage:<9} {s.what}  [{cost}]")
    lines.append(f"  estimated total: ~{fmt_duration(todo)}")
    return "\n".join(lines)


def check_budget(cfg: Config, steps: List[PlanStep]) -> None:
    """Refuse a CPU run whose estimate exceeds ``pipeline.max_estimate_h`` (it would silently run for hours).
    The laptop scale (``scale=tiny``, the README's own commands) is never refused: its cost is minutes on any
    machine, and an estimate timed while other jobs load the CPU can be many times too long."""
    limit = cfg.pipeline.max_estimate_h
    todo = sum(s.estimate_s for s in steps if not s.reused)
    if cfg.scale.name == "tiny":
        return
    if cfg.device == "cpu" and limit is not None and todo > 3600 * limit:
        raise ConfigError(
            f"pipeline.max_estimate_h: this run would take ~{fmt_duration(todo)} on this CPU "
            f"(limit {limit:g} h); use scale=tiny, a GPU (device=cuda), a cluster "
            "(hydra/launcher=slurm), or raise pipeline.max_estimate_h"
        )
