from hypothesis import given, strategies as st

from rlhf_lab import tokenizer
from rlhf_lab.tokenizer import BYTES


@given(st.text())
def test_round_trip_of_any_text(text):
    assert BYTES.decode(BYTES.encode(text)) == text


def test_korean_and_emoji_keep_their_exact_bytes():
    text = "보상 모델과 PPO 학습 🙂"
    tokens = BYTES.encode(text)
    assert tokens == list(text.encode("utf-8"))   # no clamping (the textbook clamped to 252)
    assert max(tokens) >= 240
    assert BYTES.decode(tokens) == text


def test_every_byte_value_is_its_own_token():
    assert BYTES.decode(list(range(256))).encode("utf-8", "replace")  # decodes without error
    assert len(set(range(256)) | {tokenizer.BOS, tokenizer.EOS, tokenizer.PAD, tokenizer.SEP}) == tokenizer.VOCAB_SIZE


def test_pair_template_marks_response_start():
    tokens, start = BYTES.encode_pair("hi", "yo")
    assert tokens == [tokenizer.BOS, ord("h"), ord("i"), tokenizer.SEP, ord("y"), ord("o"), tokenizer.EOS]
    assert start == 4
    assert BYTES.decode(tokens) == "hiyo"


def test_left_pad_aligns_row_ends():
    tokens, mask = BYTES.left_pad([[1, 2, 3], [4]])
    assert tokens.tolist() == [[1, 2, 3], [tokenizer.PAD, tokenizer.PAD, 4]]
    assert mask.tolist() == [[True, True, True], [False, False, True]]
