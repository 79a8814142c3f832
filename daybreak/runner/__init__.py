"""When and how assets run: runs, materialization, retries, history, freshness, alerts, schedules.

May import assets, ingest, warehouse and the shared modules; never views (observers attach to a
run through runner.execute.RunObserver).
"""
