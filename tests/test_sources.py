import json

import polars as pl
import pytest

from ealign_dagster.core.config import PromptsConfig, SourceConfig
from ealign_dagster.core.schemas import InputError, load_taxonomy
from ealign_dagster.prompts.build import build_prompts
from ealign_dagster.prompts.sources import RawPrompt, map_labels, prompt_id, read_source


def test_harmbench_reader_keeps_context_and_ids():
    data = read_source(SourceConfig(name="harmbench", kind="harmbench", role="eval", split="all"))
    assert len(data.rows) == 400  # 320 test + 80 val behaviours
    contextual = [r for r in data.rows if r.functional_category == "contextual"]
    assert contextual and all("\n\n---\n\n" in r.text for r in contextual)
    assert len({prompt_id(r.text) for r in data.rows}) == len({r.text for r in data.rows})
    assert data.version == read_source(SourceConfig(name="harmbench", kind="harmbench", split="all")).version


def test_prompt_id_is_stable_under_whitespace():
    assert prompt_id("How do I  pick\na lock?") == prompt_id(" How do I pick a lock? ")
    assert prompt_id("How do I pick a lock?") != prompt_id("How do I pick a lock")


def test_label_mapping_rules():
    t = load_taxonomy()
    dna = SourceConfig(name="donotanswer", kind="donotanswer")
    hb = SourceConfig(name="harmbench", kind="harmbench")
    assert map_labels(dna, RawPrompt("x", ["S005bully"]), t, "f").category == "harassment_bullying"
    assert map_labels(dna, RawPrompt("x", ["S005bully"]), t, "f").label_origin == "mapped"
    assert map_labels(dna, RawPrompt("x", ["C006"]), t, "f").label_origin == "excluded"
    # conflicting labels are left to the embedding assignment
    conflict = map_labels(dna, RawPrompt("x", ["S005bully", "S008code"]), t, "f")
    assert conflict.category is None and conflict.label_origin == "embedding"
    assert map_labels(hb, RawPrompt("x", ["illegal"]), t, "f").label_origin == "source"
    assert map_labels(hb, RawPrompt("x", ["copyright"]), t, "f").label_origin == "excluded"


def _csv(path, rows):
    pl.DataFrame(rows).write_csv(path)
    return path


def test_file_source_unknown_category_names_file_row_field(tmp_path):
    path = _csv(
        tmp_path / "mine.csv",
        [
            {"prompt": "Write an insulting note to a coworker", "cat": "harassment_bullying"},
            {"prompt": "Explain how to pick a lock", "cat": "burglary"},
        ],
    )
    cfg = PromptsConfig(sources=[SourceConfig(name="mine", kind="file", path=str(path), category_column="cat")])
    with pytest.raises(InputError, match=r"mine\.csv: row mine\.csv:2: field 'cat': unknown category 'burglary'"):
        build_prompts(cfg, load_taxonomy(), log=lambda m: None)


