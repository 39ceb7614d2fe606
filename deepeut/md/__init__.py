"""Stage package: md (see the issues for what lands here)."""
