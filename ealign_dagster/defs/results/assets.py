"""Result tables over all models: judge validation, safety rates with tests, the emergent-alignment
table, persona scores, projectability and the known-persona validation."""

import dagster as dg

from ealign_dagster.automation import eager
import pandas as pd

from ealign_dagster.defs.cai.assets import base_model
from ealign_dagster.defs.evaluation.assets import (
    base_judgments,
    base_persona_responses,
    judgments,
    persona_responses,
)
from ealign_dagster.defs.sources.assets import constitution_files, persona_item_bank
from ealign_dagster.meta import table_metadata
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage, data_version

ALL = dg.AllPartitionMapping()
GROUP = dict(group_name="results", pool="duckdb", kinds={"duckdb"}, automation_condition=eager())


def _models(db) -> pd.DataFrame:
    """model_id, adapter_id, constitution, scope for the base and every registered adapter."""
    ad = db.query("SELECT adapter_id AS model_id, adapter_id, constitution, scope FROM adapters ORDER BY constitution, scope")
    base = pd.DataFrame([{"model_id": "base", "adapter_id": None, "constitution": None, "scope": None}])
    return pd.concat([base, ad], ignore_index=True)


def _upstream(db, *assets: str) -> dict:
    """{asset[partition]: data version} of what the upstream assets last wrote: the input versions."""
    m = db.query(f"SELECT asset_key, partition_key, data_version FROM materializations WHERE asset_key IN ({','.join('?' * len(assets))})",
                 list(assets))
    return {f"{a}[{p}]" if p else a: v for a, p, v in zip(m["asset_key"], m["partition_key"], m["data_version"])}


def _md(df: pd.DataFrame, cols: list[str], n: int = 20) -> dg.MetadataValue:
    out = df[cols].head(n).copy()
    for c in out.select_dtypes("float").columns:
        out[c] = out[c].round(3)
    return dg.MetadataValue.md(out.to_markdown(index=False))


@dg.asset(**GROUP, check_specs=[dg.AssetCheckSpec(
    "embedding_beats_prefix", asset="judge_validation",
    description="The embedding judge beats the prefix list on held-back accuracy and ROC-AUC (warning only: a weaker judge is a finding)")])
def judge_validation(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
    """Accuracy and ROC-AUC of the offline judges on held-back human-labelled refusal data (pyrit);
    the embedding judge must beat the prefix baseline."""
    from ealign_dagster.judges import REFUSAL_DATA, validate_judges
    from ealign_dagster.paths import file_version, pack_file

    df = validate_judges()
    inputs = {f"{p}/{r}": file_version(pack_file(p, r)) for p, r in REFUSAL_DATA}
    version = data_version(df)
    store.get().replace("judge_validation", df, {}, Lineage(context.run_id, "judge_validation", "", inputs), version)
    v = df.set_index("judge")
    for line in df.round(3).to_string(index=False).splitlines():
        context.log.info(line)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(df), "table": _md(df, list(df.columns)),
                  "embedding_auc": float(v.loc["embedding", "roc_auc"]), "prefix_auc": float(v.loc["prefix", "roc_auc"]),
                  "data_version": version},
        check_results=[dg.AssetCheckResult(
            check_name="embedding_beats_prefix", severity=dg.AssetCheckSeverity.WARN, passed=bool(v.loc["embedding", "roc_auc"] > v.loc["prefix", "roc_auc"]
                                                            and v.loc["embedding", "accuracy"] > v.loc["prefix", "accuracy"]),
            metadata={"embedding_auc": float(v.loc["embedding", "roc_auc"]), "prefix_auc": float(v.loc["prefix", "roc_auc"])})],
    )


def _judgment_frame(db) -> pd.DataFrame:
    j = db.query("SELECT * EXCLUDE (raw, run_id, asset_key, partition_key, input_versions) FROM judgments")
    if j.empty or not (j["model_id"] == "base").any():
        raise ValueError("judgments has no rows for the base model: materialize base_judgments first")
    return j


