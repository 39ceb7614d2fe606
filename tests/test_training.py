"""Ensemble training through nequip-train on the shipped tiny dataset, resume, evaluation (issue 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, built_box, kill_when, load_config, run_cli, start_cli

TYPES = ["C", "F", "H", "Li", "N", "O", "S"]


def member_kwargs(cfg, tmp_path) -> dict:
    """The arguments of nequip_config.member_config other than the member index (a 45-frame training set)."""
    return dict(
        model=cfg.model,
        train=cfg.train,
        logger=cfg.logger,
        train_file=tmp_path / "t.xyz",
        test_file=tmp_path / "s.xyz",
        member_dir=tmp_path,
        type_names=TYPES,
        device="cpu",
        n_train_frames=45,
        group="g",
        tracked={},
    )


def test_member_configs_differ_in_seed_and_split(tmp_path):
    from deepeut.training.nequip_config import member_config

    kw = member_kwargs(load_config("train.val_fraction=0.2"), tmp_path)
    a, b = member_config(member=0, **kw), member_config(member=2, **kw)
    assert (a["data"]["seed"], b["data"]["seed"]) == (1, 3)
    assert (a["training_module"]["model"]["seed"], b["training_module"]["model"]["seed"]) == (1, 3)
    assert a["data"]["split_dataset"]["val"] == pytest.approx(0.2)
    # Eq. 5 with the paper's weights: per-atom energy MSE + force MSE, Adam lr 1e-3, batch 1
    assert a["training_module"]["loss"]["per_atom_energy"] is True
    assert a["training_module"]["loss"]["coeffs"] == {"total_energy": 1.0, "forces": 1.0}
    assert a["training_module"]["optimizer"] == {"_target_": "torch.optim.Adam", "lr": 1e-3}
    assert a["data"]["train_dataloader"]["batch_size"] == 1
    assert a["training_module"]["model"]["avg_num_neighbors"] == "${training_data_stats:num_neighbors_mean}"


def test_warm_start_loads_the_previous_members_weights(ensemble_dir, tmp_path):
    """train.init_from: member k starts from ensemble_dir's member k (nequip's ModelFromCheckpoint) and trains."""
    from deepeut.training.nequip_config import member_config

    c = member_config(member=1, init_from=ensemble_dir, **member_kwargs(load_config(), tmp_path))
    assert c["training_module"]["model"] == {
        "_target_": "nequip.model.ModelFromCheckpoint",
        "checkpoint_path": str((ensemble_dir / "member_1" / "best.ckpt").resolve()),
    }
    res = run_cli(
        "stage=train",
        "train.ensemble_size=1",
        "train.max_epochs=1",
        "train.package=false",
        f"train.init_from={ensemble_dir}",
        f"output_dir={tmp_path / 'warm'}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    warm = json.loads((tmp_path / "warm" / "ensemble.json").read_text())["members"][0]["test_metrics"]["forces_rmse"]
    cold = json.loads((ensemble_dir / "ensemble.json").read_text())["members"][0]["test_metrics"]["forces_rmse"]
    assert warm < cold * 1.1  # one more epoch from trained weights is not worse than starting over


@pytest.mark.parametrize(
    "schedule",
    [
        ("train.lr_plateau_factor=0.5", "train.lr_plateau_patience=0"),  # stepped after the epoch on val
        ("train.lr_final=1e-5", "train.ema_decay=0.99"),  # the finishing anneal: cosine + EMA weights
    ],
    ids=["plateau", "cosine-ema"],
)
def test_warm_start_from_a_packed_ensemble_trains_and_records_test_metrics_without_a_logger(tmp_path, schedule):
    """A campaign resumed on a fresh machine warm-starts from committed packages (model.nequip.zip only); the
    manifest's test metrics come from the CSV metrics, which are written even with logger=none. nequip accepts
    both learning-rate schedules the campaign uses."""
    from ase.io import read

    from deepeut.training.evaluate import evaluate_frames
    from deepeut.training.potential import Ensemble

    res = run_cli(  # NMA's shipped (campaign) ensemble, warm-started on the shipped demo data
        "stage=train",
        "system=nma",
        "train.ensemble_size=1",
        "train.max_epochs=1",
        "train.package=false",
        "train.init_from=deepeut/models/nma",
        *schedule,
        "logger=none",
        f"output_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    member = json.loads((tmp_path / "ensemble.json").read_text())["members"][0]
    # the shipped member 0 on the same test frames (0.32 eV/Å): one epoch from its weights stays near it; one epoch
    # from random weights gave 0.79 eV/Å here, above the bound
    frames = read(tmp_path / "data" / "test.extxyz", ":")
    shipped = evaluate_frames(Ensemble.load(ROOT / "deepeut/models/nma", members=[0]), frames)["errors"]["member_0"]
    assert member["test_metrics"]["forces_rmse"] < 1.5 * shipped["forces_eV_A"]["rmse"]


def test_plateau_schedule_is_off_for_the_paper_and_on_for_the_campaign(tmp_path):
    from deepeut.training.nequip_config import member_config

    assert "lr_scheduler" not in member_config(member=0, **member_kwargs(load_config(), tmp_path))["training_module"]
    c = member_config(member=0, **member_kwargs(load_config("train=campaign"), tmp_path))["training_module"]
    sched = c["lr_scheduler"]
    assert sched["scheduler"]["_target_"].endswith("ReduceLROnPlateau") and sched["scheduler"]["factor"] == 0.5
    assert sched["monitor"].startswith("val") and sched["interval"] == "epoch"


def test_finishing_anneal_is_a_cosine_to_lr_final_with_ema_weights(tmp_path):
    from deepeut.training.nequip_config import member_config

    overrides = ("train=campaign", "train.lr_plateau_factor=null", "train.lr_final=1e-5", "train.ema_decay=0.999")
    c = member_config(member=0, **member_kwargs(load_config(*overrides), tmp_path))["training_module"]
    sched = c["lr_scheduler"]["scheduler"]
    assert sched["_target_"].endswith("CosineAnnealingLR") and sched["eta_min"] == 1e-5
    assert sched["T_max"] == 30  # train=campaign's max_epochs: the rate reaches lr_final at the last epoch
    assert c["_target_"] == "nequip.train.EMALightningModule" and c["ema_decay"] == 0.999
    plain = member_config(member=0, **member_kwargs(load_config(), tmp_path))["training_module"]
    assert plain["_target_"] == "nequip.train.NequIPLightningModule" and "ema_decay" not in plain


def test_device_maps_to_lightning_accelerator():
    from deepeut.training.nequip_config import lightning_accelerator

    assert lightning_accelerator("cpu", 1) == {"accelerator": "cpu", "devices": 1}
    assert lightning_accelerator("cuda", 4) == {"accelerator": "gpu", "devices": 4}
    assert lightning_accelerator("cuda:1", 4) == {"accelerator": "gpu", "devices": [1]}


def test_ensemble_members_are_different_and_beat_zero_forces(ensemble_dir):
    from ase.io import read

    from deepeut.training.potential import Ensemble

    manifest = json.loads((ensemble_dir / "ensemble.json").read_text())
    assert manifest["complete"] and [m["member"] for m in manifest["members"]] == [0, 1, 2]
    assert len({m["seed"] for m in manifest["members"]}) == 3
    for m in manifest["members"]:
        d = ensemble_dir / m["dir"]
        assert (d / "best.ckpt").exists() and (d / "last.ckpt").exists() and (d / "model.nequip.zip").exists()
        assert (d / "metrics" / "metrics.csv").exists()
    frames = read(ensemble_dir / "data" / "test.extxyz", ":")
    ens = Ensemble.load(ensemble_dir)
    pred = ens.predict(frames)
    f_ref = np.concatenate([a.get_forces() for a in frames])
    zero_rmse = np.sqrt((f_ref**2).mean())
    rmses = []
    for m in range(3):
        f = np.concatenate([p[m] for p in pred.forces])
        rmses.append(np.sqrt(((f - f_ref) ** 2).mean()))
    assert np.all(np.isfinite(rmses)) and max(rmses) < zero_rmse
    # the members are three different models
    f0, f1, f2 = (np.concatenate([p[m] for p in pred.forces]) for m in range(3))
    assert np.abs(f0 - f1).max() > 1e-3 and np.abs(f1 - f2).max() > 1e-3
    # the ASE calculator returns the ensemble mean and Eq. 6 uncertainty
    atoms = frames[0].copy()
    atoms.calc = ens.calculator()
    np.testing.assert_allclose(atoms.get_forces(), pred.forces[0].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(atoms.calc.results["force_uncertainty"], pred.uncertainty()[0], atol=1e-5)


def test_finished_members_are_not_retrained(ensemble_dir):
    before = {p: p.stat().st_mtime for p in ensemble_dir.glob("member_*/best.ckpt")}
    res = run_cli("stage=train", "train.max_epochs=2", f"output_dir={ensemble_dir}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (res.stdout + res.stderr).count("not retrained") == 3
    assert before == {p: p.stat().st_mtime for p in ensemble_dir.glob("member_*/best.ckpt")}


def test_evaluate_per_element_rmse_sums_to_overall(ensemble_dir, tmp_path):
    from deepeut.training.evaluate import combine_rmse

    res = run_cli("stage=evaluate", f"committee={ensemble_dir}", f"output_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert set(report["models"]) == {"member_0", "member_1", "member_2", "ensemble_mean"}
    for errors in report["models"].values():
        by_el = errors["forces_by_element_eV_A"]
        assert set(by_el) == set(TYPES)
        assert combine_rmse(by_el) == pytest.approx(errors["forces_eV_A"]["rmse"], rel=1e-9)
        assert errors["forces_kcal_mol_A"]["rmse"] == pytest.approx(errors["forces_eV_A"]["rmse"] * 23.0605, rel=1e-3)
    # the ensemble mean is at least as good as the average member in RMSE (convexity of the squared error)
    members = [report["models"][f"member_{k}"]["forces_eV_A"]["rmse"] ** 2 for k in range(3)]
    assert report["models"]["ensemble_mean"]["forces_eV_A"]["rmse"] ** 2 <= np.mean(members) + 1e-12
    for name in ("evaluation.txt", "fig3_errors.png", "figS2_force_errors_by_element.png", "predictions.npz"):
        assert (tmp_path / name).stat().st_size > 0
    assert "kcal/mol/Å" in (tmp_path / "evaluation.txt").read_text()


def test_killed_member_resumes_from_checkpoint(tmp_path):
    """Kill a training run after its first epoch; the restarted run continues from last.ckpt."""
    import torch

    args = [
        "stage=train",
        "train.ensemble_size=1",
        "train.max_epochs=3",
        "train.early_stopping_patience=null",
        "train.package=false",
        f"output_dir={tmp_path}",
    ]
    ckpt = tmp_path / "member_0" / "last.ckpt"
    assert kill_when(start_cli(*args), ckpt.exists, settle=0.5), "no checkpoint was written"
    assert not (tmp_path / "member_0" / "done.json").exists()
    killed_epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
    assert killed_epoch < 2
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    done = json.loads((tmp_path / "member_0" / "done.json").read_text())
    assert done["resumed"] is True
    assert "Continuing training with checkpoint" in (tmp_path / "member_0" / "nequip.log").read_text()
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 2  # epochs 0, 1, 2 in all


def test_wandb_logger_works_offline(tmp_path):
    res = run_cli(
        "stage=train",
        "logger=wandb",
        "train.ensemble_size=1",
        "train.max_epochs=1",
        "train.package=false",
        f"output_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = list((tmp_path / "member_0" / "wandb").glob("offline-run-*"))
    assert runs, "no offline W&B run was written"


def test_mismatched_dataset_refuses_to_mix(tmp_path):
    from deepeut.training.task import _check_same_dataset
    from deepeut.training.members import TrainingError

    (tmp_path / "ensemble.json").write_text(json.dumps({"dataset": {"manifest_hash": "aaaa"}}))
    with pytest.raises(TrainingError, match="new output_dir"):
        _check_same_dataset(tmp_path, "bbbb")


def test_multirun_trains_members_side_by_side(tmp_path):
    """``-m train.members=[0],[1]`` with the joblib launcher: two jobs, one ensemble folder."""
    res = run_cli(
        "-m",
        "stage=train",
        "train.members=[0],[1]",
        "train.ensemble_size=2",
        "train.max_epochs=1",
        "train.package=false",
        f"output_dir={tmp_path}",
        "hydra/launcher=local",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((tmp_path / "ensemble.json").read_text())
    assert manifest["complete"] and [m["member"] for m in manifest["members"]] == [0, 1]


def test_compile_commands_name_every_member(ensemble_dir):
    from deepeut.training.compile import compile_commands

    cmds = compile_commands(ensemble_dir, "pair_allegro", "cuda")
    assert len(cmds) == 3
    assert all("--target" in c and c[c.index("--target") + 1] == "pair_allegro" for c in cmds)
    ckpt = next(k for k, a in enumerate(cmds[1]) if a.endswith(".ckpt"))
    assert cmds[1][ckpt].endswith("member_1/best.ckpt")
    assert cmds[1][ckpt + 1].endswith("compiled_pair_allegro.nequip.pt2")
    assert cmds[1][2:4] == ["deepeut.training.nequip_entry", "nequip.scripts.compile"]
    with pytest.raises(ValueError, match="not one of"):
        compile_commands(ensemble_dir, "gromacs", "cpu")


def test_optuna_sweeper_example_is_valid_yaml(root):
    import yaml

    cfg = yaml.safe_load((root / "conf" / "hydra" / "sweeper" / "optuna.yaml").read_text())
    assert cfg["direction"] == "minimize" and "model.r_max" in cfg["params"]


def test_warm_start_from_a_packed_member_or_a_checkpoint(tmp_path):
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.members import TrainingError
    from deepeut.training.nequip_config import warm_start_model

    packed = warm_start_model(MODELS_DIR / "ura" / "member_1")  # committed ensembles carry packages only
    assert packed["_target_"] == "nequip.model.ModelFromPackage" and packed["package_path"].endswith("model.nequip.zip")
    (tmp_path / "member_0").mkdir()
    (tmp_path / "member_0" / "best.ckpt").write_bytes(b"")
    assert warm_start_model(tmp_path / "member_0")["_target_"] == "nequip.model.ModelFromCheckpoint"
    with pytest.raises(TrainingError, match="neither best.ckpt nor model.nequip.zip"):
        warm_start_model(tmp_path / "member_2")


def test_force_loss_by_element_is_the_weighted_mean_of_per_element_mses():
    """Known answer: force MSEs H 1, Li 4, O 0.25 (eV²/Å²) with weight 3 on Li give (1 + 3·4 + 0.25) / 5 = 2.65;
    the default mean over the 6 atoms is (2·1 + 4 + 3·0.25) / 6 = 1.125."""
    import torch
    from hydra.utils import instantiate
    from nequip.data import AtomicDataDict as D

    from deepeut.errors import InputError
    from deepeut.training.nequip_config import loss_section

    types = ["H", "Li", "O"]
    t = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.zeros(6, 3)
    pred[:2], pred[2], pred[3:] = 1.0, 2.0, 0.5
    base = {
        D.ATOM_TYPE_KEY: t,
        D.NUM_NODES_KEY: torch.tensor([6]),
        D.BATCH_KEY: torch.zeros(6, dtype=torch.long),
        D.TOTAL_ENERGY_KEY: torch.zeros(1, 1),
    }
    for overrides, expected in ((["+train.force_weight_by_element.Li=3.0"], 2.65), ([], 1.125)):
        loss = instantiate(loss_section(load_config(*overrides).train, types), type_names=types)
        out = loss({**base, D.FORCE_KEY: pred}, {**base, D.FORCE_KEY: torch.zeros(6, 3)})
        assert float(out["forces_mse"]) == pytest.approx(expected)
    with pytest.raises(InputError, match="Na, not an element of this system"):
        loss_section(load_config("+train.force_weight_by_element.Na=2.0").train, types)


def test_force_weight_by_element_bad_values_are_one_line():
    r = run_cli("stage=train", "+train.force_weight_by_element.Li=-1")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "deepeut: error: train.force_weight_by_element.Li: must be > 0"
    ]
    r = run_cli("stage=train", "train.force_weight_by_element={Li:2}")
    assert r.returncode == 2 and "+train.force_weight_by_element.Li=VALUE" in r.stderr.strip().splitlines()[-1]


def test_packed_ensemble_names_the_shipped_dataset_it_was_trained_on(ensemble_dir, tmp_path):
    """pack --origin campaign:ura: the manifest names the shipped campaign data (no machine path), stage=evaluate
    finds its test split on any machine, the validation records travel and a replaced ensemble's records go."""
    from deepeut.data.demo import demo_files
    from deepeut.training.embedded import pack

    (ensemble_dir / "validation_tiny.json").write_text('{"of": "this ensemble"}')
    dest = tmp_path / "models" / "ura"
    dest.mkdir(parents=True)
    (dest / "validation_small.json").write_text('{"of": "the ensemble it replaces"}')
    pack(ensemble_dir, dest, origin="campaign:ura")
    text = (dest / "ensemble.json").read_text()
    manifest = json.loads(text)
    assert manifest["dataset"]["origin"] == "campaign:ura" and str(ensemble_dir) not in text
    assert manifest["embedded"]["regenerate"] == "SYSTEM=ura PACK=1 bash scripts/campaign.sh"
    assert sorted(p.name for p in dest.glob("validation_*.json")) == ["validation_tiny.json"]
    import zipfile

    from deepeut.training.potential import Ensemble, member_model_files

    for packed in member_model_files(dest):  # the training config inside each package names no machine path
        config = zipfile.ZipFile(packed).read("model.nequip/model/config.yaml").decode()
        assert "file_path:" in config and str(ensemble_dir) not in config and str(tmp_path) not in config
    frame = built_box("ura")[1].atoms
    same = Ensemble.load(dest).predict([frame]), Ensemble.load(ensemble_dir).predict([frame])
    assert np.array_equal(same[0].energies, same[1].energies)  # the weights travelled byte for byte
    r = run_cli("stage=evaluate", f"committee={dest}", f"output_dir={tmp_path / 'ev'}")
    assert r.returncode == 0, r.stderr[-2000:]
    n_test = sum(
        1 for line in __import__("gzip").open(demo_files("ura", "campaign")["test"], "rt") if "Lattice" in line
    )
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["n_frames"] == n_test
    for bad, why in (("campaign:nma", "of system 'ura'"), ("cluster:ura", "one of demo, campaign")):
        with pytest.raises(SystemExit, match=why):
            pack(ensemble_dir, tmp_path / "other", origin=bad)
    demo = json.loads((pack(ensemble_dir, tmp_path / "demo", origin="demo:ura") / "ensemble.json").read_text())
    assert demo["embedded"]["regenerate"] == (
        "python run.py stage=train system=ura train=embedded output_dir=outputs/embedded/ura && "
        "python -m deepeut.training.embedded pack outputs/embedded/ura deepeut/models/ura --origin demo:ura"
    )
