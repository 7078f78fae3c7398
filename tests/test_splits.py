import numpy as np
import polars as pl
import pytest
import yaml

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import InputError, load_taxonomy
from ealign_dagster.splits.build import build_split, stratified_quota

CATS = list(load_taxonomy().categories)


def _frame(extra=()):
    """Synthetic prompts: each category has its own direction; ids sort like their index."""
    rng = np.random.default_rng(0)
    rows, vecs, k = [], [], 0
    for ci, cat in enumerate(CATS):
        for role, n in (("train", 12), ("eval", 4)):
            for j in range(n):
                rows.append(
                    dict(
                        prompt_id=f"{cat[:4]}-{role}-{j:02d}",
                        source=role,
                        source_version="v1",
                        role=role,
                        category=cat,
                        assigned=True,
                        label_confidence=1.0,
                        n_chars=40,
                        functional_category=None,
                    )
                )
                v = np.zeros(128)
                v[ci] = 1.0
                v[8 + k] = 0.9  # every item has its own direction too: same-category cosine ~0.55
                k += 1
                vecs.append(v + rng.normal(0, 0.01, 128))
    for r, v in extra:
        rows.append(
            dict(
                dict(
                    source="train",
                    source_version="v1",
                    role="train",
                    assigned=True,
                    label_confidence=1.0,
                    n_chars=40,
                    functional_category=None,
                ),
                **r,
            )
        )
        vecs.append(v)
    vecs = np.array(vecs)
    return pl.DataFrame(rows), vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _vec_like(frame, vecs, prompt_id, jitter=0.02):
    v = vecs[frame["prompt_id"].index_of(prompt_id)].copy()
    v[-1] += jitter
    return v / np.linalg.norm(v)


def _reason(audit, prompt_id):
    return audit.filter(pl.col("prompt_id") == prompt_id)["reason"].to_list()


CFG = SplitsConfig(
    train_examples=5,
    eval_per_category=2,
    leakage_threshold=0.9,
    contamination_threshold=0.97,
    min_rows_per_category=1,
)


def test_broad_is_stratified_and_eval_shared():
    frame, vecs = _frame()
    t = load_taxonomy()
    broad, audit, _ = build_split("broad", frame, vecs, t, CFG.model_copy(update={"train_examples": 3 * len(CATS)}))
    narrow, _, _ = build_split("narrow_illegal", frame, vecs, t, CFG)
    train = broad.filter(pl.col("role") == "train")
    assert dict(train.group_by("category").len().iter_rows()) == {c: 3 for c in CATS}
    broad_eval, narrow_eval = (f.filter(pl.col("role") == "eval") for f in (broad, narrow))
    assert set(broad_eval["prompt_id"]) == set(narrow_eval["prompt_id"])
    assert broad_eval.height == 2 * len(CATS)
    assert audit.is_empty()


def test_narrow_scope_labels_held_out_flags_and_determinism():
    frame, vecs = _frame()
    t = load_taxonomy()
    rows, audit, drops = build_split("narrow_harassment", frame, vecs, t, CFG)
    train, ev = rows.filter(pl.col("role") == "train"), rows.filter(pl.col("role") == "eval")
    assert set(train["category"]) == {"harassment_bullying"} and train.height == 5
    assert set(ev.filter("held_out")["category"]) == {"chemical_biological"}
    assert set(ev.filter(pl.col("category") == "harassment_bullying")["category_role"]) == {"trained"}
    assert drops["label"] == 12 * (len(CATS) - 1) == (audit["reason"] == "label").sum()
    shuffled = np.random.default_rng(3).permutation(frame.height)
    again, _, _ = build_split("narrow_harassment", frame[shuffled], vecs[shuffled], t, CFG)
    assert sorted(again["prompt_id"]) == sorted(rows["prompt_id"])
    other_seed, _, _ = build_split("narrow_harassment", frame, vecs, t, CFG.model_copy(update={"seed": 7}))
    assert set(other_seed.filter(pl.col("role") == "train")["prompt_id"]) != set(train["prompt_id"])


