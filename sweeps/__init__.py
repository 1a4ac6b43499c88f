"""The experiment side: a grid of `main.py` jobs (`grid`), their manifest and states (`manifest`), the launchers that
run them (`launchers`, one module each) and the tables of their results (`report`). `sweep.py` is the command line.
Nothing here imports JAX: jobs are built, launched and tracked from a login node.
"""


class SweepError(Exception):
    """Bad input or an unsafe sweep folder; the message is one line naming the problem and the remedy."""
