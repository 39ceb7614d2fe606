"""Every config of every group composes and validates; bad input fails fast with a helpful message."""

from __future__ import annotations

import pytest

from conftest import ROOT, load_config, run_cli
from deepeut.config import ConfigError, check_overrides
from deepeut.config.schema import GROUPS

OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((ROOT / "conf" / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_composes_and_validates(group, option):
    extra = ["labeler.imported.path=data.extxyz"] if (group, option) == ("labeler", "import") else []
    cfg = load_config(f"{group}={option}", *extra)
    assert getattr(cfg, group).name == option


@pytest.mark.parametrize("system,ratio,density", [("ura", 3.5, 1.615), ("act", 4, 1.370), ("nma", 4, 1.257)])
def test_system_chemistry(system, ratio, density):
    cfg = load_config(f"system={system}")
    solvent = [s for s in cfg.system.species if s.role == "solvent"]
    assert len(solvent) == 1 and solvent[0].per_ion_pair == ratio
    assert cfg.system.density_g_cm3 == density
    assert cfg.system.temperature_K == 353.0


def test_misspelled_key_names_key_and_suggests():
    with pytest.raises(ConfigError, match=r"system\.densty.*Did you mean 'density_g_cm3'"):
        check_overrides(["system.densty=1.2"])
    with pytest.raises(ConfigError, match=r"unknown config key 'md\.temprature_K'.*temperature_K"):
        check_overrides(["md.temprature_K=300"])
    for added in ("+foo=1", "+train.max_epoch=3"):  # a + does not let a misspelled field through
        with pytest.raises(ConfigError, match="unknown config key"):
            check_overrides([added])
    check_overrides(  # valid ones pass: a map entry, an optional group, Hydra's own keys
        ["md.temperature_K=300", "system=nma", "+train.force_weight_by_element.Li=2", "+experiment=paper_ura"]
        + ["hydra.run.dir=x"]
    )


@pytest.mark.parametrize(
    "override,needle",
    [
        ("md.temperature_K=-5", "md.temperature_K: must be > 0 K"),
        ("md.timestep_fs=6", "md.timestep_fs: must be in (0, 5] fs"),
        ("scale.n_ion_pairs=0", "scale.n_ion_pairs: must be >= 1"),
        ("device=tpu", "device: 'tpu' is not"),
    ],
)
def test_bad_values_fail_with_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(override)
    assert needle in str(err.value)


def test_cli_bad_input_one_line_exit_2():
    r = run_cli("md.timestep_fs=10")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "deepeut: error: md.timestep_fs: must be in (0, 5] fs, got 10.0: molecules with hydrogens need ~0.5 fs"
    ]
    r = run_cli("system.densty=1")
    assert r.returncode == 2 and "Did you mean 'density_g_cm3'" in r.stderr


def test_cli_unknown_system_lists_options():
    r = run_cli("system=water")
    assert r.returncode != 0
    assert "system" in r.stderr and "ura" in r.stderr and "nma" in r.stderr


def test_cli_wrong_type_or_choice_is_one_line_naming_the_key():
    for override, needle in (("md.timestep_fs=fast", "md.timestep_fs:"), ("md.engine=gromacs", "md.engine:")):
        r = run_cli(override)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert "ase, torchsim, lammps" in run_cli("md.engine=gromacs").stderr  # the enum's choices


def test_import_labeler_needs_a_path():
    with pytest.raises(ConfigError, match="labeler.imported.path"):
        load_config("labeler=import")


def test_old_ensemble_key_still_names_the_committee():
    """``ensemble=`` (the key's old name) is read as ``committee=``; giving both differently is refused."""
    from deepeut.config import ConfigError

    assert load_config("ensemble=embedded").committee == "embedded"
    assert load_config("committee=embedded").committee == "embedded"
    with pytest.raises(ConfigError, match="old name of committee"):
        load_config("ensemble=a", "committee=b")


def test_defaults_live_in_one_place():
    """No group option repeats a value the schema already defaults to (interpolations and values that override an
    inherited option excepted): a default changed in one place cannot be silently shadowed by a stale copy."""
    import dataclasses

    import yaml
    from omegaconf import MISSING

    from deepeut.config.schema import GROUPS

    repeats = []
    for group, cls in GROUPS.items():
        defaults = {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
        for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
            values = yaml.safe_load(path.read_text()) or {}
            parents = [p for p in values.get("defaults", []) if isinstance(p, str) and p != "_self_"]
            inherited = {}
            for p in parents:
                inherited.update(yaml.safe_load((path.parent / f"{p}.yaml").read_text()) or {})
            for key, value in values.items():
                if key in ("name", "defaults") or key in inherited or isinstance(value, dict):
                    continue
                if isinstance(value, str) and "${" in value:
                    continue
                if key in defaults and defaults[key] is not MISSING and defaults[key] == value:
                    repeats.append(f"{group}/{path.stem}.yaml: {key}")
    assert not repeats, repeats


@pytest.mark.parametrize(
    "override,key",
    [
        ("al.max_selected=-3", "al.max_selected"),
        ("al.min_gap_frames=-1", "al.min_gap_frames"),
        ("al.stop_below=-1", "al.stop_below"),
        ("al.threshold_kcal_mol_A=-1", "al.threshold_kcal_mol_A"),
        ("al.explore_temperature_K=0", "al.explore_temperature_K"),
        ("al.explore_save_every_fs=0", "al.explore_temperature_K"),
        ("+al.min_distance_A.H-O=-1", "al.min_distance_A.H-O"),
        ("+al.select_contacts_below_A.LiO=1.7", "al.select_contacts_below_A"),
    ],
)
def test_active_learning_settings_fail_at_start_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("stage=al", override)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["train.lr_final=0.01"], "train.lr_final"),  # an anneal that rises above train.lr
        (["train=campaign", "train.lr_final=1e-5"], "train.lr_final"),  # cosine and plateau at once
        (["train.ema_decay=1"], "train.ema_decay"),
    ],
)
def test_learning_rate_schedule_settings_fail_at_start_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(*overrides)


@pytest.mark.parametrize(
    "override",
    [
        "seed=-1",
        "train.seed=-1",
        "train.devices=0",
        "model.num_bessels=0",
        "md.seed=-1",
        "md.checkpoint_every_steps=0",
        "md.max_force_eV_A=0",
        "md.equilibration_ps=-1",
        "labeler.xtb.max_iterations=0",
        "labeler.cp2k.cutoff_Ry=-400",
        "labeler.executor.timeout_min=0",
        "reference.n_train=0",
        "build.max_attempts=0",
        "classical.pressure_bar=-1",
        "analysis.vccf_lag_ps=0",
        "validate.min_contact_A.Li-O=-1",
        "scale.md_duration_ps.production=-2",
    ],
)
def test_a_negative_count_or_size_fails_at_start_naming_the_key(override):
    """Every number that counts, sizes or seeds something is bounded: -1 or 0 is one line naming its key, not a
    traceback minutes later (a probe over every numeric leaf found only a total charge, a paper value and the lock
    wait, where negatives mean something, still accepting -1)."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"^{key.replace('.', chr(92) + '.')}: must be"):
        load_config(override)
