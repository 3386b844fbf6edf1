"""Spark plumbing: sessions (classic and Connect), the JVM libraries (jars), the JVM's class archive."""
