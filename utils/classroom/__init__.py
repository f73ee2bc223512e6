"""What surrounds the recipe on the workshop day: the day-before check of a machine (``preflight``), the checks of the
participants' exercises (``exercises``) and the notebooks' display helpers (``display``). The top layer: may import
every other package of utils; none imports it."""
