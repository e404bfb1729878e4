"""Development-time helpers shared by the tests and the benchmarks (never shipped in the wheel).

Both need scratch databases on a Postgres server and real server processes on free ports; this
is the one place that knows how.
"""
