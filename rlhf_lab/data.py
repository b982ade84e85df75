"""Loading SFT and preference data from JSONL (plain or .gz), with errors a person can act on.

Accepted rows:
  SFT          {"prompt", "response"} | {"prompt", "completion"} | {"question", "answer"}
               | any preference row below (its chosen answer is the response)
  prompts      {"prompt", ...}                          (PPO's prompts; other keys are ignored)
               | any preference row below (its prompt)
  preferences  {"prompt", "chosen", "rejected"}        (the common form)
               {"prompt", "preferred", "rejected"}     (the textbook's)
               {"chosen", "rejected"}                  full texts sharing a prompt prefix
                                                       (Anthropic HH-RLHF, Bai et al. 2022)
Bad input (malformed JSON, missing keys, empty strings, invalid UTF-8, a row longer
than the model's context) raises DataError naming the file and line. With
on_invalid="skip" such rows are skipped, counted and reported instead; with
overflow="truncate" an over-long prompt loses its oldest bytes (the recent turns
of a dialogue matter most), never silently.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rlhf_lab.run import ConfigError, check_choice, check_unused, flag, status
from rlhf_lab.tokenizer import Tokenizer

HH_ASSISTANT = "\n\nAssistant:"
MIN_PROMPT_TOKENS = 16  # truncation keeps at least this much of the prompt
ANSWER_ROOM = 32        # a PPO prompt must leave the context room for an answer of this many bytes
ON_INVALID = ("error", "skip")
OVERFLOW = ("error", "skip", "truncate")


class DataError(ValueError):
    """A bad row: the message starts with `file:line:` like a compiler error (line 0: the
    whole file, `file:`)."""

    def __init__(self, path: Path | str, line: int, message: str, kind: str | None = None):
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.reason = str(path), line, message
        # what a skip report counts it under: the message without its detail, which follows a colon or
        # stands in parentheses ("expected a JSON object, got array (JSONL: one object per line)")
        self.kind = kind or re.split(r": | \(", message, maxsplit=1)[0]


@dataclass
class SFTExample:
    prompt: str
    response: str
    heldout_key: float = field(default=0.0, compare=False, repr=False)   # heldout_key(prompt), set by load


@dataclass
class Prompt:
    prompt: str
    heldout_key: float = field(default=0.0, compare=False, repr=False)


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    meta: dict = field(default_factory=dict)   # extra keys of the row (style, gold, subset, ...)
    heldout_key: float = field(default=0.0, compare=False, repr=False)
    line: int = field(default=0, compare=False, repr=False)   # its line in the file it came from (0: none)


@dataclass
class LoadReport:
    path: str
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason → count
    truncated: int = 0

    def line(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        return f"{self.path}: {self.loaded} rows loaded, skipped: {skipped}, prompts truncated: {self.truncated}"

    def as_metrics(self) -> dict:
        """What metrics.json keeps of a file's loading, so no skipped row goes unrecorded."""
        return {"rows_loaded": self.loaded, "rows_skipped": dict(self.skipped), "prompts_truncated": self.truncated}


