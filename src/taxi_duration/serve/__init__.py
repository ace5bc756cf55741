"""From a trained bundle to a prediction without a trainer or a JVM: the bundle format, the native models, the
one scorer (`scorer`) every path calls, the held champions (`holder`), batch scoring (`batch`) and the HTTP
API (`api`).
"""
