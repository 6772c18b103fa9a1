"""The HubSpot CRM service for Sesam: HubSpot's CRM records, as Sesam's JSON pull protocol
with continuation asks for them.

Layers, each a package, each using only those below it:

- `web`: the app factory, handlers of openapi.yaml's operations, the streamed body,
  problem+json, middleware;
- `sync`: positions and `_updated` tokens, the keyset walk, one export run, deletions,
  associations, background work;
- `hubspot`: the client, its budgets and retries, HubSpot's answers parsed into checked
  values, its one exception;

and beneath them all `config`, `object_types`, `timestamps`, `redact`, `logs` and
`metrics`. `python -m app` runs it (`__main__`).
"""
