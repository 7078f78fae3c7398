"""Per-scope training pools and the evaluation set, with every filtered prompt accounted for.

The training pools depend on the training sources and the reference benchmarks (prompts.reference)
only; every other benchmark is sampled on its own and, where one of its prompts nearly duplicates a
training prompt, loses that prompt (audited as eval_contamination): adding a benchmark changes no
training row and no other benchmark's sample."""

from __future__ import annotations

import random

import numpy as np
import polars as pl

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import Taxonomy

SPLIT_COLUMNS = [
    "scope",
    "role",
    "prompt_id",
    "source",
    "source_version",
    "category",
    "category_role",
    "held_out",
    "functional_category",
    "held_out_similarity",
    "held_out_probability",
    "eval_similarity",
]
AUDIT_COLUMNS = ["scope", "prompt_id", "source", "category", "reason", "score", "threshold"]
# The held-out classifier. C=10 with balanced classes: flagged 4 of 6 hand-written chem/bio prompts at
# p >= 0.5 and none of the tiny profile's 111 harassment / illegal training prompts.
LEAKAGE_CLASSIFIER = dict(C=10.0, class_weight="balanced", max_iter=2000)


def _sample(ids: list[str], n: int, seed: str) -> list[str]:
    """Seeded sample that does not depend on input order."""
    ids = sorted(ids)
    return ids if len(ids) <= n else sorted(random.Random(seed).sample(ids, n))


