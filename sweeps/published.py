"""Published numbers for the report's "paper" columns: one table, holding only numbers someone has read in the paper
and checked, each with its source.

It is empty: the result tables of the FQL paper (Park et al., 2025, arXiv:2502.02538; its Table 3 holds the per-task
OGBench results that later work copies) and of the MeanFlowQL paper (arXiv:2511.13035) could not be read
when the report was written (see the project's research notes on published numbers), and no number is filled in from
memory. The column therefore says "not verified" for an agent with a paper (`PAPERS`), "not published" otherwise.
To add a number: one `PUBLISHED` entry with the table it comes from, in the report's unit (success as a fraction,
D4RL score ×100).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Published:
    mean: float  # in the report's unit: success as a fraction in [0, 1]; D4RL normalised score ×100
    std: float | None  # as the paper gives it (None when it gives none)
    source: str  # paper and table, e.g. 'FQL paper (arXiv:2502.02538), Table 3'


# (agent name, environment or task name as the report's rows name it) -> the paper's number.
PUBLISHED: dict[tuple[str, str], Published] = {}

# Agents with a paper of results: for them a row missing from `PUBLISHED` is "not verified" (the paper may report it;
# nobody has checked a number in), for any other agent "not published".
PAPERS: dict[str, str] = {
    'fql': 'Park, Li and Levine (2025), Flow Q-Learning, arXiv:2502.02538',
    'mfql': 'MeanFlowQL (2025), arXiv:2511.13035',
}
NOT_VERIFIED, NOT_PUBLISHED = 'not verified', 'not published'


def paper_cell(agent: str, row: str, decimals: int) -> str:
    """The "paper" column's cell for an agent and a row (an environment or a task)."""
    number = PUBLISHED.get((agent, row))
    if number is None:
        return NOT_VERIFIED if agent in PAPERS else NOT_PUBLISHED
    return f'{number.mean:.{decimals}f}' + ('' if number.std is None else f' ± {number.std:.{decimals}f}')
