"""Stage 4, eval: exact-match scoring of model answers against gold (see docs/DESIGN.md, stage 4).

Modules, in the order data flows through them:
- `records`: reading gold / prediction / results JSONL, one `file:line` message per problem;
- `normalize`: the one versioned normalizer (strict, normalized, lenient tiers) and character F1;
- `score`: per-item results lines and the summary;
- `load`, `generate`, `fingerprint`, `results`, `run`: `eval run` (model loading, batched generation,
  the resumable results log keyed by a fingerprint);
- `served`, `served_run`: the OpenAI-compatible client and `eval run --backend openai` (sharing `run.run_plan`);
- `judge`, `agreement`, `judge_report`: `eval judge` (rubric, verdict validation, Wilson CI, Cohen's kappa);
- `compare`: two results files, exact McNemar and a paired bootstrap;
- `report`: the rich tables.

Heavy libraries (torch, transformers, numpy) are imported only inside the functions that need them, so
`eval score` starts fast.
"""
