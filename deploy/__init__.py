"""Deployment files (Dockerfile, compose, Kubernetes) and their helper scripts."""