def stratified_quota(available: dict[str, int], total: int) -> dict[str, int]:
    """How many of `total` to draw per category: as equal as the pools allow. Categories are filled
    smallest pool first, so a category with fewer prompts than its share leaves the rest to the others
    and the remainder of an uneven division goes to the largest pools. Sums to less than `total` only
    when every pool is exhausted."""
    order = sorted(available, key=lambda c: (available[c], c))
    quota, left = {}, total
    for i, cat in enumerate(order):
        quota[cat] = min(available[cat], left // (len(order) - i))
        left -= quota[cat]
    for cat in reversed(order):  # only when a later pool ran out: top up any with prompts to spare
        extra = min(left, available[cat] - quota[cat])
        quota[cat] += extra
        left -= extra
    return quota


def max_similarity(vecs: np.ndarray, rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Each selected row's highest cosine similarity to any anchor row (0 when no anchors)."""
    if not rows.any() or not anchors.any():
        return np.zeros(int(rows.sum()))
    return (vecs[rows] @ vecs[anchors].T).max(axis=1)


def _mask(frame: pl.DataFrame, expr: pl.Expr) -> np.ndarray:
    """A boolean expression over a frame as a numpy mask (null counts as False)."""
    return frame.select(expr.fill_null(False)).to_series().to_numpy()


def reference(prompts: pl.DataFrame) -> np.ndarray:
    """Prompts of the reference benchmarks (every evaluation prompt in a frame without the column)."""
    if "reference" not in prompts.columns:
        return _mask(prompts, pl.col("role") == "eval")
    return _mask(prompts, pl.col("reference"))


def held_out_anchors(prompts: pl.DataFrame, held_out: str | None) -> np.ndarray:
    """Prompts of the held-out category from the training sources and the reference benchmarks."""
    if held_out is None:
        return np.zeros(prompts.height, dtype=bool)
    basis = reference(prompts) | _mask(prompts, pl.col("role") == "train")
    return basis & _mask(prompts, (pl.col("category") == held_out) & pl.col("assigned"))


def held_out_probability(
    prompts: pl.DataFrame, vecs: np.ndarray, held_out: str | None, queries: np.ndarray
) -> np.ndarray:
    """Probability that each query embedding belongs to the held-out category, from a logistic
    regression on embeddings fit to the reference benchmarks' labels (expert labels, and independent
    of the training pools under test). Zeros when there is no held-out category."""
    labelled = reference(prompts) & _mask(prompts, pl.col("category").is_not_null())
    cats = prompts.filter(labelled)["category"].to_numpy()
    if held_out is None or len(queries) == 0 or held_out not in set(cats) or len(set(cats)) < 2:
        return np.zeros(len(queries))
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(**LEAKAGE_CLASSIFIER).fit(vecs[labelled], cats)
    return clf.predict_proba(queries)[:, list(clf.classes_).index(held_out)]


def held_out_scores(
    prompts: pl.DataFrame, vecs: np.ndarray, held_out: str | None, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What the leakage filter decides on, for each query embedding (a training prompt, a probe, an
    SFT response): its highest cosine to a held-out-category prompt and the held-out classifier's
    probability. Zeros when there is no held-out category."""
    anchors = held_out_anchors(prompts, held_out)
    sim = (queries @ vecs[anchors].T).max(axis=1) if anchors.any() and len(queries) else np.zeros(len(queries))
    return sim, held_out_probability(prompts, vecs, held_out, queries)


def leaking(sim: np.ndarray, p: np.ndarray, cfg: SplitsConfig) -> tuple[np.ndarray, np.ndarray]:
    """The filter's rule: (near, looks) = at or over leakage_threshold; else at or over
    leakage_probability. Either one is held-out-category content."""
    near = np.asarray(sim) >= cfg.leakage_threshold
    return near, ~near & (np.asarray(p) >= cfg.leakage_probability)


def build_split(
    scope: str,
    prompts: pl.DataFrame,
    vecs: np.ndarray,
    taxonomy: Taxonomy,
    cfg: SplitsConfig,
    per_category: dict[str, int] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Rows of `splits` and `split_audit` for one scope, plus drop counts per reason. per_category:
    the evaluation sample size per category of a benchmark source (default cfg.eval_per_category)."""
    spec = taxonomy.scopes[scope]
    covers_all = set(spec.categories) == set(taxonomy.categories)
    audit: list[pl.DataFrame] = []

    def drop(mask: np.ndarray, reason: str, score: np.ndarray, threshold: float | None = None) -> None:
        audit.append(
            prompts.filter(mask).select(
                pl.lit(scope).alias("scope"),
                "prompt_id",
                "source",
                "category",
                pl.lit(reason).alias("reason"),
                pl.Series("score", score, dtype=pl.Float64, nan_to_null=True),
                pl.lit(threshold, dtype=pl.Float64).alias("threshold"),
            )
        )

    is_eval, is_train, ref = (
        _mask(prompts, pl.col("role") == "eval"),
        _mask(prompts, pl.col("role") == "train"),
        reference(prompts),
    )
    in_bounds = _mask(prompts, pl.col("n_chars").is_between(cfg.min_chars, cfg.max_chars))
    confidence = prompts["label_confidence"].to_numpy()
    alive = is_train.copy()
    n_chars = prompts["n_chars"].to_numpy()
    short, long = alive & (n_chars < cfg.min_chars), alive & (n_chars > cfg.max_chars)
    drop(short, "length", n_chars[short], cfg.min_chars)  # the bound it broke
    drop(long, "length", n_chars[long], cfg.max_chars)
    alive &= in_bounds

    off_scope = alive & ~_mask(prompts, pl.col("category").is_in(spec.categories))
    drop(off_scope, "label", confidence[off_scope])
    alive &= ~off_scope
    if not covers_all:  # low-confidence assignments stay out of narrow scopes
        weak = alive & ~_mask(prompts, pl.col("assigned"))
        drop(weak, "unassigned", confidence[weak])
        alive &= ~weak

    held_sim, held_p = np.zeros(prompts.height), np.zeros(prompts.height)
    held_sim[alive], held_p[alive] = held_out_scores(prompts, vecs, spec.held_out, vecs[alive])
    near, looks = (alive & m for m in leaking(held_sim, held_p, cfg))
    drop(near, "held_out_similarity", held_sim[near], cfg.leakage_threshold)
    drop(looks, "held_out_classifier", held_p[looks], cfg.leakage_probability)
    leak = near | looks
    if cfg.leakage_action == "drop":
        alive &= ~leak

    # near-duplicates of a reference benchmark leave training; other benchmarks lose theirs (below)
    eval_sim = np.zeros(prompts.height)
    eval_sim[alive] = max_similarity(vecs, alive, ref)
    dup = alive & (eval_sim >= cfg.contamination_threshold)
    drop(dup, "contamination", eval_sim[dup], cfg.contamination_threshold)
    alive &= ~dup

    pool = prompts.filter(alive)
    if covers_all:
        by_cat = {cat: pool.filter(pl.col("category") == cat)["prompt_id"].to_list() for cat in spec.categories}
        quota = stratified_quota({cat: len(ids) for cat, ids in by_cat.items()}, cfg.train_examples)
        train_ids = [
            pid for cat in spec.categories for pid in _sample(by_cat[cat], quota[cat], f"{cfg.seed}:{scope}:{cat}")
        ]
    else:
        train_ids = _sample(pool["prompt_id"].to_list(), cfg.train_examples, f"{cfg.seed}:{scope}")

    # The evaluation set does not depend on the scope: same prompts, roles flagged per scope.
    # an evaluation prompt whose category is a low-confidence guess is not scored under it (audited)
    contaminated, train_sim = eval_contamination(vecs, is_eval & ~ref, is_train, cfg.contamination_threshold)
    drop(contaminated, "eval_contamination", train_sim[contaminated], cfg.contamination_threshold)
    guessed = is_eval & ~contaminated & ~_mask(prompts, pl.col("assigned"))
    drop(guessed, "unassigned_eval", confidence[guessed], None)
    usable = (
        is_eval & ~guessed & ~contaminated & in_bounds & _mask(prompts, pl.col("category").is_in(taxonomy.categories))
    )
    eval_ids = eval_sample(prompts.filter(usable), taxonomy, cfg, per_category or {})

    sims = {"held_out_similarity": held_sim, "held_out_probability": held_p, "eval_similarity": eval_sim}
    picked = pl.DataFrame(
        {"prompt_id": train_ids + eval_ids, "role": ["train"] * len(train_ids) + ["eval"] * len(eval_ids)},
        schema={"prompt_id": pl.String, "role": pl.String},
    )
    roles = {c: taxonomy.category_role(scope, c) for c in taxonomy.categories}
    out = picked.join(
        prompts.drop("role").with_columns(**sims), on="prompt_id", how="left", maintain_order="left"
    ).with_columns(
        *(pl.when(pl.col("role") == "train").then(c).alias(c) for c in sims),
        scope=pl.lit(scope),
        category_role=pl.col("category").replace_strict(roles, return_dtype=pl.String),
        held_out=(pl.col("category") == pl.lit(spec.held_out, dtype=pl.String)).fill_null(False),
    )
    audit_rows = pl.concat(audit).select(AUDIT_COLUMNS)
    counts = dict(audit_rows["reason"].value_counts(sort=True).iter_rows())
    if leak.any() and cfg.leakage_action == "keep":
        counts["held_out_leakage_kept"] = int(leak.sum())
    return out.select(SPLIT_COLUMNS), audit_rows, counts


def eval_contamination(
    vecs: np.ndarray, candidates: np.ndarray, train: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation prompts that nearly duplicate a prompt of any training source (mask), and every
    prompt's highest similarity to one (0 outside the candidates)."""
    sim = np.zeros(len(candidates))
    sim[candidates] = max_similarity(vecs, candidates, train)
    return candidates & (sim >= threshold), sim


def eval_sample(usable: pl.DataFrame, taxonomy: Taxonomy, cfg: SplitsConfig, per_category: dict[str, int]) -> list[str]:
    """The evaluation prompt ids: per benchmark source and category, a sample seeded by the source's
    name and the category, so that no other source changes it."""
    return [
        pid
        for source in sorted(usable["source"].unique())
        for cat in taxonomy.categories
        for pid in _sample(
            usable.filter((pl.col("source") == source) & (pl.col("category") == cat))["prompt_id"].to_list(),
            per_category.get(source, cfg.eval_per_category),
            f"{cfg.seed}:eval:{source}:{cat}",
        )
    ]


def load_prompts_with_vectors(store, model: str, cache_dir=None, log=None) -> tuple[pl.DataFrame, np.ndarray]:
    """The prompts table and its embeddings, in prompt_id order."""
    from ealign_dagster.core.embeddings import embed

    if not store.path.exists():
        raise ValueError(f"{store.path}: the prompts table does not exist yet: materialize `prompts` first")
    frame = store.table("prompts", "ORDER BY prompt_id")
    if frame.is_empty():
        raise ValueError("the prompts table is empty: materialize `prompts` first")
    return frame, embed(frame["text"].to_list(), model, cache_dir, log=log)


def scope_tables(store, scope: str, cfg, taxonomy: Taxonomy, cache_dir=None, log=None) -> tuple[dict, str, dict, str]:
    """One scope's split, its audit and the leakage filter's recall on the probe set: (tables, the
    split's data version = its training pool's, drops per reason, the probe file's version)."""
    from ealign_dagster.core.store import data_version
    from ealign_dagster.splits.leakage import measure_probes

    frame, vecs = load_prompts_with_vectors(store, cfg.prompts.embedding_model, cache_dir, log)
    sizes = {s.name: s.per_category for s in cfg.prompts.sources if s.role == "eval" and s.per_category}
    rows, audit, drops = build_split(scope, frame, vecs, taxonomy, cfg.splits, sizes)
    train = rows.filter(pl.col("role") == "train")
    version = data_version(train)  # the training pool's: a new or changed benchmark retrains nothing
    if log:
        log(f"{scope}: {train.height} train; dropped {drops}")
    probes, recall, probes_version = measure_probes(scope, frame, vecs, taxonomy, cfg.splits,
                                                    cfg.prompts.embedding_model, cache_dir)  # fmt: skip
    tables = {"splits": rows.with_columns(split_version=pl.lit(version)), "split_audit": audit,
              "leakage_probes": probes, "leakage_recall": recall}  # fmt: skip
    return tables, version, drops, probes_version
