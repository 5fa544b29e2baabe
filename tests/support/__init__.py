"""Helpers of the tests, also used by scripts/ and benchmarks/ (with tests/ on sys.path).

Test modules import them as ``support.<module>``; pytest puts tests/ on sys.path (rootdir
conftest, no tests/__init__.py). No test module imports another test module
(tests/test_support_layout.py checks it): what two of them share lives here.

- components: the real processes (moto_server, docker-registry) and their environment;
  tools: skipping, or failing under CI, when one is missing.
- images, skopeo, scenario, expected: building images, pushing them, what the registry then
  holds; storage_check: that storage, checked independently of regstat.
- crawls: ``regstat crawl`` in a child process, its snapshot checked against ``expected``.
- oci_layouts: OCI image layouts; api_components: the registry's auth (htpasswd, token realm)
  and a fault proxy; auth_registries: registries with auth (fixtures); ecr_accounts: accounts
  on moto's ECR (a fixture); s3_fault_proxy, ecr_proxy: proxies in front of moto; proxy: the
  base of every loopback server and proxy, benchmarks/latency_proxy.py's too.
- snapshots: snapshots written from rows, without a registry; model: docs/design.md's
  definitions in plain Python; planner_graphs: registry graphs and snapshots for the planner;
  gc_hazards: a registry of what makes GC hazardous, and the registry's GC run on it.
"""
