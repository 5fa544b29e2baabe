"""regstat: where a container registry's storage goes, and what can be deleted safely.

The package by stage; a module imports only from its own stage or earlier ones, never in a
circle (tests/test_architecture.py):

    base       errors, interrupts, progress, atomic, render, model, queries, durations
    snapshot/  the format: the contract the crawl writes and every command reads, hence
               before the sources and the crawl
    sources/   where a crawl reads from: storage_tree/, registry_api/, ecr, oci_layout
    crawl/     a source into a snapshot: driver, checkpoint, assemble, publish
    analysis/  a snapshot in DuckDB: connection and views, reachability, export
    plan/, report/   plan-gc and explain; the report (neither imports the other)
    cli/       the click commands
"""

__version__ = "0.1.0"
