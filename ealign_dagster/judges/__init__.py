"""Judges stage: the judges of a (prompt, response) pair, each registered once with its name and
version (prefix list, embedding classifier, LLM on an endpoint); their validation on held-back human
labels; the `judgments` of every model's answers; and agreement between judges (Cohen's kappa)."""

from ealign_dagster.judges import embedding, llm, prefix  # noqa: F401  (registers the judges)