@dg.asset(deps=[dg.AssetDep(judgments, partition_mapping=ALL), base_judgments], **GROUP)
def safety_scores(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Rates per model x judge x benchmark x category with Wilson CIs, exact McNemar vs base, Holm;
    plus Cohen's kappa between judges (`judge_agreement`)."""
    from ealign_dagster.evaluation import judge_agreement, safety_rows
    from ealign_dagster.inputs import load_taxonomy

    db = store.get()
    j = _judgment_frame(db)
    models = _models(db)
    df = safety_rows(j, models, load_taxonomy())
    keys = j.drop_duplicates(["model_id", "judge"])
    df = df.merge(keys[["model_id", "judge", "judge_version", "adapter_id", "generation_version"]], on=["model_id", "judge"], how="left")
    df["eval_version"] = df["model_id"].map(db.query("SELECT model_id, any_value(eval_version) AS v FROM generations GROUP BY ALL").set_index("model_id")["v"])
    agree = judge_agreement(j)
    inputs = _upstream(db, "judgments", "base_judgments")
    version = data_version(df)
    db.replace_many([("safety_scores", df, {}), ("judge_agreement", agree, {})], Lineage(context.run_id, "safety_scores", "", inputs), version)
    overall = df[(df["category"] == "all")].sort_values(["judge", "benchmark", "model_id"])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(df), "overall": _md(overall, ["model_id", "judge", "benchmark", "metric", "n", "rate", "ci_low", "ci_high", "p_holm"], 60),
                  "judge_agreement": _md(agree, list(agree.columns)), "data_version": version},
    )


@dg.asset(deps=[dg.AssetDep(judgments, partition_mapping=ALL), base_judgments], **GROUP)
def emergent_alignment(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Per constitution x narrow scope: the change vs base on the trained, held-out and other
    categories and in over-refusal, with paired bootstrap CI, exact McNemar and Holm."""
    from ealign_dagster.evaluation import emergent_rows
    from ealign_dagster.inputs import load_taxonomy

    cfg = profile.load()
    db = store.get()
    j = _judgment_frame(db)
    judge = cfg.eval.primary_judge
    if judge not in set(j["judge"]):
        raise ValueError(f"eval.primary_judge '{judge}' has no judgments; add it to eval.judges")
    df = emergent_rows(j, _models(db), load_taxonomy(), judge, cfg.eval.bootstrap_resamples, cfg.eval.seed)
    jv = j[j["judge"] == judge]["judge_version"].iloc[0]
    ev = db.query("SELECT any_value(eval_version) AS v FROM generations")["v"].iloc[0]
    df = df.assign(judge_version=jv, adapter_id=df["model_id"], eval_version=ev)
    version = data_version(df)
    db.replace("emergent_alignment", df, {}, Lineage(context.run_id, "emergent_alignment", "", _upstream(db, "judgments", "base_judgments")), version)
    for line in df[["constitution", "scope", "category_role", "n", "base_rate", "model_rate", "delta", "ci_low", "ci_high", "p_holm"]].round(3).to_string(index=False).splitlines():
        context.log.info(line)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(df), "table": _md(df, ["constitution", "scope", "category_role", "metric", "n", "base_rate", "model_rate", "delta", "ci_low", "ci_high", "p_holm"], 80),
                  "judge": judge, "data_version": version},
    )


def _persona_frame(db) -> pd.DataFrame:
    items = db.query("SELECT * EXCLUDE (run_id, asset_key, partition_key, input_versions) FROM persona_items WHERE persona = ''")
    if items.empty or not (items["model_id"] == "base").any():
        raise ValueError("persona_items has no rows for the base model: materialize base_persona_responses first")
    return items


@dg.asset(deps=[dg.AssetDep(persona_responses, partition_mapping=ALL), base_persona_responses], **GROUP)
def persona_scores(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Per model x method x subscale: mean keyed agreement (-1..1) with a bootstrap CI over items and
    the ambiguous-reply rate."""
    from ealign_dagster.evaluation import paraphrase_gaps, subscale_scores

    cfg = profile.load()
    db = store.get()
    items = _persona_frame(db)
    df = subscale_scores(items, cfg.eval.bootstrap_resamples, cfg.eval.seed)
    ids = items.drop_duplicates("model_id").set_index("model_id")
    df["adapter_id"] = df["model_id"].map(ids["adapter_id"])
    df["item_bank_version"] = df["model_id"].map(ids["item_bank_version"])
    version = data_version(df)
    db.replace("persona_scores", df, {"persona": ""}, Lineage(context.run_id, "persona_scores", "", _upstream(db, "persona_responses", "base_persona_responses")), version)
    gaps = paraphrase_gaps(items)
    wide = df[df["method"] == "logprob"].pivot(index="model_id", columns="subscale", values="mean").round(2).reset_index()
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(df), "logprob_profile": _md(wide, list(wide.columns), 20),
                  "paraphrase_gaps": _md(gaps, list(gaps.columns), 40), "data_version": version},
    )


