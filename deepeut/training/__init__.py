"""Stage package: training (see the issues for what lands here)."""
