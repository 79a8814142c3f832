"""daybreak's support code, one room per stage (docs/ARCHITECTURE.md, "The rooms").

ingest/ and warehouse/ do the work, assets/ finds it in the graph, runner/ runs it, views/ shows
it; the modules at this level (clock, config, errors, files, logs, state, venv) are shared by all.
"""
