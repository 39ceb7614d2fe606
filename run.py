#!/usr/bin/env python
"""deepeut entry point (Hydra; see README.md).

``python run.py``                          the whole workflow (stage=pipeline) for the default system, laptop scale
``python run.py system=nma md=production`` the main job: production MD + analysis + report (stage=main)
``python run.py stage=build system=act``   one stage
"""

import errno
import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from deepeut.config import ConfigError, check_device, check_overrides, implied_overrides, register_configs, validate

log = logging.getLogger("deepeut")
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def _fail(msg: str) -> None:
    print(f"deepeut: error: {msg}", file=sys.stderr)
    sys.exit(2)


def _validate_before_hydra(overrides) -> None:
    """Bad values fail here, before Hydra creates a run directory: a bad command leaves nothing behind."""
    from hydra.errors import MissingConfigException

    from deepeut.config import compose

    try:
        check_device(validate(compose(overrides)))
    except ConfigError as exc:
        _fail(str(exc))
    except MissingConfigException as exc:  # an unknown group option: system=water
        group, _, name = str(exc.missing_cfg_file).rpartition("/")
        _fail(f"{group}: '{name}' is not one of {', '.join(exc.options or [])}" if exc.options else str(exc))
    except Exception as exc:  # a value of the wrong type or choice names its key; other errors are Hydra's to report
        line = value_error_line(exc)
        if line:
            _fail(line)


def value_error_line(exc: BaseException):
    """``key: message`` of an OmegaConf validation error (a float given as a word, a choice not in its enum) found
    in ``exc``'s causes, else None."""
    while exc is not None:
        key = getattr(exc, "full_key", None)
        if key:
            msg = str(getattr(exc, "msg", exc)).splitlines()[0]
            if "not in struct" in msg:  # a new entry of a map field: Hydra adds keys only with a leading +
                msg = f"no such key; a new entry of a map is added as +{key}=VALUE"
            return f"{key}: {msg}"
        exc = exc.__cause__
    return None


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    try:
        conf = validate(cfg)
        check_device(conf)
    except ConfigError as exc:
        _fail(str(exc))
    out = Path(conf.output_dir or HydraConfig.get().runtime.output_dir)
    from deepeut.stages import RUN_ERRORS, run_stage

    try:
        result = run_stage(conf, out)
    except ConfigError as exc:
        _fail(str(exc))
    except RUN_ERRORS as exc:  # a stage stopped for a reason it can name (failed labels, a bad box, ...)
        print(f"deepeut: {conf.stage.name} stopped: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # the disk: full, read-only, no permission
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(
            f"deepeut: {conf.stage.name} stopped: {os.strerror(exc.errno)}{where}; free space or choose a writable "
            "output_dir / pipeline.cache_dir, then rerun the same command (finished work and the last "
            "checkpoint are kept)",
            file=sys.stderr,
        )
        sys.exit(1)
    log.info("stage %s finished; outputs in %s", conf.stage.name, out)
    # sweepers (Optuna) minimise the number a stage reports as its objective
    return result.get("objective", result) if isinstance(result, dict) else result


if __name__ == "__main__":
    register_configs()
    overrides = [a for a in sys.argv[1:] if not a.startswith("-")]
    try:
        check_overrides(overrides)
    except ConfigError as exc:
        _fail(str(exc))
    sys.argv += implied_overrides(overrides)  # `md=production` without `stage=`: the main job (stage=main)
    if not {"-m", "--multirun"} & set(sys.argv):
        _validate_before_hydra(overrides)
    main()
