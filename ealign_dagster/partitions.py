"""Partitions, defined once."""

import dagster as dg

from ealign_dagster.inputs import load_taxonomy

# Scopes come from assets/taxonomy.yaml at code-location load (reload after adding a scope).
SCOPES = dg.StaticPartitionsDefinition(list(load_taxonomy().scopes))
