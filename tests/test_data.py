import gzip
import json

import pytest

from rlhf_lab.data import DataError, load, split_shared_prefix
from rlhf_lab.tokenizer import BYTES


def write(path, lines):
    path.write_bytes(b"".join(line if isinstance(line, bytes) else (line + "\n").encode() for line in lines))
    return path


def row(**kw):
    return json.dumps(kw)


def test_three_preference_formats_load_to_the_same_pairs(tmp_path):
    common = write(tmp_path / "a.jsonl", [row(prompt="Q?", chosen="yes", rejected="no")])
    textbook = write(tmp_path / "b.jsonl", [row(prompt="Q?", preferred="yes", rejected="no")])
    hh = write(tmp_path / "c.jsonl", [row(chosen="\n\nHuman: Q?\n\nAssistant: yes",
                                          rejected="\n\nHuman: Q?\n\nAssistant: no")])
    for path in (common, textbook):
        (pair,), _ = load(path, "preference", BYTES, 256)
        assert (pair.prompt, pair.chosen, pair.rejected) == ("Q?", "yes", "no")
    (pair,), _ = load(hh, "preference", BYTES, 256)
    assert (pair.prompt, pair.chosen, pair.rejected) == ("\n\nHuman: Q?\n\nAssistant:", " yes", " no")


def test_shared_prefix_cut_keeps_answers_whole():
    # "yes"/"yeah" share "ye": the cut must fall at the Assistant marker, not mid-word
    prompt, chosen, rejected = split_shared_prefix("H: x\n\nAssistant: yes", "H: x\n\nAssistant: yeah")
    assert (prompt, chosen, rejected) == ("H: x\n\nAssistant:", " yes", " yeah")


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "Q", "chosen": "a"', "malformed JSON"),
    (row(prompt="Q", chosen="a"), "missing keys"),
    (row(prompt="Q", chosen="", rejected="b"), '"chosen" is empty'),
    (row(prompt="Q", chosen=3, rejected="b"), "must be a string, got number"),
    (row(prompt="Q", chosen=None, rejected="b"), '"chosen" must be a string, got null'),
    ('{"prompt": "Q\\ud800", "chosen": "a", "rejected": "b"}', "lone UTF-16 surrogate"),
    (row(prompt="Q", chosen="a", rejected="b", group=[1, 2]), '"group" must be a string or an integer, got array'),
    (row(prompt="Q", chosen="a", rejected="b", group=1.5), '"group" must be a string or an integer, got the number'),
    (row(prompt="Q", chosen="a", preferred="b", rejected="c"), 'both "chosen" and "preferred": which answer is'),
    ('{"prompt": "Q", "chosen": "a", "rejected": "b"', "malformed JSON: Expecting ',' delimiter (column 47)"),
    ("[1, 2]", "expected a JSON object, got array (JSONL: one object per line)"),
    (b'{"prompt": "\xff", "chosen": "a", "rejected": "b"}\n', "invalid UTF-8"),
    (row(prompt="Q" * 300, chosen="a", rejected="b"), "longer than the context"),
    (row(prompt="Q", chosen="same", rejected="same"), "chosen and rejected are the same text"),
    (row(chosen="\n\nHuman: Q\n\nAssistant: ok", rejected="\n\nHuman: Q\n\nAssistant: ok"), "the same text"),
    (row(chosen="Human: Q Assistant: Yes", rejected="Human: Q Assistant: Yeah"), 'no "\\n\\nAssistant:" turn'),
])
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", [row(prompt="ok", chosen="a", rejected="b"), line])
    with pytest.raises(DataError) as err:
        load(path, "preference", BYTES, 256)
    assert str(err.value).startswith(f"{path}:2: ")
    assert message in str(err.value)


def test_a_ppo_prompt_must_leave_room_for_an_answer(tmp_path):
    path = write(tmp_path / "prompts.jsonl", [row(prompt="Q?", id=1), row(prompt="Q" * 240)])
    with pytest.raises(DataError) as err:
        load(path, "prompt", BYTES, 256)
    assert str(err.value).startswith(f"{path}:2: prompt with room for a 32-byte answer is")
    prompts, _ = load(path, "prompt", BYTES, 256, overflow="truncate")
    assert [len(p.prompt) for p in prompts] == [2, 256 - 32 - 3]


def test_skip_counts_and_reports_instead_of_dropping_silently(tmp_path, capsys):
    path = write(tmp_path / "mixed.jsonl", [row(prompt="ok", chosen="a", rejected="b"), "{oops",
                                            row(prompt="Q", response="x"), row(prompt="Q" * 300, chosen="a", rejected="b")])
    pairs, report = load(path, "preference", BYTES, 256, on_invalid="skip", overflow="skip")
    assert len(pairs) == 1
    assert sum(report.skipped.values()) == 3
    assert report.skipped == {"malformed JSON": 1, "missing keys": 1, "longer than the context": 1}
    printed = capsys.readouterr().out
    assert "1 rows loaded" in printed and "1 malformed JSON" in printed


