from hypothesis import given, strategies as st

from rlhf_lab import tokenizer


@given(st.text())
def test_round_trip_of_any_text(text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_korean_and_emoji_keep_their_exact_bytes():
    text = "보상 모델과 PPO 학습 🙂"
    tokens = tokenizer.encode(text)
    assert tokens == list(text.encode("utf-8"))   # no clamping (the textbook clamped to 252)
    assert max(tokens) >= 240
    assert tokenizer.decode(tokens) == text


def test_every_byte_value_is_its_own_token():
    assert tokenizer.decode(list(range(256))).encode("utf-8", "replace")  # decodes without error
    assert len(set(range(256)) | {tokenizer.BOS, tokenizer.EOS, tokenizer.PAD, tokenizer.SEP}) == tokenizer.VOCAB_SIZE


def test_pair_template_marks_response_start():
    tokens, start = tokenizer.encode_pair("hi", "yo")
    assert tokens == [tokenizer.BOS, ord("h"), ord("i"), tokenizer.SEP, ord("y"), ord("o"), tokenizer.EOS]
    assert start == 4
    assert tokenizer.decode(tokens) == "hiyo"


def test_left_pad_aligns_row_ends():
    tokens, mask = tokenizer.left_pad([[1, 2, 3], [4]])
    assert tokens.tolist() == [[1, 2, 3], [tokenizer.PAD, tokenizer.PAD, 4]]
    assert mask.tolist() == [[True, True, True], [False, False, True]]
