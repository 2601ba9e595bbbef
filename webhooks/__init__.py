"""Inbound webhooks: verify, store once, answer, and leave the work to a job."""