def test_held_out_leakage_dropped_or_kept_and_contamination_dropped():
    base, vecs0 = _frame()
    planted = {"prompt_id": "zz-planted-chem", "category": "harassment_bullying"}
    dup = {"prompt_id": "zz-dup-of-eval", "category": "harassment_bullying"}
    frame, vecs = _frame(
        [
            (planted, _vec_like(base, vecs0, "chem-train-03")),
            (dup, _vec_like(base, vecs0, "hara-eval-01", jitter=0.0)),
        ]
    )
    t = load_taxonomy()
    cfg = CFG.model_copy(update={"train_examples": 100})
    rows, audit, drops = build_split("narrow_harassment", frame, vecs, t, cfg)
    assert "zz-planted-chem" not in set(rows["prompt_id"])
    leak = audit.filter(pl.col("reason") == "held_out_similarity")
    assert leak["prompt_id"].to_list() == ["zz-planted-chem"] and leak["score"][0] >= 0.9
    assert audit.filter(pl.col("reason") == "contamination")["prompt_id"].to_list() == ["zz-dup-of-eval"]
    assert "zz-dup-of-eval" not in set(rows["prompt_id"])
    # the same prompt does not leak into narrow_illegal's held-out category (misinformation)
    _, audit_illegal, _ = build_split("narrow_illegal", frame, vecs, t, cfg)
    assert (audit_illegal["reason"] == "held_out_similarity").sum() == 0

    kept, audit_kept, drops_kept = build_split(
        "narrow_harassment", frame, vecs, t, cfg.model_copy(update={"leakage_action": "keep"})
    )
    row = kept.filter(pl.col("prompt_id") == "zz-planted-chem")
    assert row.height == 1 and row["held_out_similarity"][0] >= 0.9
    assert drops_kept["held_out_leakage_kept"] == 1


def test_low_confidence_assignments_stay_out_of_narrow_scopes():
    frame, vecs = _frame()
    target = pl.col("prompt_id") == "hara-train-00"
    frame = frame.with_columns(
        assigned=pl.when(target).then(False).otherwise("assigned"),
        label_confidence=pl.when(target).then(0.3).otherwise("label_confidence"),
    )
    t = load_taxonomy()
    rows, audit, _ = build_split("narrow_harassment", frame, vecs, t, CFG.model_copy(update={"train_examples": 100}))
    assert "hara-train-00" not in set(rows["prompt_id"])
    assert _reason(audit, "hara-train-00") == ["unassigned"]
    broad, _, _ = build_split("broad", frame, vecs, t, CFG.model_copy(update={"train_examples": 600}))
    assert "hara-train-00" in set(broad["prompt_id"])


def test_an_evaluation_prompt_with_a_guessed_category_is_not_scored_under_it():
    """Before: a low-confidence embedding assignment entered the evaluation set under its guess."""
    frame, vecs = _frame()
    frame = frame.with_columns(
        assigned=pl.when(pl.col("prompt_id") == "hara-eval-00").then(False).otherwise("assigned")
    )
    rows, audit, _ = build_split(
        "broad", frame, vecs, load_taxonomy(), CFG.model_copy(update={"eval_per_category": 100})
    )
    assert "hara-eval-00" not in set(rows["prompt_id"]) and "hara-eval-01" in set(rows["prompt_id"])
    assert _reason(audit, "hara-eval-00") == ["unassigned_eval"]


def test_length_bounds_drop_training_prompts():
    frame, vecs = _frame()
    length = pl.when(pl.col("prompt_id") == "ille-train-00").then(5)
    frame = frame.with_columns(
        n_chars=length.when(pl.col("prompt_id") == "ille-train-01").then(9000).otherwise("n_chars")
    )
    rows, audit, _ = build_split(
        "narrow_illegal", frame, vecs, load_taxonomy(), CFG.model_copy(update={"train_examples": 100})
    )
    assert not {"ille-train-00", "ille-train-01"} & set(rows["prompt_id"])
    assert _reason(audit, "ille-train-00") == ["length"]
    # the audit records the bound each broke (before: no threshold)
    bounds = dict(audit.filter(reason="length").select("prompt_id", "threshold").iter_rows())
    assert bounds == {"ille-train-00": CFG.min_chars, "ille-train-01": CFG.max_chars}


