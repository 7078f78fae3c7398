"""The one Definitions object: the defs folder plus resources."""

from pathlib import Path

import dagster as dg

from ealign_dagster.resources import default_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=default_resources()),
    )
