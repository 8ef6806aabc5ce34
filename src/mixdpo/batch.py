"""The batch contract between the data pipeline (which builds batches) and the models (which read them).

A preference batch of B pairs is a dict of tensors. Chosen and rejected sequences are stacked along the
batch dimension so that one forward pass scores both: rows 0..B-1 are prompt + chosen completion, rows
B..2B-1 are prompt + rejected completion, in the same pair order.

Required keys (N = 2B sequences, T = padded length):

- ``input_ids``        LongTensor [N, T]
- ``attention_mask``   LongTensor [N, T], 1 on real tokens (prompt and completion), 0 on padding
- ``completion_mask``  LongTensor [N, T], 1 on the completion tokens whose log-probability counts
                       (token t is predicted from position t - 1; prompt and padding are 0)

Optional keys:

- ``prompt_input_ids``, ``prompt_attention_mask``  [B, Tp]: the prompt alone, for prompt-gate features
- ``user_ids``         LongTensor [B]: row of the user-embedding table, ``UNKNOWN_USER`` (-1) if unseen
- ``user_features``    FloatTensor [B, F]: numeric user features
- ``ref_chosen_logps``, ``ref_rejected_logps``  [B] or [B, K]: precomputed reference log-probs
- ``prompt_features``  FloatTensor [B, H]: precomputed prompt-gate features
- ``policy_chosen_logps``, ``policy_rejected_logps``  [B, K]: precomputed log-probs of *frozen* experts
                       (gate-only training); the policy then runs no expert forward pass
- ``example_index``    LongTensor [B]: row of each pair in its dataset (for caches)
- ``group``            LongTensor [B]: hidden group label, only for evaluation (never used in training)

Padding side may be right or left; consumers must not assume either (position ids come from the
attention mask).
"""

from __future__ import annotations

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
COMPLETION_MASK = "completion_mask"
PROMPT_INPUT_IDS = "prompt_input_ids"
PROMPT_ATTENTION_MASK = "prompt_attention_mask"
USER_IDS = "user_ids"
USER_FEATURES = "user_features"
REF_CHOSEN_LOGPS = "ref_chosen_logps"
REF_REJECTED_LOGPS = "ref_rejected_logps"
PROMPT_FEATURES = "prompt_features"
POLICY_CHOSEN_LOGPS = "policy_chosen_logps"
POLICY_REJECTED_LOGPS = "policy_rejected_logps"
EXAMPLE_INDEX = "example_index"
GROUP = "group"

UNKNOWN_USER = -1
