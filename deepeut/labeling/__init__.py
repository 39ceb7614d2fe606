"""Stage package: labeling (see the issues for what lands here)."""
