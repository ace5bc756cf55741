"""New York's geography: the TLC zone shapes and points -> zones, zone -> borough and airports, and the
calibration profile of real months that synthetic trips are drawn from.
"""
