"""Stage package: analysis (see the issues for what lands here)."""
