"""Reward functions: hand-checked values, ranges, directions, batching and determinism."""

from __future__ import annotations

import pytest
import torch

from mixdpo.errors import ConfigError
from mixdpo.rewards import REWARDS, flesch_reading_ease, get_reward, mean_token_logprob, score_texts
from mixdpo.rewards.readability import syllables


def test_flesch_by_hand():
    # 6 one-syllable words, 1 sentence: 206.835 - 1.015 * 6 - 84.6 * 6 / 6
    assert flesch_reading_ease("The cat sat on the mat.") == pytest.approx(206.835 - 1.015 * 6 - 84.6)
    assert syllables("readability") == 5
    assert syllables("considerable") == 5
    assert syllables("is") == 1
    # 3 words, 11 syllables, 1 sentence
    assert flesch_reading_ease("Readability is considerable.") == pytest.approx(
        206.835 - 1.015 * 3 - 84.6 * 11 / 3
    )
    # two sentences halve the words-per-sentence term
    two = flesch_reading_ease("The cat sat. The dog ran.")
    assert two == pytest.approx(206.835 - 1.015 * 3 - 84.6)
    assert flesch_reading_ease("") == 0.0
    assert syllables("zorblatted") >= 2  # not in the dictionary: vowel groups


def test_shape_rewards_by_hand():
    assert REWARDS["distinct_2"](["a b a b", "a b c d", "one"]) == pytest.approx([2 / 3, 1.0, 1.0])
    assert REWARDS["length"](["Hello, world!", ""]) == [2.0, 0.0]
    twenty = " ".join(["word"] * 20)
    assert REWARDS["brevity"]([twenty, ""]) == pytest.approx([0.5, 1.0])


def test_spelling_by_hand():
    assert REWARDS["spelling"](["the cat sat", "teh cat", "", "qwzx vbnm"]) == pytest.approx(
        [1.0, 0.5, 1.0, 0.0]
    )


def test_sentiment_direction_and_range():
    pos, neg, flat = REWARDS["sentiment"](
        ["I love this wonderful film.", "A terrible, awful movie.", "It is a movie."]
    )
    assert pos > 0.5
    assert neg < -0.5
    assert flat == 0.0
    # negation is understood
    assert REWARDS["sentiment"](["not good at all"])[0] < 0


def test_non_toxicity_direction():
    clean, rude = REWARDS["non_toxicity"](["Have a lovely day.", "shut up you stupid idiot"])
    assert clean > 0.8
    assert rude < 0.3


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_is_batched_deterministic_and_in_range(name):
    reward = REWARDS[name]
    texts = ["A warm, funny and clever film.", "", "bad bad bad bad", "Teh plot was stupid!!"]
    first = reward(texts)
    assert len(first) == len(texts)
    assert first == reward(texts)
    assert [reward([t])[0] for t in texts] == pytest.approx(first)  # batching changes nothing
    assert all(reward.low <= v <= reward.high for v in first)
    with pytest.raises(TypeError):
        reward("a single string")


def test_score_texts_and_unknown_names():
    out = score_texts(["sentiment", "length"], ["good", "bad film"])
    assert set(out) == {"sentiment", "length"}
    assert out["length"] == [1.0, 2.0]
    with pytest.raises(ConfigError, match="unknown reward 'funniness'"):
        get_reward("funniness")


def test_fluency_is_the_mean_token_logprob_by_hand():
    from mixdpo.models import load_model_and_tokenizer

    loaded = load_model_and_tokenizer("random:llama-tiny", seed=0)
    model, tok = loaded.model.eval(), loaded.tokenizer
    texts = ["hello there", "a"]
    got = mean_token_logprob(model, tok, texts)
    for text, value in zip(texts, got, strict=True):
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None]).mean().item()
        assert value == pytest.approx(logp, abs=1e-4)
    assert mean_token_logprob(model, tok, texts, batch_size=1) == pytest.approx(got, abs=1e-5)
