"""Partitions, defined once."""

import dagster as dg

from ealign_dagster.inputs import constitution_paths, load_taxonomy

# Read at code-location load: reload the location after adding a scope or a constitution file.
SCOPES = dg.StaticPartitionsDefinition(list(load_taxonomy().scopes))
CONSTITUTIONS = dg.StaticPartitionsDefinition([p.stem for p in constitution_paths()])
CONSTITUTION_X_SCOPE = dg.MultiPartitionsDefinition({"constitution": CONSTITUTIONS, "scope": SCOPES})
