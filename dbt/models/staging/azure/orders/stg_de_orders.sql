-- DE order lines, one row per order line: see macros/stg_orders.sql.
{{ stg_orders('de') }}
