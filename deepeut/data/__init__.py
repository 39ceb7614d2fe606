"""Stage package: data (see the issues for what lands here)."""
