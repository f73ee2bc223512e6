"""scripts/participant/run_workshop.py: executed notebooks show progress bars as their final state, not an empty widget."""

import importlib

import nbformat

from utils.recipe.config import PROJECT_ROOT


def _script():
    return importlib.import_module("scripts.participant.run_workshop")


def _notebook_with_bar(value: float, maximum: float, other_widget: bool = False):
    """A notebook as nbclient saves it: a widget-view output and the widgets' final state in the metadata."""
    nb = nbformat.v4.new_notebook()
    outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "HBox(children=(HTML(value=''), FloatProgress(value=0.0, max=50.0), HTML(value='')))",
        "application/vnd.jupyter.widget-view+json": {"model_id": "box", "version_major": 2, "version_minor": 0}})]
    if other_widget:
        outputs.append(nbformat.v4.new_output("display_data", data={
            "text/plain": "IntSlider(value=3)",
            "application/vnd.jupyter.widget-view+json": {"model_id": "slider", "version_major": 2, "version_minor": 0}}))
    nb.cells.append(nbformat.v4.new_code_cell("load()", outputs=outputs))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]}},
        "left": {"model_name": "HTMLModel", "state": {"value": "Loading weights: 100%"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": value, "max": maximum}},
        "right": {"model_name": "HTMLModel", "state": {"value": " 50/50 [00:00&lt;00:00, 1200.5it/s]"}},
        "slider": {"model_name": "IntSliderModel", "state": {"value": 3}},
    }}}
    return nb


def test_a_finished_bar_becomes_a_text_line_with_its_final_state():
    nb = _notebook_with_bar(50, 50, other_widget=True)
    assert _script().progress_widgets_as_text(nb) == 1
    bar, slider = nb.cells[0].outputs
    assert bar["data"] == {"text/plain": "Loading weights: 100% |##########| 50/50 [00:00<00:00, 1200.5it/s]"}
    assert "application/vnd.jupyter.widget-view+json" in slider["data"]  # not a progress bar: left alone


def test_a_bar_that_stopped_early_shows_where_it_stopped():
    nb = _notebook_with_bar(20, 50)
    _script().progress_widgets_as_text(nb)
    assert nb.cells[0].outputs[0]["data"]["text/plain"].startswith("Loading weights: 100% |####      |")
