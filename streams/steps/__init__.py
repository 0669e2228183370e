"""The pipeline's batch steps, one module each, with one shape: a batch of rows in, a batch of rows
out. A step that keeps state changes it in the stores it was given (the agents pass StagedTables,
which hold the changes until the agent has sent the step's outputs and the broker acknowledged
them; then the agent persists the state and lets the input offsets be committed).

Pure: no Kafka, no ClickHouse, no clock (the agents pass `now_ms`). The agents in streams/agents/
decode envelopes, call a step, send what it returns and persist (see streams/agents/runner.py).

| step               | in                                   | out                                     |
|--------------------|--------------------------------------|-----------------------------------------|
| ingest.validate    | raw message values                   | comment events, rejections              |
| enrich.EnrichStep  | comment events per valid partition   | enriched rows, window deliveries        |
| authors.count      | enriched rows                        | rows with author stats, flagged rows    |
| windows.apply      | window deliveries per partition      | window rows, late events, alerts        |
"""
