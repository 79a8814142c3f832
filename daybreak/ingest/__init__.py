"""Getting data in: landing-zone sources, the sync into the Parquet lake, the budget workbook.

May import the shared modules only (daybreak.clock, config, errors, files, logs, state).
"""