def read_lines(path: Path | str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each non-blank line of a .jsonl or .jsonl.gz file, without its
    line ending (which JSON would parse as part of the row, so a row cut short would be reported at
    column 1 of the next line); a UTF-8 byte-order mark, which some editors write at the start, is dropped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a directory; expected a .jsonl or .jsonl.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                raw = (raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw).rstrip(b"\r\n")
                if raw.strip():
                    yield number, raw
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:   # a .gz name on other bytes, or a cut-off file
        # gzip reads ahead and checks its trailer at the end: the damage is somewhere in the file
        where = f" (the rows up to line {number} read)" if number else ""
        raise DataError(path, 0, f"not a readable gzip file{where}: {e}") from None


def parse_json_line(raw: bytes, path, line: int) -> dict:
    """One JSON object from one line; DataError on bad UTF-8, bad JSON or a non-object."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(path, line, f"invalid UTF-8 at byte {e.start}", kind="invalid UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(path, line, f"malformed JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(row, dict):
        raise DataError(path, line, f"expected a JSON object, got {json_type(row)} (JSONL: one object per line)")
    return row


def json_type(value) -> str:
    """A parsed value's type as JSON names it ("null", not Python's "NoneType")."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def split_shared_prefix(chosen: str, rejected: str) -> tuple[str, str, str]:
    """HH-style full texts → (prompt, chosen, rejected).

    The prompt is the longest common prefix, cut after its last "\\n\\nAssistant:"
    when there is one (so both answers keep their first word whole).
    """
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, n)
    n = cut + len(HH_ASSISTANT) if cut >= 0 else n
    return chosen[:n], chosen[n:], rejected[n:]


def _text(row: dict, key: str, path, line: int) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise DataError(path, line, f'"{key}" must be a string, got {json_type(value)}')
    if not value.strip():
        raise DataError(path, line, f'"{key}" is empty')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:   # JSON's "\ud800" escapes decode to half a UTF-16 pair, which is no text
        raise DataError(path, line, f'"{key}" holds a lone UTF-16 surrogate escape, which is not text',
                        kind="lone surrogate") from None
    return value


