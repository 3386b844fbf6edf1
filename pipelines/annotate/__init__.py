"""The stages and their Python steps: the fused Arrow pass, the token table, per-worker models and reports, LightPipeline, the sparknlp engine."""
