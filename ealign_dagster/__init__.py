"""ealign: emergent alignment from constitutional fine-tuning, as a Dagster pipeline."""
