"""GPU checks (`pytest -m gpu`, run by scripts/gpu_check.sh on a lent GPU; skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("committee_eval", ["loop", "vmap"])
def test_torchsim_committee_on_cuda_equals_the_cpu_committee(committee_eval):
    """The committee on CUDA (vesin-torch neighbour list on the device; members one by one or vmapped) gives the
    CPU committee's forces."""
    import torch_sim as ts

    from conftest import built_box
    from deepeut.md.engines import Potential
    from deepeut.md.engines.torchsim import torchsim_model
    from deepeut.training.embedded import MODELS_DIR

    atoms = built_box("ura")[1].atoms
    out = {}
    for device in ("cpu", "cuda"):
        model = torchsim_model(Potential(MODELS_DIR / "ura", None, device, committee_eval=committee_eval))
        state = ts.io.atoms_to_state([atoms], device=torch.device(device), dtype=torch.float64)
        out[device] = model(state)["forces"].detach().cpu().numpy()
    np.testing.assert_allclose(out["cuda"], out["cpu"], atol=1e-3)
