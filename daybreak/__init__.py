"""daybreak's support code, one room per stage (docs/ARCHITECTURE.md, "The rooms").

ingest/ and warehouse/ do the work, assets/ finds it in the graph, runner/ runs it, views/ shows
it; the modules at this level (clock, config, errors, files, logs, progress, state, venv) are
shared by all.
"""

import os as _os

# Hamilton imports an extension for every dataframe library it finds installed (dask, pyspark,
# pandas ...) when hamilton.driver is first imported: about a second of every command since
# dask and pyspark came in, for extensions no daybreak asset uses. Off, unless asked for.
_os.environ.setdefault("HAMILTON_AUTOLOAD_EXTENSIONS", "0")
