"""Tools for integrators and QA, not needed to serve: demo, QA runs, the in-process harness, simulators,
the adapter scaffold and the conformance kit."""