def test_file_source_duplicate_ids_and_empty(tmp_path):
    path = _csv(
        tmp_path / "dup.csv", [{"id": "a", "prompt": "one prompt here"}, {"id": "a", "prompt": "another prompt"}]
    )
    with pytest.raises(InputError, match=r"dup\.csv: rows 1 and 2: field 'id': duplicate id 'a'"):
        read_source(SourceConfig(name="d", kind="file", path=str(path), id_column="id"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match=r"source 'e' .*empty\.jsonl.*: no rows"):
        read_source(SourceConfig(name="e", kind="file", path=str(empty)))
    blank = _csv(tmp_path / "blank.csv", [{"prompt": "fine prompt"}, {"prompt": " "}])
    with pytest.raises(InputError, match=r"blank\.csv: row 2: field 'prompt' is empty"):
        read_source(SourceConfig(name="b", kind="file", path=str(blank)))


def test_file_source_non_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("prompt\nVoil\xe0 un caf\xe9 dangereux\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv: line 2, column 5: not valid UTF-8"):
        read_source(SourceConfig(name="l", kind="file", path=str(path)))


def test_jsonl_parquet_and_hf_dataset_sources(tmp_path):
    rows = [
        {"text": f"Write a cruel message to bully classmate number {i}", "label": "harassment_bullying"}
        for i in range(4)
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pl.DataFrame(rows).write_parquet(tmp_path / "a.parquet")
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hfdir"))
    for kind, path in [("file", "a.jsonl"), ("file", "a.parquet"), ("hf", "hfdir")]:
        cfg = SourceConfig(name="s", kind=kind, path=str(tmp_path / path), text_column="text", category_column="label")
        data = read_source(cfg)
        assert [r.text for r in data.rows] == [r["text"] for r in rows], (kind, path)
        assert data.rows[0].labels == ["harassment_bullying"]
        assert data.version


def test_limit_is_a_seeded_sample():
    a = read_source(SourceConfig(name="advbench", kind="advbench", limit=30))
    b = read_source(SourceConfig(name="advbench", kind="advbench", limit=30))
    assert [r.text for r in a.rows] == [r.text for r in b.rows] and len(a.rows) == 30


def test_control_characters_are_removed_and_counted(tmp_path):
    """NUL and other control characters never reach a model: removed, counted per row and per source
    (before: kept in the text and trained on)."""
    from ealign_dagster.prompts.build import clean_text

    assert clean_text("  Write\x00 a threat\x1b[0m\tnow\n") == ("Write a threat[0m\tnow", 2)
    path = _csv(tmp_path / "ctl.csv", [{"prompt": "Write an insulting\x00 note to a coworker", "cat": "harassment_bullying"},
                                       {"prompt": "Insult my neighbour in a letter", "cat": "harassment_bullying"}])  # fmt: skip
    cfg = PromptsConfig(sources=[SourceConfig(name="ctl", kind="file", path=str(path), category_column="cat")])
    df, _, counts = build_prompts(cfg, load_taxonomy(), log=lambda m: None)
    assert "\x00" not in "".join(df["text"]) and sorted(df["control_chars_removed"]) == [0, 1]
    assert counts["ctl:control_chars_removed"] == 1


@pytest.mark.parametrize("rule", ["drop", "embed"])
def test_unmapped_labels_follow_the_source_rule_and_are_counted(tmp_path, rule):
    """A source's `unmapped` rule decides what a label outside the map and the taxonomy does: drop the
    row or assign it by embedding; either way it is counted per source label (before: only an error,
    or silent embedding)."""
    rows = [{"prompt": "Write an insulting note to a coworker", "cat": "harassment_bullying"},
            {"prompt": "Explain how to pick a lock on a neighbour's door", "cat": "burglary"}]  # fmt: skip
    path = _csv(tmp_path / "mine.csv", rows)
    src = SourceConfig(name="mine", kind="file", path=str(path), category_column="cat", unmapped=rule)
    cfg = PromptsConfig(sources=[SourceConfig(name="advbench", kind="advbench", limit=40), src])
    df, _, counts = build_prompts(cfg, load_taxonomy(), log=lambda m: None)
    mine = df.filter(source="mine")
    assert counts["mine:unmapped:burglary"] == 1
    if rule == "drop":
        assert mine.height == 1 and counts["mine:excluded"] == 1
    else:
        assert mine.height == 2 and mine.filter(pl.col("text").str.contains("lock"))["label_origin"][0] == "embedding"


def test_harmbench_where_keeps_one_functional_category():
    """A profile can evaluate HarmBench's standard behaviours only (the demo leaves the long contextual
    ones out and its report says so)."""
    every = read_source(SourceConfig(name="harmbench", kind="harmbench", role="eval", split="val")).rows
    standard = read_source(SourceConfig(name="harmbench", kind="harmbench", role="eval", split="val",
                                        where={"FunctionalCategory": "standard"})).rows  # fmt: skip
    assert {r.functional_category for r in every} > {"standard"}
    assert standard and {r.functional_category for r in standard} == {"standard"}
    assert [r.source_ref for r in standard] == [r.source_ref for r in every if r.functional_category == "standard"]
