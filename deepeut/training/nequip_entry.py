"""nequip's command-line tools with Allegro's contraction as batched matrix products (deepeut.training.contract).

    python -m deepeut.training.nequip_entry nequip.scripts.train -cp DIR -cn nequip ...
    python -m deepeut.training.nequip_entry nequip.scripts.compile CKPT OUT --mode aotinductor ...

The tool runs as ``python -m <tool>`` would, after :func:`deepeut.training.contract.patch_allegro`: training
computes the same losses faster, and a compiled model (AOTInductor for LAMMPS ``pair_allegro`` or torch-sim)
carries the batched contraction, with its smaller peak memory. Checkpoints and packaged models are nequip's own.
"""

from __future__ import annotations

import runpy
import sys
from typing import Callable, List, Optional

from deepeut.training.contract import patch_allegro, use_matmul_contractions

NEQUIP_TOOLS = ("nequip.scripts.train", "nequip.scripts.compile")


def with_matmul_contractions(load: Callable) -> Callable:
    """``load`` (nequip's load_saved_model) followed by :func:`use_matmul_contractions` on the loaded model."""

    def loader(*args, **kwargs):
        out = load(*args, **kwargs)
        use_matmul_contractions(out[0] if isinstance(out, tuple) else out)
        return out

    return loader


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in NEQUIP_TOOLS:
        sys.exit(f"usage: python -m deepeut.training.nequip_entry {{{','.join(NEQUIP_TOOLS)}}} [its arguments]")
    patch_allegro()
    if argv[0] == "nequip.scripts.compile":  # a packaged model carries its own copy of Allegro's classes
        from nequip.model.saved_models import load_utils

        load_utils.load_saved_model = with_matmul_contractions(load_utils.load_saved_model)
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
