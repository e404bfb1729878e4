"""Generated protobuf and gRPC stubs for the taskrun.v1 contract. Do not edit."""
