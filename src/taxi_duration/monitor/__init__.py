"""Watching models after training: `evaluate` on any months (`scorecard`), drift between windows (`drift`,
`drift_report`) and the dashboard.
"""