def _train(rows):
    return rows.filter(pl.col("role") == "train")


@pytest.mark.parametrize("n", [6, 9, 12])
def test_every_scope_trains_on_train_examples_prompts(n):
    """Before: broad took broad_per_category per category (18 in the demo) and narrow scopes narrow_size (12)."""
    frame, vecs = _frame()
    t = load_taxonomy()
    cfg = CFG.model_copy(update={"train_examples": n})
    train = {scope: _train(build_split(scope, frame, vecs, t, cfg)[0]) for scope in t.scopes}
    assert {scope: rows.height for scope, rows in train.items()} == {scope: n for scope in t.scopes}
    per_cat = train["broad"].group_by("category").len()
    assert per_cat.height == len(CATS) and per_cat["len"].max() - per_cat["len"].min() <= 1  # stratified


def test_a_thin_category_leaves_its_share_of_broad_to_the_others():
    assert stratified_quota({"a": 1, "b": 10, "c": 10}, 12) == {"a": 1, "b": 5, "c": 6}
    assert stratified_quota({"a": 4, "b": 4, "c": 4}, 12) == {"a": 4, "b": 4, "c": 4}
    assert stratified_quota({"a": 1, "b": 2}, 5) == {"a": 1, "b": 2}  # exhausted: short by 2
    # eleven of chemical_biological's twelve training prompts are too short
    frame, vecs = _frame()
    short = pl.col("prompt_id").str.starts_with("chem-train") & (pl.col("prompt_id") != "chem-train-00")
    frame = frame.with_columns(n_chars=pl.when(short).then(3).otherwise("n_chars"))
    n = 3 * len(CATS)
    train = _train(build_split("broad", frame, vecs, load_taxonomy(), CFG.model_copy(update={"train_examples": n}))[0])
    counts = dict(train.group_by("category").len().iter_rows())
    assert train.height == n and counts["chemical_biological"] == 1 and max(counts.values()) == 4


def _outcomes(scope, n_train):
    """The blocking split checks on a scope built from the synthetic frame with train_examples = n_train."""
    from ealign_dagster.core.expectations import validate_frames
    from ealign_dagster.splits.expectations import SPLIT_CHECKS, split_frames

    frame, vecs = _frame()
    t = load_taxonomy()
    cfg = CFG.model_copy(update={"train_examples": n_train})
    rows, _, _ = build_split(scope, frame, vecs, t, cfg)
    df = rows.select("scope", "role", "prompt_id", "category").to_pandas()
    df["text"] = "a prompt long enough to pass the bounds"
    zeros = np.zeros(len(df))
    return validate_frames(split_frames(scope, df, zeros, zeros, zeros, t, cfg), list(SPLIT_CHECKS))


def test_a_split_short_of_train_examples_fails_its_check_with_the_shortfall():
    """Before: a scope with fewer prompts than asked for trained on what it had, silently."""
    assert all(o.passed for o in _outcomes("narrow_illegal", 12).values())
    outcomes = _outcomes("narrow_illegal", 20)  # the synthetic pool holds 12 illegal training prompts
    failed = outcomes["train_examples_reached"]
    assert not failed.passed and failed.unexpected_count == 1
    assert failed.failing == [
        {"train_pool": "12 training prompts after filtering (split_audit says why), splits.train_examples = 20",
         "shortfall": 8}
    ]  # fmt: skip
    assert "\n" not in str(failed.failing)
    assert all(o.passed for name, o in outcomes.items() if name != "train_examples_reached")


@pytest.mark.parametrize("old", [["broad_per_category", "narrow_size"], ["narrow_size"]])
def test_an_old_profile_with_per_scope_sizes_fails_in_one_line_naming_them(tmp_path, old):
    """Before: broad_per_category and narrow_size sized broad and narrow scopes differently."""
    from ealign_dagster.core.config import load_profile, profile_path

    data = yaml.safe_load(profile_path("tiny").read_text())
    del data["splits"]["train_examples"]
    data["splits"].update({k: 3 for k in old})
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as e:
        load_profile(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: field 'splits': {' and '.join(old)} ") and "\n" not in msg, msg
    assert "train_examples" in msg
