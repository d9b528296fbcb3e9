"""Unit tests for modelops.devcluster (no cluster, loopback only)."""
