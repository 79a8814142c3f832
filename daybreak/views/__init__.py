"""What people see: the command line, status data, the status page, lineage, the Hamilton UI.

May import every other room.
"""
