"""Config schema registration, start-up validation and friendly errors for bad overrides."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, List, Sequence

from omegaconf import DictConfig, OmegaConf

from .schema import GROUPS, Config, ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "CONF_DIR",
    "register_configs",
    "validate",
    "check_overrides",
    "compose",
    "implied_overrides",
    "check_device",
]

#: conf/ at the repository root (the Hydra config path of run.py)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def register_configs() -> None:
    """Register the top-level schema as ``deepeut_schema`` (first entry of conf/config.yaml's defaults)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="deepeut_schema", node=Config)
    if not OmegaConf.has_resolver("or_default"):  # hydra.run.dir: output_dir when given, else a stamped folder
        OmegaConf.register_new_resolver("or_default", lambda value, default: value if value else default)


def validate(cfg: DictConfig) -> Config:
    """Resolve interpolations and run every ``__post_init__`` check; raises :class:`ConfigError`."""
    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # omegaconf wraps errors raised in __post_init__
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(exc).splitlines()[0]) from None
    assert isinstance(obj, Config)
    return obj


def check_device(cfg: Config) -> None:
    """``device=cuda[:N]`` needs a torch built with CUDA and a visible GPU: say so at start, not mid-run."""
    if not cfg.device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = "is a CPU build" if torch.version.cuda is None else "sees no GPU"
        raise ConfigError(
            f"device: '{cfg.device}' is not available (torch {torch.__version__} {why}); use "
            "device=cpu, or install a CUDA torch on a GPU machine"
        )
    index = int(cfg.device.split(":")[1]) if ":" in cfg.device else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device: '{cfg.device}' does not exist ({torch.cuda.device_count()} GPU(s) visible)")


def _field_types(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key_message(path: str, key: str, allowed: List[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{path}'.{hint} Allowed keys here: {', '.join(sorted(allowed))}"


def _check_key(dotted: str) -> None:
    """Walk ``dotted`` through the schema dataclasses; stop at dicts/lists/Any (free-form)."""
    cls: Any = Config
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            return
        fields = _field_types(cls)
        if part not in fields:
            raise ConfigError(_unknown_key_message(dotted, part, list(fields)))
        cls = fields[part]
        origin = typing.get_origin(cls)
        if origin is typing.Union:  # Optional[X]
            args = [a for a in typing.get_args(cls) if a is not type(None)]
            cls = args[0] if len(args) == 1 else Any


def check_overrides(overrides: Sequence[str]) -> None:
    """Fail fast, naming the key and the allowed keys, on a misspelled command-line override.

    Group selections (``system=nma``, ``+experiment=paper_ura``) are left to Hydra, which lists the available
    options; ``~key`` (delete) and ``hydra.*`` are Hydra's business too. ``+key=...`` adds an entry only where the
    schema has a map (``+train.force_weight_by_element.Li=2``): a misspelled field with a ``+`` fails like one
    without.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if "=" in o or o.startswith("~")])
    for ov in parsed:
        key = ov.key_or_group
        if ov.is_delete() or key.startswith("hydra") or ov.package:
            continue
        if key in GROUPS or (CONF_DIR / key).is_dir():  # group selection
            continue
        _check_key(key)


def implied_overrides(overrides: Sequence[str]) -> List[str]:
    """The main-job rule: a command line that chooses an MD config (``md=production``) but no stage runs
    ``stage=main`` (production MD + analysis with a found or the embedded ensemble) rather than the whole
    workflow. Returns the overrides to add (``["stage=main"]`` or nothing)."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    return ["stage=main"] if "md" in keys and "stage" not in keys else []


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the config as ``run.py`` would (for tests, notebooks and scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    check_overrides(overrides)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[*overrides, *implied_overrides(overrides)])
