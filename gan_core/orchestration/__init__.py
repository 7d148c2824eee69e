"""Orchestration: sweep expansion (``sweep``), one run (``job``), where runs execute
(``executors``) and a whole sweep into its reports (``runner``)."""
