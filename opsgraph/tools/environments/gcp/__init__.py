"""The gcp environment: Compute Engine, Cloud SQL and Memorystore through Google's own clients.

A GCP resource is found through its API (`gcp` section of the inventory: project, zone or
region, instance) and operated through it: the gcp tools (`opsgraph.tools.gcp_tools`) are
its lifecycle operations, not a `Lifecycle`. Each module does one job:

- `credentials`: a service-account key file or Application Default Credentials, per process;
- `clients`: the API clients, imported only when first needed and kept per endpoint;
- `target`: which instance a resource names, in words for error messages;
- `errors`: Google's exceptions as errors that say what to do (a permission and its role);
- `instances`: an instance as its REST JSON; `monitoring`: the latest point of a metric;
- `operations`: waiting for a long-running operation, with a deadline and progress;
- `rest`: the exact REST request a mutating call would send (the tools' `dry_run`);
- `dataplane`: the Redis or PostgreSQL server behind a Memorystore or Cloud SQL instance.

Nothing here imports a Google library at module import: they take seconds to load
(compute_v1 alone ~8 s), and the CLI and the catalogue must start without them.
"""
