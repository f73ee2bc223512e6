"""The pre-registered hyper-parameter sweep: the grid file, its runs and verdicts (``study``), and its figures
(``plots``). Imports ``utils.evaluation`` and below."""
