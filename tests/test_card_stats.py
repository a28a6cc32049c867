"""Generated card sections: replaced between their markers, everything else byte for byte."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from factories import make_record, write_run

from exporter.export.card_sections import (
    card_license,
    generated,
    refresh_card,
    set_front_matter,
    size_category,
    stats_section,
)
from exporter.export.command import export_command

CARD = """---
pretty_name: x
tags:
- a   # a comment
license: mit
---

# Title   with  spaces

Intro written by hand.

{stats}

## Tail
"""


def test_sections_are_replaced_between_markers_only() -> None:
    card = CARD.format(stats=generated("stats", "old numbers"))
    fresh = refresh_card(card, {"stats": "| rows | 5 |"}, {})
    assert fresh == CARD.format(stats=generated("stats", "| rows | 5 |"))
    assert refresh_card(fresh, {"stats": "| rows | 5 |"}, {}) == fresh  # idempotent


def test_a_card_without_markers_gets_them_appended() -> None:
    card = "# by hand\n\nno markers here"
    fresh = refresh_card(card, {"stats": "numbers"}, {})
    assert fresh.startswith("# by hand\n\nno markers here\n\n<!-- agentcap:stats:start")
    assert fresh.endswith("numbers\n<!-- agentcap:stats:end -->\n")


def test_front_matter_keys_are_set_without_touching_the_others() -> None:
    card = CARD.format(stats="")
    sized = set_front_matter(card, "size_categories", ["n<1K"])
    assert sized == card.replace("license: mit\n", "license: mit\nsize_categories:\n- n<1K\n")
    bigger = set_front_matter(sized, "size_categories", ["1K<n<10K"])
    assert bigger == card.replace("license: mit\n", "license: mit\nsize_categories:\n- 1K<n<10K\n")
    assert set_front_matter(bigger, "size_categories", ["1K<n<10K"]) == bigger
    relicensed = set_front_matter(card, "license", "apache-2.0")
    assert relicensed == card.replace("license: mit\n", "license: apache-2.0\n")
    assert card_license(relicensed) == "apache-2.0" and card_license("# no front matter") is None
    assert set_front_matter("# bare", "license", "mit") == "---\nlicense: mit\n---\n# bare"


@pytest.mark.parametrize(
    ("rows", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (10**10, "n>1B")]
)
def test_size_categories(rows: int, label: str) -> None:
    assert size_category(rows) == label


def test_stats_section_sums_runs_and_says_what_it_does_not_know() -> None:
    runs = {
        "r1": {"rows": 3, "agent": "pi", "models": {"m": 3}, "first": "2025-11-01T00:00:00+00:00",
               "last": "2025-11-02T00:00:00+00:00", "failed": 1, "bytes": 2048,
               "tokens": {"input_tokens": 10, "cache_read_tokens": 5, "cache_write_tokens": None,
                          "output_tokens": 4, "reasoning_tokens": None, "total_tokens": 19},
               "scan": {"result": "clean", "scanner": "kingfisher 2.14.0"}},
        "r2": {"rows": 2, "agent": "pi", "models": {"m": 1, "n": 1}, "failed": 0, "bytes": 1024,
               "tokens": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
               "scan": {"result": "redacted", "scanner": "kingfisher 2.14.0"}},
        "old": None,
    }  # fmt: skip
    section = stats_section("captures", runs, license_id=None)
    assert "| calls (rows) | 5 |" in section
    assert "| runs | 3 (agents: pi 2) |" in section
    assert "| models | m 4, n 1 |" in section
    assert "| dates (UTC) | 2025-11-01 → 2025-11-02 |" in section
    assert "| failed calls | 1 |" in section
    assert "| input tokens | 11 (cache read 5) |" in section and "| total tokens | 21 |" in section
    assert "| license | none set by the publisher" in section
    assert "1 run(s) exported by an agentcap that kept no statistics" in section
    assert (
        "**Secret scan** before publishing with kingfisher 2.14.0, per run: 1 clean, 1 redacted, 1 unknown."
        in section
    )


def test_license_flag(tmp_path) -> None:
    write_run(tmp_path / "runs", "r", [make_record(seq=1)])
    out = tmp_path / "out"
    bad = CliRunner().invoke(
        export_command, [str(tmp_path / "runs"), "--no-scan", "-o", str(out), "--license", "My License!"]
    )
    assert bad.exit_code == 2 and "expected a Hub license id" in bad.output and not out.exists()
    good = CliRunner().invoke(
        export_command, [str(tmp_path / "runs"), "--no-scan", "-o", str(out), "--license", "cc-by-4.0"]
    )
    assert good.exit_code == 0, good.output
    card = (out / "local" / "agentcap-captures" / "README.md").read_text()
    assert "\nlicense: cc-by-4.0\n" in card.split("---\n")[1] and "| license | `cc-by-4.0` |" in card
    assert "\ntask_categories:\n- text-generation\n" in "\n" + card.split("---\n")[1]
