"""Artifact sources beyond plain files and http(s): S3-compatible object stores and MLflow.

Each source module turns its URI into verified bytes on local disk, streaming into the artifact
directory (the pod's emptyDir) with the same size and time limits and the same failure reasons as
http(s) downloads. `modelops.serving.artifact` dispatches on the URI scheme; nothing here is
imported for the other schemes.
"""
