"""What every config module shares: the error a bad value raises and the checks of its messages."""

from __future__ import annotations

from deepeut.errors import InputError


class ConfigError(InputError):
    """A config value is out of range or inconsistent; the message names the key."""


def _require(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def _positive(obj, prefix: str, *names: str) -> None:
    """Each field ``names`` of ``obj`` (a number, or null where the schema allows it) must be > 0."""
    for name in names:
        value = getattr(obj, name)
        _require(value is None or value > 0, f"{prefix}.{name}", f"must be > 0, got {value}")


def _at_least(obj, prefix: str, low: int, *names: str) -> None:
    """Each field ``names`` of ``obj`` (a count, or null where the schema allows it) must be >= ``low``."""
    for name in names:
        value = getattr(obj, name)
        _require(value is None or value >= low, f"{prefix}.{name}", f"must be >= {low}, got {value}")


def _choice(value, choices, key: str) -> None:
    """``value`` must be one of the enum ``choices`` (deepeut.config.choices); the message lists them."""
    _require(value in set(choices), key, f"'{value}' is not one of {', '.join(choices)}")


def _check_dynamics(prefix: str, temperature_K: float, timestep_fs: float, duration_ps: float, tau_ps: float) -> None:
    """Checks shared by every MD-like config (md.*, reference.*)."""
    _require(temperature_K > 0, f"{prefix}.temperature_K", f"must be > 0 K, got {temperature_K}")
    _require(
        0 < timestep_fs <= 5.0,
        f"{prefix}.timestep_fs",
        f"must be in (0, 5] fs, got {timestep_fs}: molecules with hydrogens need ~0.5 fs",
    )
    _require(duration_ps > 0, f"{prefix}.duration_ps", "must be > 0 ps")
    _require(tau_ps > 0, f"{prefix}.thermostat_tau_ps", "must be > 0 ps")


#: field metadata: how a stage runs (hardware, parallelism, checkpoints), never what it computes
EXECUTION = {"key": "execution"}
#: field metadata: a file the command line hands to a stage; the pipeline passes it as a typed input
#: (deepeut.stage_io) and keys it by content
INPUT = {"key": "input"}


def key_exempt(f) -> bool:
    """A dataclass field that stays out of stage cache keys (marked :data:`EXECUTION` or :data:`INPUT`)."""
    return f.metadata.get("key") in ("execution", "input")
