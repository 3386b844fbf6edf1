"""The annotate job: inputs, row policies, models in place, the plan, the writes, counts read back, phases, progress, dry run."""
