"""Reference log-probabilities: computed once per dataset without gradients, cached on disk.

The reference term of s_k(x, y) = log pi_k(y|x) - log pi_ref_k(y|x) (DESIGN.md section 2) never changes
during training, so it is scored once per example and looked up by ``example_index`` afterwards: a second
epoch, or a second run over the same data, does no reference forward pass.

    cache = ReferenceCache()                                   # $MIXDPO_CACHE_DIR or ~/.cache/mixdpo
    key = ReferenceKey(dataset.fingerprint, "random:llama-tiny@seed=0", {"max_length": 128})
    table = cache.get_or_compute(key, sequence_score_fn(ref_model), loader, len(dataset))
    batch = attach_reference(batch, table)                     # adds ref_chosen_logps / ref_rejected_logps
"""

from mixdpo.reference.cache import (
    CACHE_DIR_ENV,
    FORMAT_VERSION,
    ReferenceCache,
    ReferenceKey,
    default_cache_dir,
)
from mixdpo.reference.table import (
    ReferenceStats,
    ReferenceTable,
    ScoreFn,
    attach_reference,
    compute_reference_logps,
    sequence_score_fn,
)

__all__ = [
    "CACHE_DIR_ENV",
    "FORMAT_VERSION",
    "ReferenceCache",
    "ReferenceKey",
    "ReferenceStats",
    "ReferenceTable",
    "ScoreFn",
    "attach_reference",
    "compute_reference_logps",
    "default_cache_dir",
    "sequence_score_fn",
]
