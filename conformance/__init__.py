"""A differential conformance suite: the same scenarios through a real Prefect 3.9.1 server
(REST) and taskrun (gRPC), compared field by field. Run it with `make conformance`; it is not
part of `make test`, because it installs Prefect from PyPI into a virtualenv of its own."""
