"""The engines a job runs on: frames on pandas, DuckDB or Spark behind one interface (`frames`), and the
one place a Spark session is built and checked (`spark`).
"""
