"""Pareto-front reports of a study: an offline HTML page, markdown, CSV/Parquet, PNGs and the
winners as YAML specs.

>>> from archsearch.report import write_report
>>> files = write_report(results, "reports/my-study")   # results: a StudyResults
>>> files.index_html                                     # open it in a browser, offline
"""

from ._compute import ReportData, ZooReference, compute_report, mixer_label
from ._demo import DEMO_OBJECTIVES, demo_results, demo_spec
from ._format import slug
from ._results import STATES, Objective, StudyResults, memory_study
from ._winners import command_path as winner_command_path
from ._write import ReportFiles, report_folder_problem, write_report

__all__ = [
    "DEMO_OBJECTIVES",
    "STATES",
    "Objective",
    "ReportData",
    "ReportFiles",
    "StudyResults",
    "ZooReference",
    "compute_report",
    "demo_results",
    "demo_spec",
    "memory_study",
    "mixer_label",
    "report_folder_problem",
    "slug",
    "winner_command_path",
    "write_report",
]
