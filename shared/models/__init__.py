"""Pydantic models shared by the services: the workflow graph and the run message."""
