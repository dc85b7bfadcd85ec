"""BenchMARL's hydra entry point, with mechgym's tasks and score.

Run as BenchMARL's own ``benchmarl/run.py``, with a mechgym task::

    python -m mechgym.integrations.benchmarl.run algorithm=mappo task=mechgym/best_belief_v0 \\
        experiment.loggers=[csv] experiment.max_n_frames=60000

BenchMARL's configs (``algorithm``, ``model``, ``experiment``) come from its package; the
``task/mechgym`` group comes from hydra's config store (:func:`mechgym.integrations.benchmarl.
register`). Experiments on mechgym tasks get the :class:`MechgymScore` callback.
"""

from __future__ import annotations

import sys
import warnings

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mechgym.envs.engine.errors import MechgymError

from . import ENV_NAME, MechgymScore, register

register()


@hydra.main(version_base=None, config_path="pkg://benchmarl.conf", config_name="config")
def hydra_experiment(cfg: DictConfig) -> None:
    """Load the experiment from the hydra config and run it (as ``benchmarl/run.py``)."""
    from benchmarl.hydra_config import load_experiment_from_hydra

    from mechgym.training.algos import configure_torch

    choices = HydraConfig.get().runtime.choices
    task_name = choices.task
    print(f"\nAlgorithm: {choices.algorithm}, Task: {task_name}")
    print("\nLoaded config:\n")
    print(OmegaConf.to_yaml(cfg))
    configure_torch()
    callbacks = [MechgymScore()] if task_name.startswith(f"{ENV_NAME}/") else []
    with warnings.catch_warnings():
        # mechgym's tasks are checked by their own TaskConfig, which BenchMARL cannot import
        warnings.filterwarnings("ignore", message="TaskConfig python dataclass not found")
        try:
            experiment = load_experiment_from_hydra(cfg, task_name=task_name, callbacks=callbacks)
        except MechgymError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
    experiment.run()
    if callbacks and callbacks[0].latest is not None:
        s = callbacks[0].latest
        print(
            f"mechgym score on {s['task']}: normalised {s['normalized']:.3f}, "
            f"focal return {s['focal_return']:.3f} (random {s['random']:.3f}, "
            f"predicted {s['predicted']:.3f}); written to {experiment.folder_name}"
        )


if __name__ == "__main__":
    hydra_experiment()
