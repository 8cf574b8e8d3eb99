"""The report (stage 5): one self-contained HTML page of a run's figures and tables.

Reads ``analysis/``, ``compare/``, summaries and the run's record; writes ``report.html``.
``html`` assembles the page, ``sections`` its tables, ``svg`` the inline charts, ``fits`` the law
tables. Imports the analysis and the stages below it.
"""
