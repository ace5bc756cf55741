"""What every stage shares: settings, errors, the canonical trip schema, months, atomic outputs, storage.

The bottom layer: it imports nothing else of the package.
"""