def test_skipped_rows_are_counted_by_kind_not_by_detail(tmp_path):
    path = write(tmp_path / "utf8.jsonl", [row(prompt="ok", chosen="a", rejected="b"),
                                           b'{"prompt": "\xff", "chosen": "a", "rejected": "b"}\n',
                                           b'{"prompt": "Q", "chosen": "ab\xff", "rejected": "b"}\n',
                                           "[1, 2]", "[3]"])
    _, report = load(path, "preference", BYTES, 256, on_invalid="skip")
    assert report.skipped == {"invalid UTF-8": 2, "expected a JSON object, got array": 2}   # not cut at "(JSONL:"


def test_truncate_drops_the_oldest_prompt_bytes(tmp_path):
    path = write(tmp_path / "long.jsonl", [row(prompt="old " * 100 + "recent?", chosen="a", rejected="b")])
    (pair,), report = load(path, "preference", BYTES, 64, overflow="truncate")
    assert pair.prompt.endswith("recent?") and len(pair.prompt.encode()) == 64 - 4
    assert report.truncated == 1


def test_sft_rows_and_gzip(tmp_path):
    path = tmp_path / "sft.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(row(prompt="Q", response="A") + "\n" + row(question="2+2?", answer="4") + "\n")
    examples, _ = load(path, "sft", BYTES, 256)
    assert [(e.prompt, e.response) for e in examples] == [("Q", "A"), ("2+2?", "4")]


def test_sft_on_a_preference_file_trains_on_its_chosen_answers(tmp_path):
    path = write(tmp_path / "prefs.jsonl", [row(prompt="Q?", chosen="yes", rejected="no"),
                                            row(prompt="R?", preferred="sure", rejected="nah"),
                                            row(chosen="\n\nHuman: S?\n\nAssistant: ok",
                                                rejected="\n\nHuman: S?\n\nAssistant: no"),
                                            row(prompt="T?", chosen="same", rejected="same"),   # the rejected
                                            row(prompt="U?", chosen="fine", rejected=""),       # answer plays
                                            row(chosen="\n\nHuman: V?\n\nAssistant: ok",      # no part in SFT
                                                rejected="\n\nHuman: V?\n\nAssistant: ok")])
    examples, _ = load(path, "sft", BYTES, 256)
    assert [(e.prompt, e.response) for e in examples] == [
        ("Q?", "yes"), ("R?", "sure"), ("\n\nHuman: S?\n\nAssistant:", " ok"), ("T?", "same"), ("U?", "fine"),
        ("\n\nHuman: V?\n\nAssistant:", " ok")]
    with pytest.raises(DataError, match="prefs.jsonl:4: chosen and rejected are the same"):   # as pairs they are no row
        load(path, "preference", BYTES, 256)


def test_a_byte_order_mark_is_read_past_and_an_empty_file_is_named_without_a_line(tmp_path):
    marked = write(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + (row(prompt="Q", response="A") + "\n").encode()])
    examples, _ = load(marked, "sft", BYTES, 256)
    assert [(e.prompt, e.response) for e in examples] == [("Q", "A")]
    with pytest.raises(DataError) as error:
        load(write(tmp_path / "empty.jsonl", []), "sft", BYTES, 256)
    assert str(error.value) == f"{tmp_path / 'empty.jsonl'}: no usable rows"


def test_a_full_text_pair_gives_its_prompt_even_where_it_makes_no_pair(tmp_path):
    """HH holds rows whose answer is empty after the shared prompt: no preference pair, a fine prompt."""
    empty = row(chosen="\n\nHuman: U?\n\nAssistant: sure", rejected="\n\nHuman: U?\n\nAssistant: ")
    path = write(tmp_path / "hh.jsonl", [empty])
    assert [p.prompt for p in load(path, "prompt", BYTES, 256)[0]] == ["\n\nHuman: U?\n\nAssistant:"]
    with pytest.raises(DataError, match="rejected is empty after removing the shared prompt"):
        load(path, "preference", BYTES, 256)


def test_ppo_prompts_come_from_any_preference_row_too(tmp_path):
    path = write(tmp_path / "prefs.jsonl", [row(prompt="Q?", id=1), row(prompt="R?", chosen="yes", rejected="no"),
                                            row(prompt="S?", preferred="sure", rejected="nah"),
                                            row(chosen="\n\nHuman: T?\n\nAssistant: ok",
                                                rejected="\n\nHuman: T?\n\nAssistant: no")])
    prompts, _ = load(path, "prompt", BYTES, 256)
    assert [p.prompt for p in prompts] == ["Q?", "R?", "S?", "\n\nHuman: T?\n\nAssistant:"]
