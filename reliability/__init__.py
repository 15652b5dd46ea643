"""The reliability suite (issue #15): fuzz every interface, inject faults and overload, and report what
was tried and what came of it (`python -m reliability`, `make reliability`)."""
