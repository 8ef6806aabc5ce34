"""sequence_logps through peft wrappers, and the full-logits fallback for models that transform logits."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, get_peft_model
from transformers import Gemma2Config, Gemma2ForCausalLM

from logprobs.lp_testlib import VOCAB, make_batch, random_pairs, tiny_llama, token_by_token
from mixdpo.logprobs import check_hidden_path, hidden_path_unsupported_reason, sequence_logps

PAIRS = random_pairs(4, seed=5)

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def test_lora_peft_model_takes_the_hidden_path_with_its_adapters():
    base = tiny_llama(1)
    # init_lora_weights=False: B != 0, so the adapters change the output and the check is meaningful.
    model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    assert hidden_path_unsupported_reason(model) is None
    ids, att, comp = make_batch(PAIRS, side="left")
    expected = token_by_token(model, PAIRS).float()
    with model.disable_adapter():
        assert not torch.allclose(token_by_token(model, PAIRS).float(), expected, atol=1e-3)
    logps = sequence_logps(model, ids, att, comp)
    torch.testing.assert_close(logps.detach(), expected, atol=1e-5, rtol=1e-5)
    logps.sum().backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad
    assert all("lora_" in name for name in with_grad)


def test_prompt_tuning_falls_back_to_the_peft_forward():
    model = get_peft_model(tiny_llama(2), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    assert "prompt learning" in hidden_path_unsupported_reason(model)
    ids, att, comp = make_batch(PAIRS, side="right", extra_pad=1)
    with torch.no_grad():
        got = sequence_logps(model, ids, att, comp)
    torch.testing.assert_close(got, token_by_token(model, PAIRS).float(), atol=1e-5, rtol=1e-5)


def test_softcapped_logits_use_the_full_path_and_stay_exact():
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        final_logit_softcapping=0.5,  # strong capping so the two paths visibly differ
    )
    model = Gemma2ForCausalLM(config).eval()
    assert hidden_path_unsupported_reason(model) is not None
    ids, att, comp = make_batch(PAIRS, side="left")
    with torch.no_grad():
        got = sequence_logps(model, ids, att, comp)
    torch.testing.assert_close(got, token_by_token(model, PAIRS).float(), atol=1e-5, rtol=1e-5)
    with pytest.raises(AssertionError, match="hidden path differs"):
        check_hidden_path(model, ids, att, comp)


def test_distributed_wrapper_uses_the_full_path(monkeypatch):
    model = tiny_llama()

    class DeepSpeedEngine(torch.nn.Module):  # stands in for deepspeed's engine, matched by name
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kwargs):
            return self.module(**kwargs)

    engine = DeepSpeedEngine(model)
    assert "DeepSpeedEngine" in hidden_path_unsupported_reason(engine)
    ids, att, comp = make_batch(PAIRS, side="left")
    with torch.no_grad():
        got = sequence_logps(engine, ids, att, comp)  # position ids still reach the inner model
    torch.testing.assert_close(got, token_by_token(model, PAIRS).float(), atol=1e-5, rtol=1e-5)
