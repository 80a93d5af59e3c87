"""`python -m laser_rl.cli`: the `laser` command, for `accelerate launch -m laser_rl.cli train ...`."""

from laser_rl.cli import main

main()
