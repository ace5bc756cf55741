"""Every model feature, defined once for every engine (`definitions`), and the historical statistics by
zone pair and zone x hour that training folds and serving read (`store`).
"""
