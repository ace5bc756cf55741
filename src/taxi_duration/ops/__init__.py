"""Running the system: a Spark standalone cluster on loopback (`cluster`), the notebooks' environment, and the
benchmarks' measuring tools (`bench`).
"""
