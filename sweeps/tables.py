"""The report's tables as a paper's author would paste them: readable agent and setting names, the main table
(environment rows and their average, plus the papers' numbers), the per-task appendix (short task names under
environment headings) and the aggregate table, each rendered as Markdown and as LaTeX (booktabs; the main and
aggregate tables are floats, scaled down to the line width when wider; the appendix is a longtable, which breaks
across pages). Every table names its unit in its first header.
"""

import dataclasses

import numpy as np

from results import Metric, plus_minus
from sweeps.published import paper_cell
from sweeps.statistics import AGGREGATES, Row

# Swept keys printed as the papers' symbols.
KEY_SYMBOLS = {'alpha': 'α', 'discount': 'γ', 'tau': 'τ'}
WIDE_COLUMNS = 6  # an appendix longtable with more columns is set in a smaller font
LATEX_PREAMBLE = '% Needs \\usepackage{booktabs,longtable,graphicx} (graphicx for \\resizebox).\n'

Entry = tuple[str, bool]  # a cell's text and whether it is bold


def agent_label(agent: str) -> str:
    """'mfql' -> 'MeanFlowQL': the agent file's DISPLAY_NAME; an agent without one keeps its registry name."""
    from agents import display_name
    return display_name(agent)


def setting_label(agent: str, overrides: dict[str, str]) -> str:
    """'mfql' with {'alpha': '30'} -> 'MeanFlowQL (α=30)'; values as the sweep was given them."""
    if not overrides:
        return agent_label(agent)
    values = ', '.join(f'{KEY_SYMBOLS.get(key, key)}={value.replace(",", ", ")}' for key, value in overrides.items())
    return f'{agent_label(agent)} ({values})'


@dataclasses.dataclass
class Table:
    header: list[str]
    sections: list[tuple[str | None, list[list[Entry]]]]  # (heading or None, rows); a rule between sections
    caption: str
    label: str  # LaTeX \label


def _entries(row: Row, settings: list[str], decimals: int) -> list[Entry]:
    return [('–', False) if row.cells[setting] is None else
            (plus_minus(*row.cells[setting].mean_std, decimals), setting in row.bold) for setting in settings]


def main_table(rows: list[Row], overall: Row | None, settings: list[str], labels: dict[str, str],
               agents: list[str], metric: Metric, caption: str, label: str) -> Table:
    """Environment rows, then the average over environments, one column per setting and one "paper" column per
    agent."""
    header = [f'environment ({metric.unit})', *(labels[s] for s in settings),
              *(f'{agent_label(agent)} (paper)' for agent in agents)]

    def body(row: Row) -> list[Entry]:
        papers = [(paper_cell(agent, row.environment or row.name, metric.decimals), False) for agent in agents]
        return [(row.label, False), *_entries(row, settings, metric.decimals), *papers]

    sections = [(None, [body(row) for row in rows])] + ([(None, [body(overall)])] if overall is not None else [])
    return Table(header, sections, caption, label)


def appendix_table(rows: list[Row], settings: list[str], labels: dict[str, str], metric: Metric, caption: str,
                   label: str) -> Table:
    """Task rows under their environment's heading; a task that is its own environment (D4RL) has no heading."""
    sections: list[tuple[str | None, list[list[Entry]]]] = []
    for row in rows:
        heading = None if row.label == row.environment else row.environment
        if not sections or sections[-1][0] != heading:
            sections.append((heading, []))
        sections[-1][1].append([(row.label, False), *_entries(row, settings, metric.decimals)])
    return Table([f'task ({metric.unit})', *(labels[s] for s in settings)], sections, caption, label)


def aggregate_table(points: dict[str, np.ndarray], intervals: dict[str, np.ndarray], labels: dict[str, str],
                    metric: Metric, caption: str, label: str) -> Table:
    """One row per setting: each aggregate's point estimate and 95% interval."""
    digits = metric.decimals + 1  # aggregates over many runs resolve one digit more than a cell's mean ± std
    body = [[(labels[setting], False), *((f'{points[setting][i]:.{digits}f} [{intervals[setting][0, i]:.{digits}f}, '
                                          f'{intervals[setting][1, i]:.{digits}f}]', False)
                                         for i in range(len(AGGREGATES)))] for setting in points]
    return Table([f'setting ({metric.unit})', *(f'{name} [95% CI]' for name in AGGREGATES)], [(None, body)],
                 caption, label)


