"""Command-line tools, grouped by who runs them: ``participant`` (the workshop itself: JupyterLab, training, the sweep,
the headless run, the hosted setup), ``instructor`` (the day before: the GPU rehearsal, the offline wheelhouse,
screenshots), ``maintainer`` (rebuilding what the repository ships) and ``ci`` (checks CI runs). Each runs as
``python -m scripts.<group>.<name>`` or by its path; a script imports another one as a module, never by file path."""
