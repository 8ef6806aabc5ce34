"""Formats: implicit prompt extraction and chat rendering with TRL's semantics, and the optional columns.

The expected values of the TRL-parity tests are the outputs of ``trl.data_utils.extract_prompt`` and
``maybe_apply_chat_template`` (trl 1.16) on the same inputs, written out so the tests need not import trl.
"""

from __future__ import annotations

import pytest
from data_helpers import make_byte_tokenizer
from hypothesis import given
from hypothesis import strategies as st

from mixdpo.data import ColumnSpec, RawRow, extract_prompt, render_chat, to_record
from mixdpo.data.formats import common_prefix_length
from mixdpo.errors import DataError


def _m(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def test_extract_prompt_text_keeps_the_space_with_the_completions():
    assert extract_prompt("The sky is blue.", "The sky is green.") == ("The sky is", " blue.", " green.")
    assert extract_prompt("Q: 2+2=4", "Q: 2+2=5") == ("Q: 2+2=", "4", "5")


def test_extract_prompt_chat_takes_whole_messages():
    user = _m("user", "What color is the sky?")
    chosen, rejected = [user, _m("assistant", "It is blue.")], [user, _m("assistant", "It is green.")]
    assert extract_prompt(chosen, rejected) == ([user], [chosen[1]], [rejected[1]])
    # Messages that differ only in content after a shared prefix of characters are still whole messages.
    a, b = [_m("user", "Hi"), _m("assistant", "Hello")], [_m("user", "Hi"), _m("assistant", "Help")]
    assert extract_prompt(a, b)[0] == [_m("user", "Hi")]


def test_chat_rendering_uses_the_tokenizers_template(tok):
    prompt = [_m("system", "Be brief."), _m("user", "Sky?")]
    chosen, rejected = [_m("assistant", "Blue.")], [_m("assistant", "Green.")]
    p, c, r = render_chat(prompt, chosen, rejected, tok)
    assert p == tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert p + c == tok.apply_chat_template(prompt + chosen, tokenize=False)
    assert p + r == tok.apply_chat_template(prompt + rejected, tokenize=False)
    # What trl's maybe_apply_chat_template returns for this example and template:
    assert (p, c, r) == (
        "<s><|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nSky?<|im_end|>\n<|im_start|>assistant\n",
        "Blue.<|im_end|>\n",
        "Green.<|im_end|>\n",
    )


def test_prompt_ending_with_assistant_is_continued(tok):
    prompt = [_m("user", "Sky?"), _m("assistant", "It is")]
    p, c, _ = render_chat(prompt, [_m("assistant", " blue.")], [_m("assistant", " red.")], tok)
    assert p == "<s><|im_start|>user\nSky?<|im_end|>\n<|im_start|>assistant\nIt is"
    assert c.startswith("<|im_end|>\n<|im_start|>assistant\n blue.")


def test_generation_prompt_that_differs_from_the_assistant_turn():
    """Like DeepSeek-R1/Gemma templates: the prompt is cut back to what the full renderings share (TRL)."""
    tok = make_byte_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]<think>{% endif %}"
    )
    p, c, r = render_chat([_m("user", "Hi")], [_m("assistant", "Yo")], [_m("assistant", "No")], tok)
    assert (p, c, r) == ("[user]Hi[assistant]", "Yo", "No")


def test_chat_errors_name_the_row():
    no_template = make_byte_tokenizer()
    no_template.chat_template = None
    row = RawRow(
        {"prompt": [_m("user", "Hi")], "chosen": [_m("assistant", "a")], "rejected": [_m("assistant", "b")]},
        "f.jsonl",
        4,
    )
    with pytest.raises(DataError, match=r"file f.jsonl, row 4, field 'chosen': .*has no chat_template"):
        to_record(row, tokenizer=no_template)
    strict = make_byte_tokenizer()
    strict.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(DataError, match=r"row 4, field 'chosen': .*cannot render.*roles must alternate"):
        to_record(row, tokenizer=strict)


def test_text_prompt_next_to_conversations_is_ignored_like_trl(tok):
    user = _m("user", "Sky?")
    row = RawRow(
        {
            "prompt": "Sky?",
            "chosen": [user, _m("assistant", "Blue.")],
            "rejected": [user, _m("assistant", "Red.")],
        },
        None,
        1,
    )
    record = to_record(row, tokenizer=tok)
    assert record.prompt.endswith("<|im_start|>user\nSky?<|im_end|>\n<|im_start|>assistant\n")
    assert record.chosen == "Blue.<|im_end|>\n"
    assert record.is_chat


def test_optional_columns():
    data = {
        "prompt": "Q",
        "chosen": " a",
        "rejected": " b",
        "user_id": 7,
        "group": 2,
        "age": "31",
        "score": 0.5,
    }
    record = to_record(RawRow(data, "x.csv", 2), ColumnSpec(user_feature_columns=["age", "score"]))
    assert (record.user_id, record.group, record.user_features) == ("7", "2", (31.0, 0.5))
    assert (record.path, record.row, record.is_chat) == ("x.csv", 2, False)
    listed = to_record(
        RawRow({"prompt": "Q", "chosen": " a", "rejected": " b", "user_features": "[1, 2.5]"}, None, 1)
    )
    assert listed.user_features == (1.0, 2.5)
    assert listed.user_id is None
    assert listed.group is None


@given(st.text(alphabet="ab ", max_size=12), st.text(alphabet="ab ", max_size=12))
def test_extract_prompt_splits_at_the_longest_common_prefix(chosen, rejected):
    n = next(
        (i for i, (x, y) in enumerate(zip(chosen, rejected, strict=False)) if x != y),
        min(len(chosen), len(rejected)),
    )
    assert common_prefix_length(chosen, rejected) == n
    prompt, chosen_rest, rejected_rest = extract_prompt(chosen, rejected)
    assert prompt + chosen_rest == chosen
    assert prompt + rejected_rest == rejected
    assert len(prompt) in (n, n - 1)  # one space moves to the completions