def _form(row: dict, forms: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The first of `forms` whose keys the row has all of, or None."""
    return next((keys for keys in forms if all(k in row for k in keys)), None)


def _pick(row: dict, forms: list[tuple[str, ...]], path, line: int) -> tuple[str, ...]:
    keys = _form(row, forms)
    if keys is not None:
        return keys
    wanted = " or ".join("/".join(k) for k in forms)
    raise DataError(path, line, f"missing keys: expected {wanted}, found {sorted(row)}")


SFT_FORMS = [("prompt", "response"), ("prompt", "completion"), ("question", "answer")]


def parse_sft(row: dict, path, line: int) -> SFTExample:
    """An SFT row, or a preference row whose chosen answer is the demonstration (SFT on the
    preferred answers, as Rafailov et al. 2023 do for Anthropic HH); its rejected answer plays
    no part, so it may be empty or the chosen one."""
    if _form(row, SFT_FORMS) is None and ("chosen" in row or "preferred" in row):
        _one_preferred_key(row, path, line)
        if "prompt" in row:
            return SFTExample(*(_text(row, k, path, line) for k in
                                _pick(row, [("prompt", "chosen"), ("prompt", "preferred")], path, line)))
        keys = _pick(row, [("chosen", "rejected")], path, line)
        prompt, chosen, _ = shared_prompt(*(_text(row, k, path, line) for k in keys), path, line)
        if not chosen.strip():
            raise DataError(path, line, "chosen is empty after removing the shared prompt")
        return SFTExample(prompt, chosen)
    keys = _pick(row, SFT_FORMS, path, line)
    return SFTExample(*(_text(row, k, path, line) for k in keys))


def parse_prompt(row: dict, path, line: int) -> Prompt:
    """A prompt row, or any preference row's prompt (an HH full-text pair's: the prefix both texts
    share, whether or not its answers make a pair: one may be empty, or both the same)."""
    if "prompt" not in row and ("chosen" in row or "preferred" in row):
        keys = _pick(row, [("chosen", "rejected")], path, line)
        return Prompt(shared_prompt(*(_text(row, k, path, line) for k in keys), path, line)[0])
    return Prompt(*(_text(row, k, path, line) for k in _pick(row, [("prompt",)], path, line)))


def shared_prompt(chosen: str, rejected: str, path, line: int) -> tuple[str, str, str]:
    """HH full texts → (prompt, chosen, rejected) by split_shared_prefix; DataError where they
    share no Assistant turn to cut the prompt after."""
    if chosen != rejected and HH_ASSISTANT not in os.path.commonprefix([chosen, rejected]):
        raise DataError(path, line, 'chosen and rejected share no "\\n\\nAssistant:" turn, so no prompt '
                        "can be cut from them (expected Anthropic HH full texts)", kind="no shared Assistant turn")
    return split_shared_prefix(chosen, rejected)


def _one_preferred_key(row: dict, path, line: int) -> None:
    if "chosen" in row and "preferred" in row:
        raise DataError(path, line, 'both "chosen" and "preferred": which answer is the preferred one is ambiguous; '
                        "keep one of the two keys")


def parse_preference(row: dict, path, line: int) -> PreferencePair:
    _one_preferred_key(row, path, line)
    keys = _pick(row, [("prompt", "chosen", "rejected"), ("prompt", "preferred", "rejected"),
                       ("chosen", "rejected")], path, line)
    texts = [_text(row, k, path, line) for k in keys]
    if len(keys) == 2:
        texts = list(shared_prompt(*texts, path, line))
        for name, text in zip(("chosen", "rejected"), texts[1:]):
            if not text.strip():
                raise DataError(path, line, f"{name} is empty after removing the shared prompt")
    if texts[-2] == texts[-1]:
        raise DataError(path, line, "chosen and rejected are the same text: no preference to learn")
    meta = {k: v for k, v in row.items() if k not in keys}
    group = meta.get("group")
    if group is not None and (isinstance(group, bool) or not isinstance(group, (str, int))):
        got = f"the number {group}" if isinstance(group, float) else json_type(group)
        raise DataError(path, line, f'"group" must be a string or an integer, got {got} (pairs that share one are '
                        "one prompt's ranked answers)", kind='"group" not a string or an integer')
    return PreferencePair(*texts, meta=meta, line=line)


def count_with_value(pairs: list[PreferencePair], key: str, path) -> int:
    """How many pairs' rows give `key` a value (null is none), for figures per value of it:
    DataError at the first row whose value is an array or object, which names no group."""
    for pair in pairs:
        if isinstance(pair.meta.get(key), (list, dict)):
            raise DataError(path, pair.line, f'"{key}" must be a string, a number or a boolean to group rows by '
                            f"(--per), got {json_type(pair.meta[key])}")
    return sum(pair.meta.get(key) is not None for pair in pairs)


def fit_prompt(tok: Tokenizer, prompt: str, responses: list[str], context_len: int, overflow: str) -> str | None:
    """The prompt, shortened from the left if allowed, so every response fits; None if impossible."""
    excess = longest_row(tok, prompt, responses) - context_len
    if excess <= 0:
        return prompt
    if overflow != "truncate" or len(tok.encode(prompt)) - excess < MIN_PROMPT_TOKENS:
        return None
    cut = tok.truncate_prompt(prompt, excess)
    return cut if longest_row(tok, cut, responses) <= context_len else None   # a subword tokenizer may merge anew


def longest_row(tok: Tokenizer, prompt: str, responses: list[str]) -> int:
    """Tokens in the longest of the prompt's encoded examples."""
    return max(len(tok.encode_pair(prompt, r)[0]) for r in responses)


def answers_to_fit(row: SFTExample | PreferencePair | Prompt) -> list[str]:
    """What must fit the context after a row's prompt: its answers, or room for a PPO answer."""
    if isinstance(row, SFTExample):
        return [row.response]
    if isinstance(row, PreferencePair):
        return [row.chosen, row.rejected]
    return ["x" * ANSWER_ROOM]


def check_options(on_invalid: str, overflow: str) -> None:
    """The --on-invalid and --overflow values every file-reading stage takes."""
    check_choice("on_invalid", on_invalid, ON_INVALID)
    check_choice("overflow", overflow, OVERFLOW)