# ------------------------------------------------------------------------------------------------------ Markdown
def markdown_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
            *('| ' + ' | '.join(row) + ' |' for row in rows)]


def to_markdown(table: Table) -> list[str]:
    """The table's lines, a heading row in bold above its section; the caption is the paragraph below it."""
    rows = []
    for heading, body in table.sections:
        if heading is not None:
            rows.append([f'**{heading}**', *([''] * (len(table.header) - 1))])
        rows += [[f'**{text}**' if bold else text for text, bold in row] for row in body]
    return [*markdown_rows(table.header, rows), '', table.caption, '']


# --------------------------------------------------------------------------------------------------------- LaTeX
_LATEX = str.maketrans({'\\': r'\textbackslash{}', '_': r'\_', '%': r'\%', '&': r'\&', '#': r'\#', '$': r'\$',
                        '{': r'\{', '}': r'\}', '±': r'$\pm$', '–': '--', '—': '---', 'τ': r'$\tau$',
                        'α': r'$\alpha$', 'γ': r'$\gamma$', '×': r'$\times$'})


def latex_escape(text: str) -> str:
    """Text for LaTeX: its special characters escaped, ±, ×, α, γ, τ and dashes as LaTeX writes them."""
    return text.translate(_LATEX)


def _latex_line(row: list[Entry]) -> str:
    return ' & '.join(rf'\textbf{{{latex_escape(t)}}}' if bold else latex_escape(t) for t, bold in row) + r' \\'


def _latex_header(header: list[str]) -> str:
    """The header row, each name broken before its parenthesis ('MeanFlowQL' over '(α=10)') to keep columns narrow."""
    cells = []
    for index, text in enumerate(header):
        name, _, rest = text.partition(' (')
        cells.append(latex_escape(text) if not rest else
                     rf'\begin{{tabular}}[b]{{@{{}}{"l" if index == 0 else "c"}@{{}}}}{latex_escape(name)}\\'
                     rf'({latex_escape(rest)}\end{{tabular}}')
    return ' & '.join(cells) + r' \\'


def _latex_body(table: Table) -> list[str]:
    lines = []
    for index, (heading, body) in enumerate(table.sections):
        if index and heading is None:
            lines.append(r'\midrule')
        if heading is not None:
            lines.append(rf'\multicolumn{{{len(table.header)}}}{{l}}{{\textit{{{latex_escape(heading)}}}}} \\')
        lines += [_latex_line(row) for row in body]
    return lines


def to_latex_float(table: Table) -> str:
    """A table float (caption above, booktabs rules), scaled down to the line width if it is wider."""
    tabular = [r'\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%',  # shrink only a table too wide
               r'\begin{tabular}{l' + 'c' * (len(table.header) - 1) + '}', r'\toprule', _latex_header(table.header),
               r'\midrule', *_latex_body(table), r'\bottomrule', r'\end{tabular}}']
    return '\n'.join([r'\begin{table}[t]', r'\centering', r'\small', rf'\caption{{{latex_escape(table.caption)}}}',
                      rf'\label{{{table.label}}}', *tabular, r'\end{table}']) + '\n'


def to_longtable(table: Table) -> str:
    """A longtable (the appendix: one row per task, which may not fit one page), its header repeated on each page."""
    header = [_latex_header(table.header)]
    small = len(table.header) <= WIDE_COLUMNS  # a longtable cannot be scaled: many settings get a smaller font
    lines = [r'\begingroup', r'\small' if small else r'\scriptsize\setlength{\tabcolsep}{3pt}',
             r'\begin{longtable}{l' + 'c' * (len(table.header) - 1) + '}',
             rf'\caption{{{latex_escape(table.caption)}}}\label{{{table.label}}} \\',
             r'\toprule', *header, r'\midrule', r'\endfirsthead', r'\toprule', *header, r'\midrule', r'\endhead',
             r'\bottomrule', r'\endfoot', *_latex_body(table), r'\end{longtable}', r'\endgroup']
    return '\n'.join(lines) + '\n'
