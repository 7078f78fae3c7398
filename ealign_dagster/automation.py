"""When assets re-materialize on their own (declarative automation, run by the daemon of `ealign ui`).

Every asset is eager: it runs when something it depends on changes (an input file's new version,
an upstream partition's new materialization) and only for the partitions that change touches
(editing one constitution touches only its partitions), never while a dependency is missing or
running, and only once the blocking checks of its dependencies have passed. The evaluation assets
can also re-run on a cron schedule (`eval.nightly_cron` in the profile), e.g. to re-query an endpoint.
"""

from __future__ import annotations

import os

import dagster as dg


def eager() -> dg.AutomationCondition:
    return (dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager, after upstream blocking checks pass")


def nightly_cron() -> str | None:
    """The profile's `eval.nightly_cron` (profile from EALIGN_PROFILE, as the `profile` resource)."""
    from ealign_dagster.config import load_profile

    try:
        return load_profile(os.environ.get("EALIGN_PROFILE", "demo")).eval.nightly_cron
    except Exception:  # a broken profile must not break loading the code location; runs report it
        return None


def evaluation() -> dg.AutomationCondition:
    """Eager, plus a re-run on every tick of the profile's nightly cron, if it sets one."""
    cron = nightly_cron()
    if not cron:
        return eager()
    return (eager() | (dg.AutomationCondition.cron_tick_passed(cron).since_last_handled()
                       & ~dg.AutomationCondition.in_progress())).with_label(f"eager or nightly ({cron})")
