"""The command line and operator tools: corpus-nlp, the run report, the executors' packed environment."""
