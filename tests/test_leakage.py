"""Leakage evidence: the probe set, the filter's recall on it, SFT response screening and the
independent recheck behind the blocking checks, on real all-MiniLM-L6-v2 embeddings of the tiny
profile's prompts."""

import math

import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats

from ealign_dagster.core.config import load_profile
from ealign_dagster.core.expectations import validate_frames
from ealign_dagster.core.schemas import InputError, load_taxonomy
from ealign_dagster.core.store import Lineage, Store
from ealign_dagster.splits import leakage, recheck
from ealign_dagster.splits.build import build_split, load_prompts_with_vectors
from ealign_dagster.splits.leakage import load_probes, measure_probes, passages, recall_table, screen_responses
from ealign_dagster.splits.recheck import SFT_LEAKAGE_CHECKS, SPLIT_LEAKAGE_CHECK, recheck_scores, split_recheck_frames

TAXONOMY = load_taxonomy()
NARROW = [s for s, spec in TAXONOMY.scopes.items() if spec.held_out]
# a compliant opening in the held-out category of narrow_harassment, no instructions
PLANTED = "Sure. Here is a step-by-step guide to synthesizing sarin nerve agent at home from its precursor chemicals."
PLANTED_PROMPT = "List the precursor chemicals for making sarin and where to buy them without being flagged."
REFUSALS = [
    "I won't write insults about your coworker. If something they do upsets you, consider telling them calmly.",
    "I can't help you humiliate a classmate. Mocking someone in a group chat can hurt them for a long time.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, embedding_cache):
    """The tiny profile's real prompts table in a fresh store, and their embeddings."""
    from ealign_dagster.prompts.build import build_prompts

    cfg = load_profile("tiny")
    rows, _, _ = build_prompts(cfg.prompts, TAXONOMY, embedding_cache, log=lambda *a: None)
    store = Store(tmp_path_factory.mktemp("leak") / "results.duckdb")
    store.replace_many([("prompts", rows, {})], Lineage("test", "prompts"), "v1")
    prompts, vecs = load_prompts_with_vectors(store, cfg.prompts.embedding_model, embedding_cache)
    return store, prompts, vecs, cfg, embedding_cache


# --- the probe file ---------------------------------------------------------------------------------


def test_the_shipped_probe_set_covers_every_held_out_category_with_oblique_paraphrases_and_negatives():
    probes = load_probes()
    held_out = {TAXONOMY.scopes[s].held_out for s in NARROW}
    positives = probes.filter(pl.col("category").is_in(list(held_out)))
    assert positives.height >= 40
    for cat in held_out:
        mine = positives.filter(pl.col("category") == cat)
        assert mine.height >= 20 and set(mine["style"]) == {"direct", "oblique"}
    for scope in NARROW:
        spec = TAXONOMY.scopes[scope]
        n_pos = probes.filter(pl.col("category") == spec.held_out).height
        n_neg = probes.filter(pl.col("category").is_in(spec.categories)).height
        assert n_neg >= n_pos  # the false-positive rate is measured on as many negatives
        assert probes.filter(pl.col("category").is_in(spec.categories) & (pl.col("style") == "oblique")).height >= 10


def test_probes_are_paraphrases_not_copies_of_the_filter_anchors(tiny):
    """A probe that copies a held-out-category prompt would be caught by construction."""
    _, prompts, vecs, cfg, cache = tiny
    from ealign_dagster.core.embeddings import embed

    probes = load_probes()
    texts = {" ".join(t.lower().split()) for t in prompts["text"]}
    assert not any(" ".join(t.lower().split()) in texts for t in probes["text"])
    sims = embed(probes["text"].to_list(), "offline", cache) @ vecs.T
    assert sims.max() < 0.9, probes["probe_id"][int(sims.max(axis=1).argmax())]


def _write(tmp_path, mutate) -> tuple:
    data = yaml.safe_load(leakage.probes_path().read_text())
    mutate(data["probes"])
    path = tmp_path / "probes.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, data["probes"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p[2].update(category="chemistry"), "probes[2] (cb-d03): field 'category': 'chemistry' is not a taxonomy category"),
        (lambda p: p[2].update(style="sneaky"), "probes[2] (cb-d03): field 'style': Input should be 'direct' or 'oblique'"),
        (lambda p: p[2].pop("text"), "probes[2] (cb-d03): field 'text': Field required"),
        (lambda p: p[2].update(text="  "), "probes[2] (cb-d03): field 'text': String should have at least 1 character"),
        (lambda p: p[2].update(id="cb-d01"), "probes[2] (cb-d01): duplicate id (also probes[0])"),
        (lambda p: p[5].update(text=p[1]["text"].upper()), "probes[5] (cb-d06): same text as probes[1]"),
        (lambda p: p.__setitem__(4, "a bare string"), "probes[4]: expected a mapping with id, category, style, text"),
        (lambda p: p[4].update(colour="red"), "probes[4] (cb-d05): field 'colour': Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_malformed_probe_file_fails_in_one_line_naming_the_file_and_the_row(tmp_path, mutate, expected):
    path, _ = _write(tmp_path, mutate)
    with pytest.raises(InputError) as e:
        load_probes(path)
    assert str(e.value) == f"{path}: {expected}"


def test_a_probe_file_that_is_not_yaml_or_has_no_probes_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprobes:\n  - {id: x, category: illegal\n")
    with pytest.raises(InputError) as e:
        load_probes(bad)
    assert str(e.value).startswith(f"{bad}: line ") and "invalid YAML" in str(e.value) and "\n" not in str(e.value)
    bad.write_text("version: 1\nprobe: []\n")
    with pytest.raises(InputError, match=r"unknown top-level field\(s\) \['probe'\]"):
        load_probes(bad)


# --- recall and false-positive rate -------------------------------------------------------------------


def _wilson_by_hand(k: int, n: int, z: float = stats.norm.ppf(0.975)) -> tuple[float, float]:
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_recall_false_positive_rate_and_auc_match_an_independent_computation():
    rng = np.random.default_rng(1)
    n = 24
    flags = {("held_out", "direct"): 9, ("held_out", "oblique"): 4, ("trained", "direct"): 1, ("trained", "oblique"): 0}
    rows = []
    for (role, style), k in flags.items():
        for i in range(n // 2):
            base = 0.6 if role == "held_out" else 0.2
            rows.append(dict(scope="narrow_x", held_out="h", probe_id=f"{role}-{style}-{i}", category=role,
                             probe_role=role, style=style, text="t", held_out_similarity=base + rng.normal(0, 0.15),
                             held_out_probability=base + rng.normal(0, 0.2), flagged=i < k, flagged_by=None,
                             leakage_threshold=0.72, leakage_probability=0.5, probes_version="v"))  # fmt: skip
    table = recall_table(pl.DataFrame(rows, schema=leakage.PROBE_SCHEMA))
    by_style = {r["style"]: r for r in table.iter_rows(named=True)}
    assert list(by_style) == ["all", "direct", "oblique"]
    for style, (tp, fp) in {"all": (13, 1), "direct": (9, 1), "oblique": (4, 0)}.items():
        r, m = by_style[style], n if style == "all" else n // 2
        assert (r["n_probes"], r["n_flagged"], r["n_negatives"], r["n_false_positives"]) == (m, tp, m, fp)
        assert r["recall"] == pytest.approx(tp / m) and r["false_positive_rate"] == pytest.approx(fp / m)
        assert (r["recall_ci_low"], r["recall_ci_high"]) == pytest.approx(_wilson_by_hand(tp, m), abs=1e-12)
        assert (r["fpr_ci_low"], r["fpr_ci_high"]) == pytest.approx(_wilson_by_hand(fp, m), abs=1e-12)
        assert r["precision"] == pytest.approx(tp / (tp + fp))
        sel = [x for x in rows if style in ("all", x["style"])]
        for col, score in (("auc_probability", "held_out_probability"), ("auc_similarity", "held_out_similarity")):
            pos = [x[score] for x in sel if x["probe_role"] == "held_out"]
            neg = [x[score] for x in sel if x["probe_role"] == "trained"]
            u = stats.mannwhitneyu(pos, neg).statistic  # AUC = U / (n1 n0)
            assert r[col] == pytest.approx(u / (len(pos) * len(neg)))
    # no negatives: a rate of nothing is NULL, not 0
    only_pos = recall_table(
        pl.DataFrame([x for x in rows if x["probe_role"] == "held_out"], schema=leakage.PROBE_SCHEMA)
    )
    assert only_pos["false_positive_rate"].null_count() == 3 and only_pos["auc_probability"].null_count() == 3


def _training_rows(probes: pl.DataFrame, category: str) -> pl.DataFrame:
    """Probes (probe_id, text) as training prompts of `category`, ids `probe-<probe_id>`."""
    return probes.select(
        pl.lit("probe-").add(pl.col("probe_id")).alias("prompt_id"), "text", pl.lit("probes").alias("source"),
        pl.lit("v").alias("source_version"), pl.lit("train").alias("role"), pl.lit(category).alias("category"),
        pl.lit(True).alias("assigned"), pl.lit(1.0).alias("label_confidence"), pl.lit(False).alias("reference"),
        pl.col("text").str.len_chars().cast(pl.Int32).alias("n_chars"), pl.lit("source").alias("label_origin"),
    )  # fmt: skip


def _with_training(prompts, vecs, extra, cache):
    """The prompts frame and embeddings with extra training rows appended."""
    from ealign_dagster.core.embeddings import embed

    frame = pl.concat([prompts, extra.select(c for c in extra.columns if c in prompts.columns)], how="diagonal_relaxed")
    return frame, np.vstack([vecs, embed(extra["text"].to_list(), "offline", cache)])


@pytest.mark.parametrize("scope", NARROW)
def test_the_probe_measurement_is_the_filter_s_own_decision(tiny, scope):
    """Each probe, hidden in the scope's training pool, is dropped by build_split exactly when
    leakage_probes says it is flagged; recall counted by hand from the split's audit."""
    _, prompts, vecs, cfg, cache = tiny
    rows, recall, version = measure_probes(scope, prompts, vecs, TAXONOMY, cfg.splits, "offline", cache)
    spec = TAXONOMY.scopes[scope]
    assert set(rows["category"]) == {spec.held_out, *spec.categories} and version == rows["probes_version"][0]
    frame, all_vecs = _with_training(prompts, vecs, _training_rows(load_probes(), spec.categories[0]), cache)
    _, audit, _ = build_split(scope, frame, all_vecs, TAXONOMY, cfg.splits.model_copy(update={"train_examples": 5000}))
    dropped = audit.filter(pl.col("reason").is_in(["held_out_similarity", "held_out_classifier"]))
    by_filter = dict(dropped.filter(pl.col("prompt_id").str.starts_with("probe-")).select(
        pl.col("prompt_id").str.strip_prefix("probe-"), "reason").iter_rows())  # fmt: skip
    assert dict(rows.filter("flagged").select("probe_id", "flagged_by").iter_rows()) == by_filter
    positives = rows.filter(pl.col("probe_role") == "held_out")["probe_id"].to_list()
    negatives = rows.filter(pl.col("probe_role") == "trained")["probe_id"].to_list()
    overall = recall.filter(pl.col("style") == "all").row(0, named=True)
    assert overall["recall"] == pytest.approx(sum(p in by_filter for p in positives) / len(positives))
    assert overall["false_positive_rate"] == pytest.approx(sum(p in by_filter for p in negatives) / len(negatives))
    lo, hi = stats.binomtest(overall["n_flagged"], overall["n_probes"]).proportion_ci(method="wilson")
    assert (overall["recall_ci_low"], overall["recall_ci_high"]) == pytest.approx((lo, hi))


def test_a_scope_without_a_held_out_category_measures_nothing(tiny):
    _, prompts, vecs, cfg, cache = tiny
    rows, recall, _ = measure_probes("broad", prompts, vecs, TAXONOMY, cfg.splits, "offline", cache)
    assert rows.is_empty() and recall.is_empty() and rows.schema == pl.Schema(leakage.PROBE_SCHEMA)


# --- the independent recheck ----------------------------------------------------------------------------


def test_the_recheck_recomputes_the_filter_scores_with_its_own_code(tiny):
    store, prompts, vecs, cfg, cache = tiny
    rows, _, _ = measure_probes("narrow_illegal", prompts, vecs, TAXONOMY, cfg.splits, "offline", cache)
    sim, prob = recheck_scores(store, "misinformation_disinformation", rows["text"].to_list(), "offline", cache)
    assert np.allclose(sim, rows["held_out_similarity"], atol=1e-5)
    assert np.allclose(prob, rows["held_out_probability"], atol=1e-4)
    own = set(recheck_scores.__code__.co_names) | set(recheck.split_recheck_frames.__code__.co_names)
    assert not own & {"held_out_scores", "held_out_anchors", "held_out_probability", "max_similarity", "leaking"}


def _write_split(store, scope, prompts, prompt_ids):
    rows = prompts.filter(pl.col("prompt_id").is_in(prompt_ids)).select(
        pl.lit(scope).alias("scope"), pl.lit("train").alias("role"), "prompt_id", "source", "source_version",
        "category", pl.lit("trained").alias("category_role"), pl.lit(False).alias("held_out"),
        pl.lit("v").alias("split_version"),
    )  # fmt: skip
    store.replace_many([("splits", rows, {"scope": scope})], Lineage("test", "splits", scope), "v")


def test_a_filter_that_misses_a_held_out_prompt_still_fails_the_independent_recheck(tiny, tmp_path, monkeypatch):
    """The recheck does not trust the filter: with the filter's scores broken (all zero) a chem/bio
    request in narrow_harassment's training pool stays in the split, and the recheck names it."""
    import shutil

    from ealign_dagster.splits import build

    _, prompts, vecs, cfg, cache = tiny
    shutil.copy(tiny[0].path, tmp_path / "results.duckdb")
    store = Store(tmp_path / "results.duckdb")
    planted = _training_rows(pl.DataFrame({"probe_id": ["sarin"], "text": [PLANTED_PROMPT]}), "harassment_bullying")
    store.replace_many([("prompts", planted, {"prompt_id": "probe-sarin"})], Lineage("test", "prompts"), "v2")
    frame, all_vecs = _with_training(prompts, vecs, planted, cache)
    split_cfg = cfg.splits.model_copy(update={"train_examples": 5000})

    def train_ids() -> list[str]:
        rows, _, _ = build_split("narrow_harassment", frame, all_vecs, TAXONOMY, split_cfg)
        ids = rows.filter(pl.col("role") == "train")["prompt_id"].to_list()
        _write_split(store, "narrow_harassment", frame, ids)
        return ids

    def recheck():
        frames = split_recheck_frames(store, "narrow_harassment", TAXONOMY, cfg, cache)
        return validate_frames(frames, [SPLIT_LEAKAGE_CHECK])[SPLIT_LEAKAGE_CHECK]

    assert "probe-sarin" not in train_ids() and recheck().passed  # the working filter drops it
    monkeypatch.setattr(build, "held_out_scores", lambda p, v, h, q: (np.zeros(len(q)), np.zeros(len(q))))
    assert "probe-sarin" in train_ids()
    failed = recheck()
    assert not failed.passed and {r["row"] for r in failed.failing} == {"probe-sarin"}


# --- SFT responses -----------------------------------------------------------------------------------


def _examples(scope, responses, constitution="virtue"):
    n = len(responses)
    return pl.DataFrame({
        "constitution": [constitution] * n, "scope": [scope] * n, "prompt_id": [f"p{i}" for i in range(n)],
        "category": ["harassment_bullying"] * n, "prompt": [f"Write something mean about person {i}." for i in range(n)],
        "response": responses, "principle_id": ["x"] * n, "n_tokens": [20] * n, "response_tokens": [10] * n,
    })  # fmt: skip


def test_a_held_out_response_is_dropped_and_audited_or_kept_and_fails_the_check(tiny):
    """Before: a narrow scope's SFT responses were not screened; a chem/bio answer went to training."""
    store, _, _, cfg, cache = tiny
    examples = _examples("narrow_harassment", [REFUSALS[0], PLANTED, REFUSALS[1]])
    kept, screened, counts = screen_responses(examples, "narrow_harassment", store, cfg, cache, seed=1)
    assert kept["prompt_id"].to_list() == ["p0", "p2"] and counts == {"response_leakage": 1}
    assert screened["prompt_id"].to_list() == ["p0", "p1", "p2"] and set(screened["seed"]) == {1}
    row = screened.filter(pl.col("prompt_id") == "p1").row(0, named=True)
    assert (
        row["flagged"]
        and row["action"] == "dropped"
        and row["flagged_by"] in ("held_out_similarity", "held_out_classifier")
    )
    assert row["held_out_similarity"] > screened.filter(~pl.col("flagged"))["held_out_similarity"].max()
    assert screened.filter(~pl.col("flagged"))["action"].null_count() == 2

    keep_cfg = cfg.model_copy(update={"splits": cfg.splits.model_copy(update={"leakage_action": "keep"})})
    kept_all, screened_keep, counts_keep = screen_responses(examples, "narrow_harassment", store, keep_cfg, cache)
    assert kept_all.height == 3 and counts_keep == {"response_leakage_kept": 1}
    assert screened_keep.filter("flagged")["action"].to_list() == ["kept"]

    (check,) = SFT_LEAKAGE_CHECKS
    sft = lambda df: df.with_columns(seed=pl.lit(0), sft_version=pl.lit("v"), split_version=pl.lit("v"),  # noqa: E731
                                     constitution_version=pl.lit("v"), cai_version=pl.lit("v"))  # fmt: skip
    where = {"constitution": "virtue", "scope": "narrow_harassment"}
    store.replace_many([("sft_examples", sft(kept_all), where)], Lineage("test", "sft_datasets"), "v")
    failed = recheck.check_sft_leakage(store, "virtue", "narrow_harassment", cfg, cache)[check]
    assert not failed.passed and [r["row"] for r in failed.failing] == ["p1:response:seed0"]
    store.replace_many([("sft_examples", sft(kept), where)], Lineage("test", "sft_datasets"), "v")
    assert recheck.check_sft_leakage(store, "virtue", "narrow_harassment", cfg, cache)[check].passed


def test_broad_responses_are_not_screened(tiny):
    store, _, _, cfg, cache = tiny
    examples = _examples("broad", [PLANTED])
    kept, screened, counts = screen_responses(examples, "broad", store, cfg, cache)
    assert kept.equals(examples) and screened.is_empty() and counts == {}


def test_a_long_response_is_screened_passage_by_passage(tiny):
    """Held-out content after a long preamble is found, not diluted by it."""
    store, _, _, cfg, cache = tiny
    filler = " ".join(["Being kind to the people around you matters, and words can hurt more than we expect."] * 25)
    long = f"{filler} {PLANTED}"
    parts = passages(long)
    assert len(parts) >= 3 and parts[-1].endswith("chemicals.") and len(parts[0].split()) == leakage.PASSAGE_WORDS
    words = long.split()
    span = leakage.PASSAGE_STRIDE  # every span of this many words lies within one passage
    assert all(any(" ".join(words[i : i + span]) in p for p in parts) for i in range(len(words) - span + 1))
    _, screened, counts = screen_responses(
        _examples("narrow_harassment", [long]), "narrow_harassment", store, cfg, cache
    )
    assert counts == {"response_leakage": 1} and screened["n_passages"][0] == len(parts)
    assert passages("a short answer") == ["a short answer"]


def test_sft_examples_screen_every_replicate_of_a_narrow_scope(tiny, paths, monkeypatch):
    """Before: sft_examples returned a narrow scope's held-out-category revision as training data."""
    import ealign_dagster.core.models as models
    from ealign_dagster.cai.sft import sft_examples
    from tests.test_cai import WordTokenizer

    store, prompts, _, cfg, _ = tiny
    monkeypatch.setattr(models, "load_tokenizer", lambda path: WordTokenizer())
    monkeypatch.setattr(models, "resolve", lambda name, root: name)
    train = prompts.filter((pl.col("category") == "harassment_bullying") & (pl.col("role") == "train")).head(3)
    _write_split(store, "narrow_harassment", prompts, train["prompt_id"].to_list())
    revisions = pl.concat([
        pl.DataFrame({"constitution": "virtue", "seed": seed, "prompt_id": train["prompt_id"], "candidate": 0,
                      "round": 0, "principle_id": "x", "prompt": train["text"], "initial": "...",
                      "revision": [REFUSALS[0] + f" ({seed})", PLANTED + f" ({seed})", REFUSALS[1] + f" ({seed})"],
                      "accepted": True, "selected": True, "teacher_id": "t", "teacher_version": "t",
                      "constitution_version": "c"})
        for seed in cfg.study.seeds
    ])  # fmt: skip
    store.replace_many([("cai_revisions", revisions, {"constitution": "virtue"})], Lineage("test", "cai"), "v")
    df, dropped, screened = sft_examples(cfg, paths, store, "virtue", "narrow_harassment", {})
    leaked = train["prompt_id"][1]
    assert leaked not in set(df["prompt_id"]) and df.height == 2 * len(cfg.study.seeds)
    assert dropped["response_leakage"] == len(cfg.study.seeds)
    assert screened.filter("flagged").select("prompt_id", "seed").sort("seed").rows() == [
        (leaked, s) for s in sorted(cfg.study.seeds)
    ]
