"""Streaming predictions: landed event files admitted once (`landing`), the Structured Streaming query that
scores them exactly once (`predictions`), and `replay`, which lands a month as events.
"""