def check_read_options(cfg, *file_flags: str) -> None:
    """A stage's --on-invalid and --overflow: valid values, and set only where it reads a file
    (one of file_flags): the world's own examples are all valid and fit."""
    check_options(cfg.on_invalid, cfg.overflow)
    files = ", ".join(flag(name) for name in file_flags)
    check_unused(cfg, ("on_invalid", "overflow"), not any(getattr(cfg, name) for name in file_flags), "say",
                 f"what to do with a file's bad or long rows, and no file ({files}) is given")


def heldout_key(prompt: str) -> float:
    """A row's place in [0, 1) for holding out a share of a file, a hash of its prompt as the
    file gives it: every stage holds out the same prompts of a file (an `rlhf sft` run's eval
    rows are its reward model's validation pairs), all rows of one prompt fall on one side, and
    a larger share holds out a superset of a smaller one."""
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big") / 2 ** 64


def split_heldout(rows: list, share: float, path: str, instead: str = "give --eval-data") -> tuple[list, list]:
    """(kept, held out) rows of a loaded file: those whose heldout_key falls below `share`, and
    at least the rows of the prompt with the lowest key (a small file still gets a held-out set).
    ConfigError when nothing would be left to train on, advising `instead`."""
    cut = max(share, min(r.heldout_key for r in rows))
    held = [r for r in rows if r.heldout_key <= cut]
    kept = [r for r in rows if r.heldout_key > cut]
    if not kept and len({r.heldout_key for r in rows}) == 1:    # no share is small enough
        raise ConfigError(f"{path}: its {len(rows)} usable row(s) all have one prompt, which any held-out set takes "
                          f"whole, leaving nothing to train on; {instead}")
    if not kept:
        raise ConfigError(f"{path}: holding out {share:g} of its {len(rows)} usable row(s) by prompt leaves "
                          f"nothing to train on; {instead} or a smaller --heldout-share")
    return kept, held


def load(path: Path | str, kind: str, tok: Tokenizer, context_len: int, on_invalid: str = "error",
         overflow: str = "error", files: dict[str, dict] | None = None) -> tuple[list, LoadReport]:
    """Load SFT examples (kind="sft"), preference pairs (kind="preference") or PPO prompts (kind="prompt").

    tok and context_len: the model that will read the rows, which must fit its context.
    on_invalid: "error" | "skip"; overflow: "error" | "skip" | "truncate". files: a stage's record
    of its input files (metrics.json's data_files), which gets this one's LoadReport.as_metrics().
    """
    check_options(on_invalid, overflow)
    parse = {"sft": parse_sft, "preference": parse_preference, "prompt": parse_prompt}[kind]
    report, rows = LoadReport(str(path)), []
    for line, raw in read_lines(path):
        try:
            row = parse(parse_json_line(raw, path, line), path, line)
        except DataError as e:
            if on_invalid != "skip":
                raise
            report.skipped[e.kind] += 1
            continue
        row.heldout_key = heldout_key(row.prompt)      # before truncation, which differs between stages
        responses = answers_to_fit(row)
        prompt = fit_prompt(tok, row.prompt, responses, context_len, overflow)
        if prompt is None:
            if overflow == "error":
                longest = longest_row(tok, row.prompt, responses)
                what = f"prompt with room for a {ANSWER_ROOM}-byte answer" if kind == "prompt" else "example"
                raise DataError(path, line, f"{what} is {longest} tokens, longer than the context "
                                f"of {context_len} (--overflow skip drops such rows; --overflow truncate cuts "
                                f"their prompts from the left, and drops a row whose answer leaves its prompt under "
                                f"{MIN_PROMPT_TOKENS} tokens)")
            report.skipped["longer than the context"] += 1
            continue
        report.truncated += prompt != row.prompt
        row.prompt = prompt
        rows.append(row)
    report.loaded = len(rows)
    if files is not None:
        files[str(path)] = report.as_metrics()
    if report.skipped or report.truncated:
        status(report.line())
    if not rows:
        raise DataError(path, 0, "no usable rows")
    return rows, report
