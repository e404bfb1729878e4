"""Use cases: each opens one transaction, calls orchestration and the repositories, and returns
domain objects. The gRPC layer above knows nothing of SQL; the repositories below know nothing
of transactions' boundaries."""
