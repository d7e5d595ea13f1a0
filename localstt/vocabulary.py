"""The user's words, outside the model: checking a phrase list, reading one from text, and the
replacement rules applied to every transcript's final text.

Rules (`find`, `replace`) run in the order written, each over the whole transcript. `find` matches
whole words, in any case, ignoring the punctuation around them ("open ai" matches "Open AI," and
"OPEN AI."); the replacement is written as given, the punctuation after the last word kept. A rule
that merges words ("open ai" -> "OpenAI") keeps the span of the words it replaced; one that splits a
word ("gonna" -> "going to") shares that span out by characters. A rule never matches inside a word,
nor across two segments.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from localstt.errors import VocabularyError
from localstt.spec import Vocabulary
from localstt.transcript import Segment, Transcript, Word

MAX_PHRASE_CHARS = 100
MAX_PHRASES = 10_000
_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


def check_phrases(phrases: Iterable[str]) -> tuple[str, ...]:
    """The phrases, spaces collapsed; VocabularyError naming the first that is empty, a repeat, or
    too long (what the model's own tokenizer cannot spell, its family checks: `PhraseBooster`)."""
    seen: dict[str, str] = {}
    checked: list[str] = []
    for number, raw in enumerate(phrases, start=1):
        phrase = " ".join(raw.split())
        if not phrase:
            raise VocabularyError(f"Phrase {number} of the vocabulary is empty; remove the empty line.")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise VocabularyError(
                f"The phrase {phrase[:40]!r}... is {len(phrase)} characters long, over {MAX_PHRASE_CHARS}; "
                "boost the words that matter, a few at a time."
            )
        if phrase.casefold() in seen:
            raise VocabularyError(
                f"The phrase {phrase!r} is in the vocabulary twice (also as {seen[phrase.casefold()]!r}); "
                "keep one."
            )
        seen[phrase.casefold()] = phrase
        checked.append(phrase)
    if len(checked) > MAX_PHRASES:
        raise VocabularyError(
            f"The vocabulary has {len(checked)} phrases, over {MAX_PHRASES}; keep the ones that matter."
        )
    return tuple(checked)


def parse_phrases(text: str) -> list[str]:
    """One phrase a line, or separated by commas on one line ("A, B"); blank lines and `#` comments
    are skipped."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) == 1 and "," in lines[0]:
        return [part.strip() for part in lines[0].split(",") if part.strip()]
    return lines


def parse_rules(text: str) -> tuple[tuple[str, str], ...]:
    """Rules as `find => replace`, one a line (blank lines and `#` comments skipped); VocabularyError
    naming a line that is not one."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        find, arrow, replace = line.partition("=>")
        if not arrow or not find.strip() or not replace.strip():
            raise VocabularyError(
                f"Rule line {number} ({line!r}) is not `find => replace`; write e.g. `open ai => OpenAI`."
            )
        rules.append((" ".join(find.split()), " ".join(replace.split())))
    return tuple(rules)


def rules_text(rules: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{find} => {replace}\n" for find, replace in rules)


def apply_rules(
    transcript: Transcript, rules: Sequence[tuple[str, str]]
) -> tuple[Transcript, list[dict[str, object]]]:
    """`transcript` with every rule applied, in order; and the rules that fired, with how often."""
    if not rules:
        return transcript, []
    segments = list(transcript.segments)
    fired: list[dict[str, object]] = []
    for find, replace in rules:
        count = 0
        for index, segment in enumerate(segments):
            segments[index], hits = _apply(segment, find, replace)
            count += hits
        if count:
            fired.append({"find": find, "replace": replace, "count": count})
    text = " ".join(segment.text for segment in segments).strip() if segments else transcript.text
    return dataclasses.replace(transcript, segments=segments, text=text), fired


def _apply(segment: Segment, find: str, replace: str) -> tuple[Segment, int]:
    target = [word.casefold() for word in find.split()]
    words = list(segment.words) or _untimed(segment)
    out: list[Word] = []
    hits, index = 0, 0
    while index < len(words):
        window = words[index : index + len(target)]
        if len(window) == len(target) and [_bare(w.text).casefold() for w in window] == target:
            lead = _EDGE.match(window[0].text)
            trail = _EDGE.match(window[-1].text)
            before = lead.group(1) if lead else ""
            after = trail.group(3) if trail else ""
            out.extend(
                _spread(
                    f"{before}{replace}{after}".split(), window[0].start, window[-1].end, window[0].speaker
                )
            )
            hits += 1
            index += len(target)
        else:
            out.append(words[index])
            index += 1
    if not hits:
        return segment, 0
    text = " ".join(word.text for word in out)
    return dataclasses.replace(segment, text=text, words=tuple(out) if segment.words else ()), hits


def _bare(text: str) -> str:
    match = _EDGE.match(text)
    return match.group(2) if match else text


def _untimed(segment: Segment) -> list[Word]:
    """A segment without word times, as words sharing its span (only their text is kept)."""
    return _spread(segment.text.split(), segment.start, segment.end, segment.speaker)


def _spread(texts: list[str], start: float, end: float, speaker: int | None) -> list[Word]:
    """`texts` sharing start..end in proportion to their length."""
    total = sum(len(text) + 1 for text in texts) or 1
    words, cursor = [], 0
    for text in texts:
        begin = start + (end - start) * cursor / total
        cursor += len(text) + 1
        words.append(Word(text, round(begin, 3), round(start + (end - start) * cursor / total, 3), speaker))
    if words:
        words[-1] = dataclasses.replace(words[-1], end=end)
    return words


def merged(
    base: Vocabulary, phrases: Iterable[str] = (), rules: Iterable[tuple[str, str]] = ()
) -> Vocabulary:
    """`base` with more phrases and rules (a request's own, after config.toml's)."""
    return dataclasses.replace(
        base,
        phrases=check_phrases([*base.phrases, *phrases]),
        replacements=(*base.replacements, *rules),
    )
