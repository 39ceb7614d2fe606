"""Stage package: active_learning (see the issues for what lands here)."""
