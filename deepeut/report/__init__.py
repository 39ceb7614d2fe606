"""The run report (report.md / report.html) of stage=pipeline and stage=main."""

from deepeut.report.report import write_report

__all__ = ["write_report"]
