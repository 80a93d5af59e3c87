"""laser-rl: LaSeR (last-token self-rewarding) on top of TRL.

The public names are imported lazily: grading workers import this package, and should not pay
for torch and TRL.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "LaserConfig": "laser_rl.config",
    "LaserGRPOTrainer": "laser_rl.trainer",
    "math_reward": "laser_rl.grading",
    "MathGrader": "laser_rl.grading",
    "choice_reward": "laser_rl.verifiers",
    "exact_reward": "laser_rl.verifiers",
    "resolve_verifier": "laser_rl.verifiers",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'laser_rl' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
