"""The picker's filter: fzf's extended search syntax, matched with regular expressions.

    foo      fuzzy: the letters in order, within one line
    'foo     exact substring
    ^foo     a line starts with foo          foo$   a line ends with foo
    !foo     no exact match (also !^foo, !foo$)
    a | b    either term (an OR group); space-separated groups must all match

Smart case: a term is case-insensitive unless it contains an uppercase letter. Matching runs on
the original text (never a lowercased copy), so spans are character offsets into exactly the
string that is displayed, whatever its script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SPANS = 2000  # highlighting more than this in one preview helps nobody and costs time


@dataclass(frozen=True, slots=True)
class Term:
    pattern: re.Pattern[str]
    negated: bool
    fuzzy: bool
    contiguous: re.Pattern[str] | None = None  # fuzzy terms: highlight whole-word occurrences first

    def search(self, text: str) -> bool:
        return (self.pattern.search(text) is not None) != self.negated

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self.negated:
            return []
        if self.contiguous is not None and self.contiguous.search(text):
            return Term(self.contiguous, negated=False, fuzzy=False).spans(text)
        found: list[tuple[int, int]] = []
        for match in self.pattern.finditer(text):
            if self.fuzzy:
                found += [match.span(group) for group in range(1, (self.pattern.groups or 0) + 1)]
            elif match.end() > match.start():
                found.append(match.span())
            if len(found) >= MAX_SPANS:
                break
        return found


@dataclass(frozen=True, slots=True)
class Query:
    """AND of OR-groups of terms. The empty query matches everything."""

    groups: tuple[tuple[Term, ...], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Query:
        groups: list[list[Term]] = []
        join_next = False
        for token in _tokens(text):
            if token == "|":
                join_next = bool(groups)
                continue
            term = _term(token)
            if term is None:
                continue
            if join_next:
                groups[-1].append(term)
            else:
                groups.append([term])
            join_next = False
        return cls(tuple(tuple(group) for group in groups))

    def __bool__(self) -> bool:
        return bool(self.groups)

    def matches(self, text: str) -> bool:
        return all(any(term.search(text) for term in group) for group in self.groups)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of every positive term's matches in `text`, sorted and merged."""
        found = sorted(span for group in self.groups for term in group for span in term.spans(text))
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged


def _tokens(text: str) -> list[str]:
    r"""Split on unescaped spaces; `\ ` is a literal space inside a term."""
    parts = re.split(r"(?<!\\) +", text.strip())
    return [part.replace("\\ ", " ") for part in parts if part]


def _term(token: str) -> Term | None:
    negated = token.startswith("!")
    if negated:
        token = token[1:]
    exact = negated or token.startswith("'")
    if token.startswith("'"):
        token = token[1:]
    anchor_start = token.startswith("^")
    if anchor_start:
        token = token[1:]
    anchor_end = token.endswith("$") and not token.endswith("\\$")
    if anchor_end:
        token = token[:-1]
    token = token.replace("\\$", "$")
    if not token:
        return None
    flags = re.MULTILINE | (0 if any(ch.isupper() for ch in token) else re.IGNORECASE)
    fuzzy = not (exact or anchor_start or anchor_end)
    body = _fuzzy(token) if fuzzy else re.escape(token)
    pattern = ("^" if anchor_start or fuzzy else "") + body + ("$" if anchor_end else "")
    contiguous = re.compile(re.escape(token), flags) if fuzzy else None
    return Term(re.compile(pattern, flags), negated, fuzzy, contiguous)


def _fuzzy(token: str) -> str:
    """The first in-order occurrence of the letters within one line, each letter its own group.

    Every gap skips possessively up to the next wanted letter, and the match is anchored at the
    line start, so there is exactly one way to match a line: linear time, however long the line
    (a lazy `a.*?b.*?c` pattern backtracks polynomially on long lines that almost match).
    """
    letters = [re.escape(ch) for ch in token]
    return "".join(f"[^\\n{letter}]*+({letter})" for letter in letters)
