"""Confidence intervals shared by the benchmark reports (the reproduction study and the temperature diagnostic).

These are analytic intervals for a handful of seeds and pooled evaluation episodes: Wilson for a success
probability, Student t for a mean over seeds, Welch for a difference of two such means. The aggregate statistics
across many tasks (IQM and friends with stratified-bootstrap intervals) come from rliable, in `report.py`.
"""

import numpy as np
from scipy import stats


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z = 1.96) of a success probability from `successes` of `trials`
    independent episodes. Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0
    successes, which is what the comparison with a never-succeeding random policy needs."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}')
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half_width = z / (1 + z * z / trials) * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, float(centre - half_width)), min(1.0, float(centre + half_width))


def seed_t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean over seeds, mean ± t_(S−1) · sd / √S with the sample sd (ddof 1).

    Unlike `wilson_interval` it counts the seed-to-seed variation, not only the episode noise; it assumes the seed
    scores are roughly normal, which 3 seeds cannot check, and with 2 degrees of freedom it is wide (t = 4.30)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f'a seed-level interval needs at least 2 seeds, got {values.size}')
    half_width = stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half_width), float(values.mean() + half_width)


def welch_interval(first: list[float], second: list[float], level: float = 0.95) -> tuple[float, float]:
    """Interval of mean(first) − mean(second) over independent seeds (Welch: unequal variances, Welch–Satterthwaite
    degrees of freedom). Zero spread in both groups gives the point difference."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if min(first.size, second.size) < 2:
        raise ValueError(f'a seed-level interval needs at least 2 seeds per group, got {first.size} and {second.size}')
    difference = first.mean() - second.mean()
    variances = first.var(ddof=1) / first.size, second.var(ddof=1) / second.size
    if sum(variances) == 0:
        return float(difference), float(difference)
    dof = sum(variances) ** 2 / (variances[0] ** 2 / (first.size - 1) + variances[1] ** 2 / (second.size - 1))
    half_width = stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(sum(variances))
    return float(difference - half_width), float(difference + half_width)


def newcombe_interval(first: tuple[int, int], second: tuple[int, int], z: float = 1.96) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) of p1 − p2 from (successes, trials) of two independent
    groups of episodes, built from the two Wilson intervals; 95% for z = 1.96. It stays inside [−1, 1] and behaves at
    rates near 0 or 1, where the normal approximation of a difference does not."""
    (s1, n1), (s2, n2) = first, second
    p1, p2 = s1 / n1, s2 / n2
    low1, high1 = wilson_interval(s1, n1, z)
    low2, high2 = wilson_interval(s2, n2, z)
    difference = p1 - p2
    below = np.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2)
    above = np.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2)
    return float(difference - below), float(difference + above)
