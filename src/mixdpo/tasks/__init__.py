"""Built-in multi-preference tasks: small, deterministic preference data whose hidden groups disagree.

The word-list tasks are generated in code (no downloads; all titles are invented); the sampled tasks are
built from completions of SmolLM2-135M-Instruct scored by the reward functions of :mod:`mixdpo.rewards`
(shipped with the package; :mod:`mixdpo.tasks.sampled`). All return TRL rows (``prompt`` / ``chosen`` /
``rejected``, conversational by default, ``format="text"`` for plain text) with a hidden ``group`` label
for evaluation, a ``domain`` ("movie"/"book") and, where the task has users, a ``user_id``.

========================  =====================================================  =================  ========
task                      hidden groups (share of pairs)                         gate               ceiling
========================  =====================================================  =================  ========
``reviews-users``         fans prefer praise (2/3), critics criticism (1/3)      user (MoE-DPO)     2/3
``reviews-domains``       movie prompts: concise (1/2); book prompts: detailed   prompt (MoE-DPO)   1 (1/2)
``reviews-mixed``         axes positive (.4), concise (.3), formal (.3)          global (Mix-DPO)   2/3
``multi-reward``          sampled; axes sentiment, readability, length           global (Mix-DPO)   < 1
``cross-domain``          sampled; movies: shortest, books: longest (1/2 each)   prompt (MoE-DPO)   1
``personas``              sampled; fans: most positive (2/3), critics (1/3)      user (MoE-DPO)     2/3
========================  =====================================================  =================  ========

*Ceiling*: the best preference accuracy any single policy can reach on the evaluation split, counted by
:func:`single_policy_ceiling` (in brackets: for a policy that ignores the prompt). Each task module's
docstring says what the groups prefer and why.

>>> from mixdpo.tasks import build_task, list_tasks, write_task
>>> task = build_task("reviews-users", seed=0)            # TaskData: train / eval / new_users rows
>>> round(task.ceiling("eval").accuracy, 3), task.ceiling("eval").per_group
(0.667, {'critics': 0.0, 'fans': 1.0})
>>> write_task("reviews-users", "data/reviews-users")      # doctest: +SKIP
"""

from __future__ import annotations

from mixdpo.tasks.base import FORMATS, Pair, TaskData, to_row
from mixdpo.tasks.ceiling import Ceiling, group_shares, single_policy_ceiling
from mixdpo.tasks.registry import TASKS, TaskSpec, build_task, list_tasks, task_sizes, write_task

__all__ = [
    "FORMATS",
    "TASKS",
    "Ceiling",
    "Pair",
    "TaskData",
    "TaskSpec",
    "build_task",
    "group_shares",
    "list_tasks",
    "single_policy_ceiling",
    "task_sizes",
    "to_row",
    "write_task",
]
