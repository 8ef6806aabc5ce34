"""Gates: map a pair's context (nothing, the prompt, the user, or both) to K expert logits [B, K] or [K]."""

from mixdpo.gating.base import Gate, GateInputs, sparsify_top_k
from mixdpo.gating.combined import PromptUserGate
from mixdpo.gating.factory import GATE_KINDS, PROMPT_GATE_KINDS, build_gate, gate_from_config
from mixdpo.gating.global_gate import GlobalGate
from mixdpo.gating.prompt_gate import PromptGate
from mixdpo.gating.user_gate import UserGate

__all__ = [
    "GATE_KINDS",
    "PROMPT_GATE_KINDS",
    "Gate",
    "GateInputs",
    "GlobalGate",
    "PromptGate",
    "PromptUserGate",
    "UserGate",
    "build_gate",
    "gate_from_config",
    "sparsify_top_k",
]
