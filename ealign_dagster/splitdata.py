"""Reading the prompts table back with its embeddings, for the splits and their checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ealign_dagster.embeddings import embed
from ealign_dagster.store import Store


def load_prompts_with_vectors(store: Store, model: str, log=None) -> tuple[pd.DataFrame, np.ndarray]:
    if not store.path.exists():
        raise ValueError(f"{store.path}: the prompts table does not exist yet: materialize `prompts` first")
    frame = store.query("SELECT * EXCLUDE (run_id, asset_key, partition_key, input_versions) FROM prompts ORDER BY prompt_id")
    if frame.empty:
        raise ValueError("the prompts table is empty: materialize `prompts` first")
    return frame, embed(frame["text"].tolist(), model, log=log)
