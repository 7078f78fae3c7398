"""The student and teacher models, built once into plain HF folders when they come from an offline
pack, and described (path, weights version, parameter count) for the `models` table."""

from __future__ import annotations

import polars as pl

from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import Home, home_relative


def base_model_rows(cfg: Profile, home: Home, log=print) -> pl.DataFrame:
    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat

    rows = []
    for role, m in (("student", cfg.student), ("teacher", cfg.teacher)):
        path, version, params = None, f"openai:{m.base_url}:{m.model}", None
        if m.backend == "local":
            path = (
                home_relative(models.build(m.model, home.models, log=log), home)
                if models.is_built(m.model)
                else m.model
            )
            chat = LocalChat(m, home)
            version, params = chat.version, sum(p.numel() for p in chat.model.parameters())
        rows.append({"model_id": m.model, "role": role, "backend": m.backend, "path": path,
                     "model_version": version, "parameters": params})  # fmt: skip
    return pl.DataFrame(rows, schema={"model_id": pl.String, "role": pl.String, "backend": pl.String,
                                      "path": pl.String, "model_version": pl.String, "parameters": pl.Int64})  # fmt: skip
