"""The report's figures, drawn by rliable's plotting helpers: interval estimates of the aggregates and the
performance profile with its bands. Files only (matplotlib's Agg backend), written atomically."""

import io
from typing import Any

import numpy as np

from runs import write_atomically
from sweeps.statistics import AGGREGATES


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def save_png(figure: Any, path: str) -> None:
    """The figure as a PNG cropped to its contents (rliable's plots place labels outside the axes), atomically."""
    png = io.BytesIO()
    figure.savefig(png, format='png', dpi=120, bbox_inches='tight')
    write_atomically(path, png.getvalue())


def plot_intervals(points: dict[str, np.ndarray], intervals: dict[str, np.ndarray], labels: dict[str, str], unit: str,
                   path: str) -> None:
    """rliable's interval-estimate plot of the four aggregates, one row per setting."""
    plt = _pyplot()
    from rliable import plot_utils

    names = [labels[setting] for setting in points]
    figure, _ = plot_utils.plot_interval_estimates(
        {labels[s]: v for s, v in points.items()}, {labels[s]: v for s, v in intervals.items()},
        metric_names=list(AGGREGATES), algorithms=names, xlabel=unit, max_ticks=4, subfigure_width=3.6,
        row_height=max(0.45, 1.6 / len(names)), xlabel_y_coordinate=-0.5 if len(names) < 4 else -0.1)
    figure.suptitle('95% stratified-bootstrap intervals (rliable)', y=1.25 if len(names) < 4 else 1.05)
    save_png(figure, path)
    plt.close(figure)


def plot_profile(profiles: dict[str, np.ndarray], bands: dict[str, np.ndarray], taus: np.ndarray,
                 labels: dict[str, str], unit: str, path: str) -> None:
    """rliable's performance-profile plot: the fraction of runs scoring above τ, with its 95% bands."""
    plt = _pyplot()
    from rliable import plot_utils

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    plot_utils.plot_performance_profiles({labels[s]: v for s, v in profiles.items()}, taus,
                                         performance_profile_cis={labels[s]: v for s, v in bands.items()}, ax=axis,
                                         xlabel=f'τ ({unit})', ylabel='fraction of runs with score > τ',
                                         labelsize='medium', ticklabelsize='medium')
    axis.legend(axis.get_lines()[:len(profiles)], [labels[s] for s in profiles], loc='upper right', fontsize='small')
    axis.set_title('performance profile (rliable), seeded 95% bands')
    save_png(figure, path)
    plt.close(figure)
