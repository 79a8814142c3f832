"""What an asset is and where the assets are: the catalogue read off the Hamilton graph.

May import dataflows/ (the catalogue only), ingest, warehouse and the shared modules.
"""
