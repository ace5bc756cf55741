"""From a TLC file to clean trips: finding and checking inputs, reading any variant into the canonical table,
the repair and quarantine rules (`validation`) and the validate job that applies them (`quality`); the
download, synthetic and PostgreSQL sources.
"""
