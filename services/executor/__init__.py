"""The executor: claims runs from JetStream and executes their workflow graphs.

Modules, one concept each: ``app`` (wiring), ``consumer`` (pull loop, slots, drain),
``handler`` (one delivery: claim, keep-alive, finish, dead-letter), ``engine`` (the
graph), ``joins`` (the join rule), ``steps`` (one node: retries, timeout, on_error),
``templates`` (Jinja2 sandbox), ``store`` (SQL and fencing), ``events``,
``backoff``, ``ratelimit``, ``actions`` (by name).
"""