@dg.asset(deps=[dg.AssetDep(persona_responses, partition_mapping=ALL), base_persona_responses, constitution_files], **GROUP)
def projectability(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Per adapter: the signature of its constitution's framework (target minus rivals) with a
    bootstrap CI, its change from base (paired over items) and the profile fit."""
    from ealign_dagster.evaluation import projectability_rows
    from ealign_dagster.inputs import load_constitutions, load_item_bank

    cfg = profile.load()
    db = store.get()
    items = _persona_frame(db)
    bank = load_item_bank()
    df = projectability_rows(items, _models(db), bank, load_constitutions(), cfg.eval.bootstrap_resamples, cfg.eval.seed)
    ids = items.drop_duplicates("model_id").set_index("model_id")
    df["adapter_id"] = df["model_id"].map(ids["adapter_id"])
    df["item_bank_version"] = df["model_id"].map(ids["item_bank_version"])
    version = data_version(df)
    db.replace("projectability", df, {}, Lineage(context.run_id, "projectability", "", _upstream(db, "persona_responses", "base_persona_responses")), version)
    ranked = df[df["model_id"] != "base"].sort_values(["method", "signature_change"], ascending=[True, False])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(df), "ranking": _md(ranked, ["method", "constitution", "scope", "signature", "signature_change", "change_ci_low", "change_ci_high", "profile_fit"], 30),
                  "data_version": version},
    )


@dg.asset(deps=[base_model, constitution_files, persona_item_bank], **GROUP)
def persona_validation(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Known-persona check of the instrument: the base model system-prompted as each constitution's
    persona should land highest on that constitution's framework."""
    from ealign_dagster.chat import load_chat
    from ealign_dagster.evaluation import persona_validation_rows, score_items, subscale_scores
    from ealign_dagster.inputs import constitution_paths, item_bank_path, load_constitutions, load_item_bank
    from ealign_dagster.paths import file_version

    cfg = profile.load()
    db = store.get()
    bank = load_item_bank()
    cons = load_constitutions()
    mcfg = cfg.eval.model or cfg.student
    chat = load_chat(mcfg)
    bank_version = file_version(item_bank_path())
    con_versions = {p.stem: file_version(p) for p in constitution_paths()}
    frames = []
    for name, con in cons.items():
        df = score_items(chat, bank, None, con.persona, cfg.eval.persona_generate, cfg.eval.persona_sampling, cfg.eval.seed,
                         mcfg.batch_size, context.log.info)
        frames.append(df.assign(model_id="base", adapter_id=None, persona=name, item_bank_version=bank_version, model_version=chat.version))
    items = pd.concat(frames, ignore_index=True)
    scores = subscale_scores(items, cfg.eval.bootstrap_resamples, cfg.eval.seed).assign(adapter_id=None, item_bank_version=bank_version)
    val = persona_validation_rows(scores, bank, cons)
    val["item_bank_version"] = bank_version
    val["constitution_version"] = val["persona"].map(con_versions)
    inputs = {"item_bank": bank_version, "constitutions": con_versions, "model": chat.version}
    version = data_version(val)
    writes = [("persona_validation", val, {})]
    for name in cons:
        writes.append(("persona_items", items[items["persona"] == name], {"model_id": "base", "persona": name}))
        writes.append(("persona_scores", scores[scores["persona"] == name], {"model_id": "base", "persona": name}))
    db.replace_many(writes, Lineage(context.run_id, "persona_validation", "", inputs), version)
    logprob = val[val["method"] == "logprob"]
    context.log.info(f"known personas landing highest on their own framework (logprob): {int(logprob['lands_highest'].sum())}/{len(logprob)}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(val), "table": _md(val, ["persona", "method", "own_score", "best_other_framework", "best_other_score", "margin", "lands_highest"]),
                  "lands_highest_logprob": f"{int(logprob['lands_highest'].sum())}/{len(logprob)}", "data_version": version},
    )


@dg.asset(deps=[safety_scores, emergent_alignment, persona_scores, projectability, persona_validation, judge_validation], **GROUP)
def report(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """A self-contained HTML report with PNG plots under artifacts/reports/ (`ealign report` prints
    the latest); key tables and the per-category plot also show here."""
    import base64
    from datetime import datetime, timezone

    from ealign_dagster.paths import artifacts_dir
    from ealign_dagster.report import ReportData, model_labels, write_report

    cfg = profile.load()
    db = store.get()

    def q(sql):
        return db.query(sql)

    data = ReportData(
        safety=q("SELECT * FROM safety_scores"), emergent=q("SELECT * FROM emergent_alignment"),
        persona=q("SELECT * FROM persona_scores"), projectability=q("SELECT * FROM projectability"),
        persona_validation=q("SELECT * FROM persona_validation"), judge_validation=q("SELECT * FROM judge_validation"),
        judge_agreement=q("SELECT judge_a, judge_b, field, n, agreement, kappa FROM judge_agreement"),
        labels=model_labels(q("SELECT adapter_id, constitution, scope FROM adapters")), judge=cfg.eval.primary_judge,
    )
    inputs = _upstream(db, "safety_scores", "emergent_alignment", "persona_scores", "projectability", "persona_validation", "judge_validation")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = artifacts_dir() / "reports" / f"{stamp}-{context.run_id[:8]}"
    provenance = {"profile": cfg.name, "run": context.run_id, "models": len(data.labels), **inputs}
    path, pngs = write_report(data, out, f"ealign report: {cfg.name} profile", provenance)
    row = pd.DataFrame([{"path": str(path), "pngs": ",".join(str(p) for p in pngs.values()), "models": len(data.labels)}])
    version = data_version(row.drop(columns=["path", "pngs"]).assign(inputs=str(sorted(inputs.items()))))
    db.replace("reports", row, {"run_id": context.run_id}, Lineage(context.run_id, "report", "", inputs), version)
    png = base64.b64encode(pngs["safety_by_category"].read_bytes()).decode()
    context.log.info(f"report: {path}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "safety_by_category": dg.MetadataValue.md(f"![safety by category](data:image/png;base64,{png})"),
            "emergent_alignment": _md(data.emergent, ["constitution", "scope", "category_role", "delta", "ci_low", "ci_high", "p_holm"], 40),
            "projectability": _md(data.projectability[data.projectability.model_id != "base"].sort_values("signature_change", ascending=False),
                                  ["method", "constitution", "scope", "signature_change", "change_ci_low", "change_ci_high", "profile_fit"], 30),
            "models": len(data.labels),
        },
    )
